/**
 * What `locksmithd` and `locksmithd serve` share at their start: writing to
 * stderr, the log there, answering `--help` and `--version`, and reporting
 * a failure before the work begins.
 *
 * @module
 */

import { exitCodeOf, oneLine } from "../common/errors.ts";
import { envIfGranted } from "./permissions.ts";
import { VERSION } from "../common/version.ts";
import { createDaemonLog } from "./log.ts";
import type { DaemonLog } from "../machine/machine_ports.ts";

const encoder = new TextEncoder();

/** Writes `text` to stderr whole (a short write is continued). */
export function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) {
    offset += Deno.stderr.writeSync(bytes.subarray(offset));
  }
}

/** The log on stderr, with the journal's priority prefixes when `JOURNAL_STREAM` is set. */
export function stderrLog(): DaemonLog {
  const journal = envIfGranted("JOURNAL_STREAM") !== undefined;
  return createDaemonLog(writeStderr, journal);
}

/**
 * Answers `--help` with `usage`, or `--version`, on stdout. Returns the exit
 * status 0 when it answered, `undefined` when neither was asked.
 */
export function answerHelpOrVersion(
  parsed: { readonly help: boolean; readonly version: boolean },
  usage: string,
): 0 | undefined {
  if (parsed.help) {
    Deno.stdout.writeSync(encoder.encode(usage));
    return 0;
  }
  if (parsed.version) {
    Deno.stdout.writeSync(encoder.encode(`locksmithd ${VERSION}\n`));
    return 0;
  }
  return undefined;
}

/** Writes `program: message` for `error` on stderr and returns its exit status. */
export function reportFailure(program: string, error: unknown): number {
  writeStderr(`${program}: ${oneLine(error)}\n`);
  return exitCodeOf(error);
}
