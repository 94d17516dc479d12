/**
 * Misspelled names: the nearest known name for an unknown config key or
 * environment variable (`LOCKSMITHD_ENDPIONT` → `LOCKSMITHD_ENDPOINT`), and
 * the warnings for unknown variables (the variables themselves are listed
 * by `envWithPrefix` in lib/host/permissions.ts). Pure.
 *
 * The edit distance is computed here rather than by an npm package (such as
 * `leven`): locksmithctl reads its environment at every start, and the first
 * npm package in its start-up module graph costs 8 ms a command
 * (bench/README.md, "ctl").
 *
 * @module
 */

/** The Levenshtein distance of `a` and `b` (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        substitution,
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The known name nearest to `name`, or `undefined` when none is near: at
 * most a third of the letters after its prefix (`LOCKSMITHD_`) apart, and
 * at least one (`LOCKSMITHD_ENDPIONT` is 2 from `LOCKSMITHD_ENDPOINT`;
 * `LOCKSMITHD_FOO` is near nothing).
 */
export function nearestName(
  name: string,
  known: readonly string[],
): string | undefined {
  const rest = name.replace(/^[A-Z]+_/, "").length;
  const maxDistance = Math.max(1, Math.floor(rest / 3));
  let best: string | undefined;
  let bestDistance = maxDistance + 1;
  for (const candidate of known) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

/** ` (did you mean KNOWN?)` when a known name is near `name`, else empty. */
export function didYouMean(name: string, known: readonly string[]): string {
  const nearest = nearestName(name, known);
  return nearest === undefined ? "" : ` (did you mean ${nearest}?)`;
}

/**
 * One warning per variable of `env` that is not in `known`:
 * `unknown variable LOCKSMITHCTL_ENDPIONT is ignored (did you mean LOCKSMITHCTL_ENDPOINT?)`.
 */
export function unknownEnvWarnings(
  env: Record<string, string>,
  known: readonly string[],
): string[] {
  const names = new Set(known);
  return Object.keys(env).filter((name) => !names.has(name)).sort().map((
    name,
  ) => `unknown variable ${name} is ignored${didYouMean(name, known)}`);
}
