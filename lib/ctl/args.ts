/**
 * locksmithctl's command line: global flags (before or after the subcommand),
 * `LOCKSMITHCTL_<FLAG>` environment variables for unset flags, and the
 * subcommand with its arguments. Pure: the environment is a parameter.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { quote, UsageError } from "../common/errors.ts";
import {
  MAX_DURATION_MS,
  MAX_DURATION_TEXT,
  parseDuration,
} from "../common/duration.ts";
import { parseEndpoints } from "../etcd/endpoints.ts";
import type { EtcdConnectionOptions } from "../etcd/grpc_client.ts";
import { idDefect, validateId } from "../common/machine_id.ts";
import { MAX_SLOTS } from "../semaphore/document.ts";

/** The subcommands of locksmithctl. */
export type CtlCommand =
  | "status"
  | "lock"
  | "unlock"
  | "set-max"
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
  /** `--version` was given. */
  readonly version: boolean;
  /** `--json`: print one JSON object on stdout instead of text. */
  readonly json: boolean;
  /** `--force`: confirms `reset`. */
  readonly force: boolean;
  /** `--group`: empty for the default semaphore. */
  readonly group: string;
}

/** Default of `--timeout`, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 5_000;

const COMMANDS: readonly CtlCommand[] = [
  "status",
  "lock",
  "unlock",
  "set-max",
  "reset",
  "reboot",
  "send-need-reboot",
  "help",
];

/** Flags that take a value and may come from `LOCKSMITHCTL_<FLAG>`. */
const VALUE_FLAGS = [
  "endpoint",
  "etcd-cafile",
  "etcd-certfile",
  "etcd-keyfile",
  "etcd-username",
  "etcd-password",
  "group",
  "timeout",
] as const;

/** The environment variables locksmithctl reads, one per value flag. */
export function ctlEnvNames(): string[] {
  return VALUE_FLAGS.map(envNameOf);
}

/** Returns the environment variable that fills `--flag`: `LOCKSMITHCTL_ETCD_CAFILE` for `etcd-cafile`. */
export function envNameOf(flag: string): string {
  return `LOCKSMITHCTL_${flag.toUpperCase().replaceAll("-", "_")}`;
}

const ARITY: Record<CtlCommand, [number, number]> = {
  status: [0, 0],
  lock: [0, 1],
  unlock: [0, 1],
  "set-max": [1, 1],
  reset: [0, 0],
  reboot: [0, 0],
  "send-need-reboot": [0, 0],
  help: [0, 1],
};

function parseCommand(name: string, what: string): CtlCommand {
  if ((COMMANDS as readonly string[]).includes(name)) return name as CtlCommand;
  throw new UsageError(
    `unknown ${what} ${quote(name)}; run 'locksmithctl help' for the list`,
  );
}

function parseMax(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > MAX_SLOTS) {
    throw new UsageError(
      `set-max: ${quote(text)} is not a whole number from 0 to ${MAX_SLOTS}`,
    );
  }
  return Number(text);
}

/** Examples for "needs a value" messages. */
const EXAMPLES: Record<(typeof VALUE_FLAGS)[number], string> = {
  endpoint: "http://127.0.0.1:2379",
  "etcd-cafile": "/etc/ssl/etcd/ca.pem",
  "etcd-certfile": "/etc/ssl/etcd/client.pem",
  "etcd-keyfile": "/etc/ssl/etcd/client-key.pem",
  "etcd-username": "locksmith",
  "etcd-password": "PASSWORD",
  group: "web",
  timeout: "5s",
};

/** Rephrases node:util parseArgs' messages about a flag without its value. */
function missingValue(message: string): string | undefined {
  const flag =
    /^Option '(--?[^' ]+)(?: <value>)?' argument (missing|is ambiguous)/
      .exec(message);
  if (flag === null) return undefined;
  const name = flag[1] as string;
  const example = EXAMPLES[name.replace(/^--/, "") as keyof typeof EXAMPLES];
  return flag[2] === "missing"
    ? `${name} needs a value${example ? `, e.g. ${name} ${example}` : ""}`
    : `${name} needs a value; a value that starts with "-" must be written ${name}=VALUE`;
}

/**
 * Parses locksmithctl's arguments. `env` fills flags not given on the command
 * line. Throws {@link UsageError} (exit 2) with one line naming the fault.
 */
