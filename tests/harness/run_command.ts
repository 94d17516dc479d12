/**
 * Runs one command the way locksmithd runs its health check, pre-reboot check
 * and reboot command, and prints one JSON line: `runPermissionError()`'s
 * message (or null), then the result or the start error's message. Tests
 * start it with the daemon's permission set plus an `--allow-run` list, to
 * show what the daemon says when the list does not name the program.
 *
 * Usage: `deno run -P=daemon --allow-run=… tests/harness/run_command.ts KEY COMMAND`
 */

import { oneLine } from "../../lib/common/errors.ts";
import { parseCommand, runPermissionError } from "../../lib/host/command.ts";
import { runCommand } from "../../lib/host/command_run.ts";

if (import.meta.main) {
  const [key, text] = Deno.args;
  if (!key || text === undefined) {
    console.error("usage: run_command.ts KEY COMMAND");
    Deno.exit(2);
  }
  const command = parseCommand(key, text);
  const permission = runPermissionError(command)?.message ?? null;
  let outcome: Record<string, unknown>;
  try {
    outcome = { result: await runCommand(command, { timeoutMs: 10_000 }) };
  } catch (error) {
    outcome = { error: oneLine(error), name: (error as Error).name };
  }
  console.log(JSON.stringify({ permission, ...outcome }));
}
