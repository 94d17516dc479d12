/**
 * Commands that locksmithd runs (health check, pre-reboot check, reboot
 * command), always without a shell.
 *
 * A command is one config value split into words by shell quoting rules
 * (npm:shell-quote): words are separated by blanks, `'...'` and `"..."` quote,
 * a backslash escapes one character. Nothing else a shell would do happens,
 * so anything that would make a shell do more is refused with one line naming
 * the key and the culprit: operators (`|`, `&&`, `;`, `&`, `(`), redirections
 * (`>`, `<`, `2>&1`), globs (`*`, `?`), expansions (`$VAR`, `${VAR}`,
 * `$(...)`), backticks, comments (`# ...`), environment assignments (`A=1 prog`)
 * and line breaks. The program must be an absolute path. To use a shell, name
 * it: `/bin/sh -c 'drain --node "$(hostname)" && sleep 5'`.
 *
 * This module parses commands and describes their runs; `command_run.ts`
 * runs them.
 *
 * @module
 */

import { parse } from "npm:shell-quote@1.12.0";
import { isPrintable, oneLine, quote } from "../common/errors.ts";
import { ConfigValueError } from "../common/value_error.ts";
import { formatDuration } from "../common/duration.ts";

/** A command parsed from a config value, ready to run without a shell. */
export interface ParsedCommand {
  /** The config key the command came from, named in every message (e.g. `LOCKSMITHD_HEALTH_CHECK`). */
  readonly key: string;
  /** The command as written. */
  readonly text: string;
  /** The program: an absolute path. */
  readonly program: string;
  /** The arguments after the program. */
  readonly args: readonly string[];
}

/**
 * A command value that cannot be run without a shell, or names no absolute
 * program: a {@link ConfigValueError} (exit status 2) reading
 * `KEY="value" uses the shell operator "|", which is not allowed (...)`.
 */
export class CommandSyntaxError extends ConfigValueError {
  /**
   * Creates a `CommandSyntaxError`.
   *
   * @param key config key of the command
   * @param value the rejected text
   * @param defect what is wrong with it and what is accepted
   */
  constructor(key: string, value: string, defect: string) {
    super(key, value, defect);
    this.name = "CommandSyntaxError";
  }
}

const NO_SHELL =
  "commands run without a shell (to use one, write /bin/sh -c '\u2026')";
const REDIRECTIONS = new Set([
  "<",
  ">",
  ">>",
  ">&",
  ">|",
  "<&",
  "<>",
  "&>",
  "&>>",
  "<<",
  "<<-",
  "<<<",
  "<(",
  ">(",
]);
// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/** Marks an expansion in shell-quote's output. */
interface Expansion {
  readonly expansion: string;
}

function defectOf(entry: unknown, text: string): string | undefined {
  if (typeof entry === "string") return undefined;
  const e = entry as {
    op?: string;
    pattern?: string;
    comment?: string;
    expansion?: string;
  };
  if (e.expansion !== undefined) {
    const shown = e.expansion !== ""
      ? `$${e.expansion}`
      : text.includes("$(")
      ? "$(\u2026)"
      : "$";
    return `uses the expansion ${quote(shown)}, which is not allowed`;
  }
  if (e.comment !== undefined) {
    return `has a comment ${quote(`#${e.comment}`)}, which is not allowed`;
  }
  if (e.op === "glob") {
    return `has the glob ${
      quote(e.pattern ?? "")
    }, which is not allowed (quote it to pass it as it is)`;
  }
  const kind = REDIRECTIONS.has(e.op ?? "") ? "redirection" : "shell operator";
  return `uses the ${kind} ${quote(e.op ?? "")}, which is not allowed`;
}

/**
 * Splits a command value into a program and its arguments (see the module
 * documentation for the rules). `key` names the config key in errors.
 * Throws a {@link CommandSyntaxError} for anything a shell would be needed
 * for, and when the program is not an absolute path. Pure.
 *
 * @example
 * ```ts
 * import { parseCommand } from "./command.ts";
 * parseCommand("LOCKSMITHD_HEALTH_CHECK", "/usr/local/bin/healthy --quick 'a b'");
 * // { key: "LOCKSMITHD_HEALTH_CHECK", program: "/usr/local/bin/healthy", args: ["--quick", "a b"], ... }
 * ```
 */
export function parseCommand(key: string, text: string): ParsedCommand {
  const fail = (defect: string): never => {
    throw new CommandSyntaxError(key, text, defect);
  };
  if (text.trim() === "") fail("is empty; give an absolute program path");
  if (CONTROL_RE.test(text)) {
    fail(`has a line break or control character, which is not allowed`);
  }
  if (text.includes("`")) {
    fail(
      `has a backtick (command substitution), which is not allowed: ${NO_SHELL}`,
    );
  }
  let entries: unknown[];
  try {
    entries = parse(text, (name: string): Expansion => ({ expansion: name }));
  } catch (error) {
    return fail(`has a bad expansion (${oneLine(error)}): ${NO_SHELL}`);
  }
  const argv: string[] = [];
  for (const entry of entries) {
    const defect = defectOf(entry, text);
    if (defect !== undefined) fail(`${defect}: ${NO_SHELL}`);
    argv.push(entry as string);
  }
  const [program, ...args] = argv;
  if (program === undefined || program === "") {
    return fail("names no program; give an absolute program path");
  }
  if (!program.startsWith("/")) {
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(program)) {
      fail(
        `sets the environment variable ${
          quote(program.split("=")[0] as string)
        }, which is not allowed; the daemon sets the environment`,
      );
    }
    fail(
      `names the program ${quote(program)}, which is not an absolute path${
        isPrintable(program) && !program.includes(" ") && program.length <= 40
          ? ` (write e.g. /usr/bin/${program})`
          : ""
      }`,
    );
  }
  return { key, text, program, args };
}

