/**
 * Small helpers shared by the measurements: statistics, waiting, reading a
 * child's output by lines, and a process's memory from `/proc`.
 */

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The `q` quantile (nearest rank) of `values`; `NaN` when empty. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const rank = Math.min(
    sorted.length,
    Math.max(1, Math.ceil(q * sorted.length)),
  );
  return sorted[rank - 1]!;
}

/** The median (lower middle) of `values`. */
export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** `v` rounded to `digits` decimals. */
export function round(v: number, digits = 3): number {
  return Number(v.toFixed(digits));
}

/** Polls `condition` every 20 ms; throws naming `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  condition: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: timed out after ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

export { readLines } from "../tests/harness/lines.ts";

/** Resident memory of a process, in KiB. */
export interface ProcMemory {
  /** Resident set (`VmRSS`). */
  readonly rss: number;
  /** Peak resident set so far (`VmHWM`). */
  readonly peak: number;
  /** Anonymous resident memory: heaps, stacks (`RssAnon`). */
  readonly anon: number;
  /** File-backed resident memory: the binary's and libraries' pages, shared (`RssFile`). */
  readonly file: number;
  /** Proportional set size from `smaps_rollup` (shared pages divided among their users), if readable. */
  readonly pss?: number;
}

/** Reads `/proc/<pid>/status` (and `smaps_rollup` when readable). */
export function procMemory(pid: number): ProcMemory {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (text: string, name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  let pss: number | undefined;
  try {
    pss = kib(Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`), "Pss");
  } catch { /* not readable */ }
  return {
    rss: kib(status, "VmRSS"),
    peak: kib(status, "VmHWM"),
    anon: kib(status, "RssAnon"),
    file: kib(status, "RssFile"),
    ...(pss === undefined ? {} : { pss }),
  };
}

/** KiB as MiB. */
export function mib(kib: number): number {
  return kib / 1024;
}

/** The absolute path of `program` on PATH (posix_spawn does not search PATH). */
export function findProgram(program: string): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    const path = `${dir}/${program}`;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not here */ }
  }
  throw new Error(`${program} is not on PATH`);
}

/** Established TCP connections (IPv4) whose remote end is 127.0.0.1:`port`. */
export function connectionsTo(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let n = 0;
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols[2] === `0100007F:${hex}` && cols[3] === "01") n++;
  }
  return n;
}
