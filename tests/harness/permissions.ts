/**
 * The permission sets of deno.json, the one source of truth for the flags of
 * `deno task ctl`, `deno task daemon`, the compile tasks and the systemd units.
 */

/** Repository root (the directory of deno.json). */
export const REPO_ROOT: string = new URL("../../", import.meta.url).pathname;

type Grant = boolean | string[];
type PermissionSet = Record<string, Grant>;

/** Reads the named permission set from deno.json. */
export function permissionSet(name: string): PermissionSet {
  const config = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}deno.json`));
  const set = config.permissions?.[name];
  if (!set) throw new Error(`deno.json has no permission set "${name}"`);
  return set;
}

/**
 * Deno flags for a permission set: exactly `-P=<name>` when nothing is added,
 * else the set expanded into `--allow-*` flags with `extra` paths/values
 * appended (tests add their temporary directories this way, and the
 * programs of locksmithd's commands as `run`, which the sets never grant).
 */
export function permissionFlags(
  name: string,
  extra: Partial<Record<"read" | "write" | "env" | "run", string[]>> = {},
): string[] {
  if (Object.values(extra).every((v) => !v || v.length === 0)) {
    return ["-q", `-P=${name}`];
  }
  const set = permissionSet(name);
  const flags = ["-q", "--no-prompt"];
  const kinds = new Set([...Object.keys(set), ...Object.keys(extra)]);
  for (const kind of kinds) {
    const grant = set[kind];
    const added = extra[kind as keyof typeof extra] ?? [];
    if (grant === true) {
      flags.push(`--allow-${kind}`);
      continue;
    }
    const values = [
      ...(Array.isArray(grant) ? grant : []).map((v) =>
        v.startsWith("./") ? `${REPO_ROOT}${v.slice(2)}` : v
      ),
      ...added,
    ];
    if (values.length > 0) flags.push(`--allow-${kind}=${values.join(",")}`);
  }
  return flags;
}

/**
 * The flags `deno task <program>` runs the program with: its permission set
 * (plus `extra`, see {@link permissionFlags}) and the task's other flags
 * (e.g. `--v8-flags=--lite-mode` for the daemon), read from deno.json.
 */
export function programFlags(
  program: "ctl" | "daemon" | "serve",
  extra: Partial<Record<"read" | "write" | "env" | "run", string[]>> = {},
): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}deno.json`));
  const task: string = config.tasks[program];
  // The flags between `deno run` and the script (`serve` has an argument after it).
  const words = task.split(/\s+/).slice(2);
  const others = words.slice(0, words.findIndex((w) => w.endsWith(".ts")))
    .filter((flag) => flag !== "-q" && !flag.startsWith("-P="));
  return [...permissionFlags(program, extra), ...others];
}