export function parseCtlArgs(
  args: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): CtlInvocation {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      strict: true,
      options: {
        endpoint: { type: "string", multiple: true },
        "etcd-cafile": { type: "string" },
        "etcd-certfile": { type: "string" },
        "etcd-keyfile": { type: "string" },
        "etcd-username": { type: "string" },
        "etcd-password": { type: "string" },
        group: { type: "string" },
        timeout: { type: "string" },
        json: { type: "boolean" },
        force: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
      },
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
  const { values, positionals } = parsed;
  // An empty value on the command line is a mistake (`--endpoint "$UNSET"`);
  // an empty environment variable means "not set", as for locksmithd.
  for (const flag of VALUE_FLAGS) {
    if (flag === "group") continue; // --group "" is the default group
    const given = flag === "endpoint" ? values.endpoint : [values[flag]];
    if (
      given?.some((v) => v !== undefined && v.replaceAll(",", "").trim() === "")
    ) {
      throw new UsageError(
        `--${flag} needs a value, e.g. --${flag} ${EXAMPLES[flag]}`,
      );
    }
  }
  /** The value of `flag` and where it came from, for messages. */
  const setting = (
    flag: (typeof VALUE_FLAGS)[number],
  ): { text: string; source: string } | undefined => {
    const given = flag === "endpoint"
      ? values.endpoint?.join(",")
      : values[flag];
    if (given !== undefined) return { text: given, source: `--${flag}` };
    const name = envNameOf(flag);
    const fromEnv = env[name];
    return fromEnv === undefined || fromEnv === ""
      ? undefined
      : { text: fromEnv, source: name };
  };
  const value = (flag: (typeof VALUE_FLAGS)[number]): string | undefined =>
    setting(flag)?.text;
  /** `--flag "value"` or `LOCKSMITHCTL_FLAG="value"`, for messages. */
  const shown = (s: { text: string; source: string }): string =>
    s.source.startsWith("--")
      ? `${s.source} ${quote(s.text)}`
      : `${s.source}=${quote(s.text)}`;

  const [first, ...rest] = positionals;
  let command: CtlCommand = first === undefined
    ? "help"
    : parseCommand(first, "command");
  let helpTopic: CtlCommand | undefined;
  const [min, maxArgs] = ARITY[command];
  if (rest.length < min || rest.length > maxArgs) {
    const wanted = min === maxArgs
      ? `${min} argument${min === 1 ? "" : "s"}`
      : `at most ${maxArgs} argument`;
    throw new UsageError(
      `${command} takes ${wanted}, got ${rest.length}; run 'locksmithctl help ${command}'`,
    );
  }
  if (command === "help" && rest[0] !== undefined) {
    helpTopic = parseCommand(rest[0], "help topic");
  }
  if (values.help === true) {
    helpTopic = command === "help" ? helpTopic : command;
    command = "help";
  }

  const timeout = setting("timeout");
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (timeout !== undefined) {
    const ms = parseDuration(timeout.text);
    if (ms === undefined || ms <= 0 || ms > MAX_DURATION_MS) {
      throw new UsageError(
        `${
          shown(timeout)
        } is not a positive duration up to ${MAX_DURATION_TEXT}, such as 5s or 500ms`,
      );
    }
    timeoutMs = ms;
  }
  const group = setting("group");
  const groupDefect = group === undefined || group.text === ""
    ? undefined
    : idDefect(group.text);
  if (group !== undefined && groupDefect !== undefined) {
    throw new UsageError(`${shown(group)} ${groupDefect}`);
  }
  const endpointText = value("endpoint");
  const id =
    (command === "lock" || command === "unlock") && rest[0] !== undefined
      ? validateId(rest[0])
      : undefined;
  return {
    command,
    helpTopic,
    id,
    max: command === "set-max" ? parseMax(rest[0] as string) : undefined,
    version: values.version === true,
    json: values.json === true,
    force: values.force === true,
    endpoints: parseEndpoints(endpointText === undefined ? [] : [endpointText]),
    caFile: value("etcd-cafile"),
    certFile: value("etcd-certfile"),
    keyFile: value("etcd-keyfile"),
    username: value("etcd-username"),
    password: value("etcd-password"),
    group: value("group") ?? "",
    timeoutMs,
  };
}
