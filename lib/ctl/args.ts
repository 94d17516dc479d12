/**
 * locksmithctl's command line: global flags (before or after the subcommand),
 * `LOCKSMITHCTL_<FLAG>` environment variables for unset flags, and the
 * subcommand with its arguments. Pure: the environment is a parameter.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { quote, UsageError } from "../common/errors.ts";
import type { EtcdConnectionOptions } from "../etcd/client/etcd_options.ts";
import { validateId } from "../common/machine_id.ts";
import {
  ValueDefect,
  type ValueParser,
  wholeNumber,
} from "../common/value_parsers.ts";
import { MAX_SLOTS } from "../semaphore/document.ts";
import { parseSlotTtl } from "../semaphore/settings.ts";
import { CTL_FLAGS, envNameOf, valueFlags } from "./flags.ts";

export { ctlEnvNames, DEFAULT_TIMEOUT_MS, envNameOf } from "./flags.ts";

/** The subcommands of locksmithctl. */
export type CtlCommand =
  | "status"
  | "history"
  | "lock"
  | "unlock"
  | "set-max"
  | "set-ttl"
  | "pause"
  | "resume"
  | "reset"
  | "reboot"
  | "send-need-reboot"
  | "help";

/**
 * A parsed locksmithctl invocation: the subcommand and its arguments, and how
 * to reach etcd (`--endpoint`, `--etcd-*` flags, `--timeout`).
 */
export interface CtlInvocation extends EtcdConnectionOptions {
  /** The subcommand; `help` for `--help`, `help cmd` and no subcommand at all. */
  readonly command: CtlCommand;
  /** For `help`: the subcommand asked about, if any. */
  readonly helpTopic?: CtlCommand | undefined;
  /** For `lock` / `unlock`: the id given, else the machine id is used. */
  readonly id?: string | undefined;
  /** For `set-max`: the new number of slots. */
  readonly max?: number | undefined;
  /** For `set-ttl`: the slot TTL in seconds (`0`: none), or `default` to remove the stored one. */
  readonly ttl?: number | "default" | undefined;
  /** `--version` was given. */
  readonly version: boolean;
  /** `--json`: print one JSON object on stdout instead of text. */
  readonly json: boolean;
  /** `--force`: confirms `reset`. */
  readonly force: boolean;
  /** `--stale`: `unlock` reclaims every slot whose holder's lease expired. */
  readonly stale: boolean;
  /** `--watch`: `status` redraws on every change until interrupted. */
  readonly watch: boolean;
  /** `--all-groups`: `status` and `history` list every group's semaphore. */
  readonly allGroups: boolean;
  /** `--since`: `history` shows the reboots of this long back, in ms. */
  readonly sinceMs: number;
  /** `--group`: empty for the default semaphore. */
  readonly group: string;
}

/** Each subcommand's least and most positional arguments. */
const ARITY: Record<CtlCommand, [number, number]> = {
  status: [0, 0],
  history: [0, 0],
  lock: [0, 1],
  unlock: [0, 1],
  "set-max": [1, 1],
  "set-ttl": [1, 1],
  pause: [0, 0],
  resume: [0, 0],
  reset: [0, 0],
  reboot: [0, 0],
  "send-need-reboot": [0, 0],
  help: [0, 1],
};

function parseCommand(name: string, what: string): CtlCommand {
  if (Object.hasOwn(ARITY, name)) return name as CtlCommand;
  throw new UsageError(
    `unknown ${what} ${quote(name)}; run 'locksmithctl help' for the list`,
  );
}

/** `set-max`'s argument: a whole number from 0 to `MAX_SLOTS`. */
const parseMax = wholeNumber(0, MAX_SLOTS);

/** `set-ttl`'s argument: a duration of at least a minute, `0` or `off`, or `default`. */
const parseTtl: ValueParser<number | "default"> = (text) =>
  text === "default" ? "default" : parseSlotTtl(text);

/** node:util parseArgs options, one per row of the flag table. */
const ARG_OPTIONS = Object.fromEntries(
  CTL_FLAGS.map((f) => [f.name, {
    type: f.value === undefined ? "boolean" as const : "string" as const,
    ...(f.short === undefined ? {} : { short: f.short }),
    ...(f.value !== undefined && f.repeatable ? { multiple: true } : {}),
  }]),
);

/** Rephrases node:util parseArgs' messages about a flag without its value. */
function missingValue(message: string): string | undefined {
  const flag =
    /^Option '(--?[^' ]+)(?: <value>)?' argument (missing|is ambiguous)/
      .exec(message);
  if (flag === null) return undefined;
  const name = flag[1] as string;
  const example = valueFlags().find((f) => `--${f.name}` === name)?.example;
  return flag[2] === "missing"
    ? `${name} needs a value${example ? `, e.g. ${name} ${example}` : ""}`
    : `${name} needs a value; a value that starts with "-" must be written ${name}=VALUE`;
}

/** What node:util parseArgs makes of locksmithctl's arguments. */
interface ParsedFlags {
  readonly values: Record<
    string,
    string | boolean | (string | boolean)[] | undefined
  >;
  readonly positionals: string[];
}

/** Splits `args` into flags and positionals; a fault becomes one {@link UsageError} line. */
function splitArgs(args: readonly string[]): ParsedFlags {
  try {
    return parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: ARG_OPTIONS,
    });
  } catch (error) {
    const message = (error as Error).message.split("\n")[0] ??
      "invalid arguments";
    const negative = /'(-\d[^']*)'/.exec(message)?.[1];
    if (negative !== undefined && args.includes("set-max")) {
      throw new UsageError(
        `set-max: ${
          JSON.stringify(negative)
        } is not a whole number from 0 to ${MAX_SLOTS}`,
      );
    }
    throw new UsageError(
      `${
        missingValue(message) ??
          message.replace(/\. To specify a positional argument.*$/, "")
      }; run 'locksmithctl help'`,
    );
  }
}

