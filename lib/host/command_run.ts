/**
 * Runs a {@link ParsedCommand} with `Deno.Command`, never through a shell.
 *
 * - stdin is `/dev/null`; the working directory is `/`.
 * - The environment is exactly {@link RunOptions.env} (default
 *   {@link DEFAULT_COMMAND_ENV}, only `PATH`): nothing of the daemon's own
 *   environment leaks in.
 * - stdout and stderr are read together in arrival order; only the last
 *   {@link RunOptions.outputLimit} bytes are kept, so a chatty program costs
 *   no memory, and the result says how much was cut.
 * - After the timeout, the program gets SIGTERM, then SIGKILL after the grace
 *   period. Only the program itself is signalled (with a `--allow-run` list,
 *   Deno may not signal process groups): a script should `exec` its last
 *   program or pass the signal on. When the program has ended but something
 *   it started still holds its output open, reading stops 200 ms later.
 * - Deno's run permission must name the program
 *   (`--allow-run=/usr/local/bin/drain`); a refusal, a missing program or a
 *   file that cannot be executed is a one-line `CommandStartError` (see
 *   `command.ts`).
 *
 * @module
 */

import { MAX_DURATION_MS } from "../common/duration.ts";
import {
  type CommandResult,
  type ParsedCommand,
  startError,
} from "./command.ts";

/** Bytes of output kept by default (4 KiB): the last ones. */
export const DEFAULT_OUTPUT_LIMIT = 4096;

/** Default time between SIGTERM and SIGKILL after a timeout: 5 s. */
export const DEFAULT_KILL_GRACE_MS = 5_000;

/** The environment of a command when the caller gives none: a standard `PATH`. */
export const DEFAULT_COMMAND_ENV: Readonly<Record<string, string>> = Object
  .freeze({
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  });

/** Proposed default of `LOCKSMITHD_COMMAND_TIMEOUT`, the timeout of each run of a command: 5 minutes. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 300_000;

/**
 * The environment locksmithd gives its commands: {@link DEFAULT_COMMAND_ENV}
 * plus `LOCKSMITH_MACHINE_ID` (the holder id) and `LOCKSMITH_GROUP` (the
 * semaphore group, empty for the default one), so that one script can serve
 * several machines and groups.
 */
export function commandEnv(
  machineId: string,
  group: string,
): Record<string, string> {
  return {
    ...DEFAULT_COMMAND_ENV,
    LOCKSMITH_MACHINE_ID: machineId,
    LOCKSMITH_GROUP: group,
  };
}

/** How long to wait for the end of output after the program ended. */
const OUTPUT_DRAIN_MS = 200;

/** How to run a command. */
export interface RunOptions {
  /** After this long, the program gets SIGTERM (clamped to 24 days). */
  readonly timeoutMs: number;
  /** Time between SIGTERM and SIGKILL (default {@link DEFAULT_KILL_GRACE_MS}). */
  readonly graceMs?: number;
  /** Bytes of output kept, the last ones (default {@link DEFAULT_OUTPUT_LIMIT}). */
  readonly outputLimit?: number;
  /** The program's whole environment (default {@link DEFAULT_COMMAND_ENV}). */
  readonly env?: Readonly<Record<string, string>>;
  /** Ends the program as a timeout does (SIGTERM, then SIGKILL), with `aborted` set. */
  readonly signal?: AbortSignal;
}

/**
 * Runs a command: {@link runCommand}, or a fake in unit tests. Throws a
 * `CommandStartError` (see `command.ts`) when the program cannot be started.
 */
export type CommandRunner = (
  command: ParsedCommand,
  options: RunOptions,
) => Promise<CommandResult>;

/** Keeps the last `limit` bytes of a byte stream, and counts all of them. */
class TailBuffer {
  #chunks: Uint8Array[] = [];
  #kept = 0;
  total = 0;
  constructor(readonly limit: number) {}

  push(chunk: Uint8Array): void {
    this.total += chunk.length;
    const piece = chunk.length > this.limit
      ? chunk.slice(chunk.length - this.limit)
      : chunk;
    this.#chunks.push(piece);
    this.#kept += piece.length;
    while (
      this.#chunks.length > 1 &&
      this.#kept - (this.#chunks[0] as Uint8Array).length >= this.limit
    ) {
      this.#kept -= (this.#chunks.shift() as Uint8Array).length;
    }
  }

