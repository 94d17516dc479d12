/**
 * Go-style durations (`500ms`, `5s`, `1h30m`), as used by flags and config keys.
 *
 * @module
 */

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Longest duration accepted for a timeout or a delay: 24 days. A timer longer
 * than 2^31-1 ms (24.8 days) fires at once, so a longer value would not mean
 * "wait longer" but "do not wait at all".
 */
export const MAX_DURATION_MS = 24 * 86_400_000;

/** {@link MAX_DURATION_MS} as written in messages. */
export const MAX_DURATION_TEXT = "24d";

const DURATION_RE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART_RE = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/**
 * Parses a duration such as `500ms`, `5s`, `1h30m` or `2d`; a bare `0` is zero.
 * Returns milliseconds, or `undefined` when the text is not a duration.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./duration.ts";
 * parseDuration("1h30m"); // 5_400_000
 * ```
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === "0") return 0;
  if (!DURATION_RE.test(s)) return undefined;
  let total = 0;
  for (const [, amount, unit] of s.matchAll(PART_RE)) {
    total += Number(amount) * (UNIT_MS[unit as string] as number);
  }
  return Math.round(total);
}

/** Formats milliseconds as a compact duration (`1h30m`, `5s`, `250ms`, `0s`). */
export function formatDuration(ms: number): string {
  if (ms <= 0) return "0s";
  let rest = Math.round(ms);
  let out = "";
  for (
    const [unit, size] of [["h", 3_600_000], ["m", 60_000], [
      "s",
      1_000,
    ]] as const
  ) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  if (rest > 0) out += `${rest}ms`;
  return out;
}

/**
 * Formats an age or a wait as operators read it: whole seconds, two units
 * at most (`42s`, `12m3s`, `3h12m`, `2d3h`); negative (a skewed clock) as `0s`.
 */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1_000));
  const two = (a: number, unitA: string, b: number, unitB: string) =>
    `${a}${unitA}${b === 0 ? "" : `${b}${unitB}`}`;
  if (s < 60) return `${s}s`;
  if (s < 3_600) return two(Math.floor(s / 60), "m", s % 60, "s");
  if (s < 86_400) {
    return two(Math.floor(s / 3_600), "h", Math.floor(s / 60) % 60, "m");
  }
  return two(Math.floor(s / 86_400), "d", Math.floor(s / 3_600) % 24, "h");
}