/**
 * Refuses an empty value on the command line, a mistake (`--endpoint
 * "$UNSET"`), unless the flag says it means the default (`--group ""`); an
 * empty environment variable means "not set", as for locksmithd.
 */
function refuseEmptyValues(values: ParsedFlags["values"]): void {
  for (const flag of valueFlags()) {
    const v = values[flag.name];
    const texts = Array.isArray(v) ? v : [v];
    if (
      !flag.emptyMeansDefault &&
      texts.some((t) =>
        typeof t === "string" && t.replaceAll(",", "").trim() === ""
      )
    ) {
      throw new UsageError(
        `--${flag.name} needs a value, e.g. --${flag.name} ${flag.example}`,
      );
    }
  }
}

/** The command and its help topic (`--help` turns a command into its help), its arity checked. */
function commandOf(
  positionals: readonly string[],
  help: boolean,
): { command: CtlCommand; helpTopic: CtlCommand | undefined } {
  const [first, ...rest] = positionals;
  const command: CtlCommand = first === undefined
    ? "help"
    : parseCommand(first, "command");
  const [min, maxArgs] = ARITY[command];
  if (rest.length < min || rest.length > maxArgs) {
    const wanted = min === maxArgs
      ? `${min} argument${min === 1 ? "" : "s"}`
      : `at most ${maxArgs} argument`;
    throw new UsageError(
      `${command} takes ${wanted}, got ${rest.length}; run 'locksmithctl help ${command}'`,
    );
  }
  const helpTopic = command === "help" && rest[0] !== undefined
    ? parseCommand(rest[0], "help topic")
    : undefined;
  if (help) {
    return {
      command: "help",
      helpTopic: command === "help" ? helpTopic : command,
    };
  }
  return { command, helpTopic };
}

/** Every flag's value by field: the command line, else `env`, else the default. */
function flagValues(
  values: ParsedFlags["values"],
  env: Readonly<Record<string, string | undefined>>,
): Record<string, unknown> {
  /** What the command line gave for `--name`: repeated values joined with `,`. */
  const given = (name: string): string | undefined => {
    const v = values[name];
    return Array.isArray(v)
      ? v.join(",")
      : typeof v === "string"
      ? v
      : undefined;
  };
  const options: Record<string, unknown> = {};
  for (const flag of CTL_FLAGS) {
    if (flag.value === undefined) {
      if (flag.field !== undefined) {
        options[flag.field] = values[flag.name] === true;
      }
      continue;
    }
    const setting = settingOf(flag.name, given(flag.name), env);
    options[flag.field] = setting === undefined || setting.text === ""
      ? flag.default
      : parseSetting(flag.parse, setting);
  }
  return options;
}

/**
 * Parses locksmithctl's arguments. `env` fills flags not given on the command
 * line. Throws {@link UsageError} (exit 2) with one line naming the fault.
 */
export function parseCtlArgs(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): CtlInvocation {
  const { values, positionals } = splitArgs(args);
  refuseEmptyValues(values);
  const { command, helpTopic } = commandOf(positionals, values.help === true);
  const options = flagValues(values, env);
  const argument = positionals[1];
  /** The subcommand's argument; a defect becomes `set-max: "x" defect`. */
  const commandArgument = <T>(parse: ValueParser<T>): T =>
    parseValue(
      parse,
      argument as string,
      `${command}: ${quote(argument as string)}`,
    );
  const id = (command === "lock" || command === "unlock") &&
      argument !== undefined
    ? validateId(argument)
    : undefined;
  if (command === "unlock" && options.stale === true && id !== undefined) {
    throw new UsageError(
      "unlock --stale reclaims every stale slot and takes no ID; run 'locksmithctl help unlock'",
    );
  }
  if (command === "status" && options.watch && options.allGroups) {
    throw new UsageError(
      "status --watch follows one semaphore; --all-groups cannot be combined with it",
    );
  }
  return {
    command,
    helpTopic,
    id,
    max: command === "set-max" ? commandArgument(parseMax) : undefined,
    ttl: command === "set-ttl" ? commandArgument(parseTtl) : undefined,
    ...options,
  } as CtlInvocation;
}

/** A flag's value and where it came from (`--group` or `LOCKSMITHCTL_GROUP`), for messages. */
interface Setting {
  readonly text: string;
  readonly source: string;
}

/** The value of `--name` from the command line, else from its non-empty environment variable. */
function settingOf(
  name: string,
  given: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Setting | undefined {
  if (given !== undefined) return { text: given, source: `--${name}` };
  const envName = envNameOf(name);
  const fromEnv = env[envName];
  return fromEnv === undefined || fromEnv === ""
    ? undefined
    : { text: fromEnv, source: envName };
}

/** Parses a setting; a defect becomes `--flag "value" defect` or `LOCKSMITHCTL_FLAG="value" defect`. */
function parseSetting(
  parse: (text: string) => unknown,
  setting: Setting,
): unknown {
  const { text, source } = setting;
  return parseValue(
    parse,
    text,
    source.startsWith("--")
      ? `${source} ${quote(text)}`
      : `${source}=${quote(text)}`,
  );
}

/** `parse(text)`; a {@link ValueDefect} becomes the usage error `<shown> <defect>`. */
function parseValue<T>(parse: ValueParser<T>, text: string, shown: string): T {
  try {
    return parse(text);
  } catch (error) {
    if (!(error instanceof ValueDefect)) throw error;
    throw new UsageError(`${shown} ${error.defect}`);
  }
}