  /** The kept text, starting at a whole UTF-8 character, and how many bytes were cut. */
  text(): { text: string; cut: number } {
    const all = new Uint8Array(this.#kept);
    let at = 0;
    for (const c of this.#chunks) {
      all.set(c, at);
      at += c.length;
    }
    let start = Math.max(0, all.length - this.limit);
    if (start > 0 || this.total > all.length) {
      // Do not start inside a character that was cut.
      for (let i = 0; i < 3 && ((all[start] ?? 0) & 0xc0) === 0x80; i++) {
        start++;
      }
    }
    const kept = all.subarray(start);
    return {
      text: new TextDecoder().decode(kept),
      cut: this.total - kept.length,
    };
  }
}

/** The result when the abort signal had fired before the start. */
function notStarted(): CommandResult {
  return {
    exitCode: null,
    signal: null,
    timedOut: false,
    aborted: true,
    output: "",
    outputBytes: 0,
    cutBytes: 0,
    durationMs: 0,
  };
}

/**
 * Reads stdout and stderr together into `tail`. `drain` waits for the
 * rest of the output after the program ended, at most
 * `OUTPUT_DRAIN_MS` (a child it left behind may hold the pipes open),
 * then cancels the reading and keeps what was read.
 */
function readOutput(
  child: Deno.ChildProcess,
  tail: TailBuffer,
): { drain(): Promise<void> } {
  const readers = [child.stdout.getReader(), child.stderr.getReader()];
  const pumps = Promise.all(readers.map(async (reader) => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        tail.push(value);
      }
    } catch {
      // The stream broke or was cancelled: keep what was read.
    }
  }));
  return {
    async drain() {
      let drainTimer: ReturnType<typeof setTimeout> | undefined;
      const drained = await Promise.race([
        pumps.then(() => true),
        new Promise<false>((resolve) => {
          drainTimer = setTimeout(() => resolve(false), OUTPUT_DRAIN_MS);
        }),
      ]);
      clearTimeout(drainTimer);
      if (!drained) {
        // Cancelling a stream that broke or ended meanwhile fails; what was
        // read is kept either way, so there is nothing to report.
        await Promise.all(readers.map((r) => r.cancel().catch(() => {})));
        await pumps;
      }
    },
  };
}

/**
 * Runs `command` (see the module documentation) and returns how it ended.
 * A non-zero exit, a timeout or an abort is a result, not an error; only a
 * program that cannot be started throws, a `CommandStartError` (see
 * `command.ts`). When `signal` is already aborted, nothing is started.
 */
export async function runCommand(
  command: ParsedCommand,
  options: RunOptions,
): Promise<CommandResult> {
  if (options.signal?.aborted) return notStarted();
  const limit = Math.max(1, options.outputLimit ?? DEFAULT_OUTPUT_LIMIT);
  const graceMs = options.graceMs ?? DEFAULT_KILL_GRACE_MS;
  const started = performance.now();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(command.program, {
      args: [...command.args],
      env: { ...(options.env ?? DEFAULT_COMMAND_ENV) },
      clearEnv: true,
      cwd: "/",
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw startError(command, error);
  }

  const tail = new TailBuffer(limit);
  const output = readOutput(child, tail);

  let timedOut = false;
  let aborted = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // It has already ended.
    }
  };
  const stop = (reason: "timeout" | "abort") => {
    if (timedOut || aborted) return;
    if (reason === "timeout") timedOut = true;
    else aborted = true;
    kill("SIGTERM");
    killTimer = setTimeout(() => kill("SIGKILL"), graceMs);
  };
  const timer = setTimeout(
    () => stop("timeout"),
    Math.min(Math.max(0, options.timeoutMs), MAX_DURATION_MS),
  );
  const onAbort = () => stop("abort");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  let status: Deno.CommandStatus;
  try {
    status = await child.status;
  } finally {
    clearTimeout(timer);
    clearTimeout(killTimer);
    options.signal?.removeEventListener("abort", onAbort);
  }
  const durationMs = Math.round(performance.now() - started);

  await output.drain();
  const { text, cut } = tail.text();
  return {
    exitCode: status.signal === null ? status.code : null,
    signal: status.signal,
    timedOut,
    aborted,
    output: text,
    outputBytes: tail.total,
    cutBytes: cut,
    durationMs,
  };
}