/** Formats a command for messages: its key and the program, e.g. `LOCKSMITHD_HEALTH_CHECK (/usr/local/bin/healthy)`. */
export function describeCommand(command: ParsedCommand): string {
  return `${command.key} (${command.program})`;
}

/**
 * The `--allow-run` flag that lets the daemon run these commands:
 * `--allow-run=/usr/local/bin/drain,/usr/local/bin/healthy` (each program once, sorted).
 */
export function allowRunFlag(commands: readonly ParsedCommand[]): string {
  const programs = [...new Set(commands.map((c) => c.program))].sort();
  return `--allow-run=${programs.join(",")}`;
}

/** Why a command could not be started at all. */
export type CommandStartFailure =
  | "not-permitted"
  | "not-found"
  | "not-executable"
  | "failed";

/**
 * A command that could not be started: the program is not in Deno's run
 * permission, does not exist, or is not executable. One line naming the key
 * and the program, and for a permission refusal the exact flag to add.
 */
export class CommandStartError extends Error {
  /** The config key of the command. */
  readonly key: string;
  /** The program that could not be started. */
  readonly program: string;
  /** Why it could not be started. */
  readonly reason: CommandStartFailure;
  /**
   * Creates a `CommandStartError`.
   *
   * @param command the command that could not be started
   * @param reason why
   * @param message one line naming the key, the program and what to do
   */
  constructor(
    command: ParsedCommand,
    reason: CommandStartFailure,
    message: string,
  ) {
    super(message);
    this.name = "CommandStartError";
    this.key = command.key;
    this.program = command.program;
    this.reason = reason;
  }
}

/** The refusal to run `command`, naming the `--allow-run` list of `commands`. */
function notPermitted(
  command: ParsedCommand,
  commands: readonly ParsedCommand[] = [command],
): CommandStartError {
  return new CommandStartError(
    command,
    "not-permitted",
    `${command.key}: not allowed to run ${command.program}; start locksmithd with ${
      allowRunFlag(commands)
    } (one list naming every command's program)`,
  );
}

/**
 * Whether this process may run the command's program (Deno's run
 * permission), without running it: `undefined` when it may, else the
 * {@link CommandStartError} that running it would throw. For checking the
 * configuration at start; its flag names the programs of `commands`
 * (default: this command's), so that one list covers every command.
 */
export function runPermissionError(
  command: ParsedCommand,
  commands: readonly ParsedCommand[] = [command],
): CommandStartError | undefined {
  const status = Deno.permissions.querySync({
    name: "run",
    command: command.program,
  });
  return status.state === "granted"
    ? undefined
    : notPermitted(command, commands);
}

/** Turns an error of `Deno.Command.spawn()` into a {@link CommandStartError}. */
export function startError(
  command: ParsedCommand,
  error: unknown,
): CommandStartError {
  const message = error instanceof Error ? error.message : String(error);
  const { key, program } = command;
  if (
    (error instanceof Deno.errors.NotCapable ||
      error instanceof Deno.errors.PermissionDenied) &&
    message.startsWith("Requires run access")
  ) {
    return notPermitted(command);
  }
  if (error instanceof Deno.errors.NotFound) {
    return new CommandStartError(
      command,
      "not-found",
      `${key}: the program ${program} does not exist`,
    );
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return new CommandStartError(
      command,
      "not-executable",
      `${key}: the program ${program} cannot be executed (permission denied: is it an executable file?)`,
    );
  }
  return new CommandStartError(
    command,
    "failed",
    `${key}: the program ${program} could not be started: ${oneLine(error)}`,
  );
}

/** What a run of a command gave. */
export interface CommandResult {
  /** The exit status, or `null` when a signal ended the program. */
  readonly exitCode: number | null;
  /** The signal that ended the program, or `null`. */
  readonly signal: Deno.Signal | null;
  /** Whether the timeout ended the program. */
  readonly timedOut: boolean;
  /** Whether the caller's abort signal ended the program. */
  readonly aborted: boolean;
  /** The last bytes of stdout and stderr together (at most the output limit), as text. */
  readonly output: string;
  /** How many bytes stdout and stderr carried in all. */
  readonly outputBytes: number;
  /** How many bytes were cut from the start of `output`. */
  readonly cutBytes: number;
  /** How long the program ran, in milliseconds. */
  readonly durationMs: number;
}

/** Whether a run exited 0 on its own. */
export function commandSucceeded(result: CommandResult): boolean {
  return result.exitCode === 0 && !result.timedOut && !result.aborted;
}

/**
 * One line for a log: how the run ended and its output, e.g. `exited 1
 * after 1.2s: output (last 4096 of 10000 bytes): ...`, or `exited 0 after
 * 15ms, no output`. Line breaks and control characters in the output are
 * flattened. With `duration: false`, the run time is left out (`exited 1:
 * output: ...`), so that repeated runs that ended alike read alike.
 */
export function describeResult(
  result: CommandResult,
  options: { readonly duration?: boolean } = {},
): string {
  const after = options.duration === false
    ? ""
    : ` after ${formatDuration(result.durationMs)}`;
  const how = result.timedOut
    ? `timed out${after} (ended by ${result.signal ?? "SIGTERM"})`
    : result.aborted
    ? `was stopped${after}`
    : result.signal !== null
    ? `was killed by ${result.signal}${after}`
    : `exited ${result.exitCode}${after}`;
  const text = oneLine(result.output);
  if (text === "") return `${how}, no output`;
  const label = result.cutBytes > 0
    ? `output (last ${
      result.outputBytes - result.cutBytes
    } of ${result.outputBytes} bytes)`
    : "output";
  return `${how}: ${label}: ${text}`;
}
