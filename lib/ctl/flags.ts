/**
 * locksmithctl's flags as data: one row per flag, from which the command-line
 * parser (`args.ts`), the `LOCKSMITHCTL_<FLAG>` environment variables, the
 * "needs a value, e.g." examples, the help's global flags (`ctl_help.ts`) and
 * the flag table of docs/configuration.md (`deno task docs`) follow.
 *
 * To add a flag, add one row to {@link CTL_FLAGS} (and its parser, if none of
 * `lib/common/value_parsers.ts` fits), and nothing else. A flag with a value
 * names in `field` the {@link CtlInvocation} property it fills; a flag
 * without one fills a boolean property, or none (`--help`). Declare a new
 * property in `CtlInvocation` (the type checker insists, and checks the
 * parser and the default against it). Then run `deno task docs`.
 *
 * @module
 */

import type { CtlCommand, CtlInvocation } from "./args.ts";
import {
  MAX_DURATION_MS,
  MAX_DURATION_TEXT,
  parseDuration,
} from "../common/duration.ts";
import { DEFAULT_ENDPOINT, parseEndpoints } from "../etcd/client/endpoints.ts";
import {
  anyText,
  holderId,
  ValueDefect,
  type ValueParser,
} from "../common/value_parsers.ts";

/** Default of `--since` (`history`), in milliseconds: a day. */
export const DEFAULT_HISTORY_SINCE_MS = 86_400_000;

/** Default of `--timeout`, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 5_000;

/** The boolean {@link CtlInvocation} properties, which flags without a value fill. */
export type CtlSwitchField = {
  [K in keyof CtlInvocation]-?: CtlInvocation[K] extends boolean ? K : never;
}[keyof CtlInvocation];

/** The {@link CtlInvocation} properties that flags with a value fill. */
export type CtlValueField = Exclude<
  keyof CtlInvocation,
  "command" | "helpTopic" | "id" | "max" | "ttl" | CtlSwitchField
>;

/** What every row of {@link CTL_FLAGS} has. */
export interface CtlFlagBase {
  /** The flag without its dashes: `etcd-cafile` for `--etcd-cafile`. */
  readonly name: string;
  /** A one-letter alias, e.g. `h` for `-h`. */
  readonly short?: string | undefined;
  /** What the flag does, one line of Markdown for the help (backticks removed) and the docs. */
  readonly description: string;
  /** The only subcommand that reads the flag (e.g. `reset` for `--force`); absent for a global flag. */
  readonly command?: CtlCommand | undefined;
}

/**
 * A flag that takes a value, also read from `LOCKSMITHCTL_<FLAG>` when not
 * given (an empty variable means unset), and fills `field`.
 */
export interface CtlValueFlag<F extends CtlValueField> extends CtlFlagBase {
  /** Placeholder of the value in the help, e.g. `FILE`. */
  readonly value: string;
  /** A typical value, for the help and "needs a value, e.g." messages. */
  readonly example: string;
  /** The flag may be repeated; the values are joined with `,`. */
  readonly repeatable?: boolean | undefined;
  /** `--flag ""` means the default, instead of being refused as a missing value. */
  readonly emptyMeansDefault?: boolean | undefined;
  /** The property this flag fills. */
  readonly field: F;
  /** Turns a non-empty value into the property's type; throws a {@link ValueDefect}. */
  readonly parse: ValueParser<NonNullable<CtlInvocation[F]>>;
  /** The property's value when the flag is not given. */
  readonly default: CtlInvocation[F];
  /** The default as shown in the help and the docs (Markdown), if there is one to show. */
  readonly shownDefault?: string | undefined;
}

/** A flag without a value: `true` when given. */
export interface CtlSwitch extends CtlFlagBase {
  /** No value. */
  readonly value?: undefined;
  /** The boolean property it sets, or none (`--help` changes the command instead). */
  readonly field?: CtlSwitchField | undefined;
}

/** One row of {@link CTL_FLAGS}. */
export type CtlFlag =
  | { [F in CtlValueField]: CtlValueFlag<F> }[CtlValueField]
  | CtlSwitch;

/** A positive duration (an etcd deadline, `--since`): `is not a positive duration up to 24d, such as 5s or 500ms`. */
function timeout(): ValueParser<number> {
  return (text) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms <= 0 || ms > MAX_DURATION_MS) {
      throw new ValueDefect(
        `is not a positive duration up to ${MAX_DURATION_TEXT}, such as 5s or 500ms`,
      );
    }
    return ms;
  };
}

/** etcd endpoints; a bad one is refused with `endpoint "x" is not a URL like ...`. */
function endpointList(): ValueParser<readonly string[]> {
  return (text) => parseEndpoints([text]);
}

/** Every flag of locksmithctl, in the order of the help and docs/configuration.md. */
export const CTL_FLAGS: readonly CtlFlag[] = Object.freeze(
  [
    {
      name: "endpoint",
      value: "URL",
      example: DEFAULT_ENDPOINT,
      repeatable: true,
      field: "endpoints",
      parse: endpointList(),
      default: Object.freeze([DEFAULT_ENDPOINT]),
      shownDefault: `\`${DEFAULT_ENDPOINT}\``,
      description:
        "etcd endpoint, repeatable or comma separated; replaces the default",
    },
    {
      name: "etcd-cafile",
      value: "FILE",
      example: "/etc/ssl/etcd/ca.pem",
      field: "caFile",
      parse: anyText(),
      default: undefined,
      description:
        "CA certificate (PEM) of the etcd servers, for `https://` endpoints (CA-only TLS needs just this)",
    },
    {
      name: "etcd-certfile",
      value: "FILE",
      example: "/etc/ssl/etcd/client.pem",
      field: "certFile",
      parse: anyText(),
      default: undefined,
      description: "client certificate (PEM), with `--etcd-keyfile`",
    },
    {
      name: "etcd-keyfile",
      value: "FILE",
      example: "/etc/ssl/etcd/client-key.pem",
      field: "keyFile",
      parse: anyText(),
      default: undefined,
      description: "client private key (PEM)",
    },
    {
      name: "etcd-username",
      value: "NAME",
      example: "locksmith",
      field: "username",
      parse: anyText(),
      default: undefined,
      description: "etcd user, with `--etcd-password`",
    },
    {
      name: "etcd-password",
      value: "PASS",
      example: "PASSWORD",
      field: "password",
      parse: anyText(),
      default: undefined,
      description: "etcd password",
    },
    {
      name: "group",
      value: "NAME",
      example: "web",
      emptyMeansDefault: true,
      field: "group",
      parse: holderId(),
      default: "",
      shownDefault: "the fleet-wide semaphore",
      description: "use the semaphore of this group",
    },
    {
      name: "timeout",
      value: "DURATION",
      example: "5s",
      field: "timeoutMs",
      parse: timeout(),
      default: DEFAULT_TIMEOUT_MS,
      shownDefault: "`5s`",
      description: "give up on etcd after this long",
    },
    {
      name: "json",
      field: "json",
      description: "print one JSON object on stdout",
    },
    {
      name: "force",
      field: "force",
      command: "reset",
      description: "confirm `reset`",
    },
    {
      name: "stale",
      field: "stale",
      command: "unlock",
      description:
        "`unlock`: reclaim every slot whose holder's lease expired (what the slot TTL does)",
    },
    {
      name: "watch",
      field: "watch",
      command: "status",
      description: "`status`: redraw on every change until interrupted",
    },
    {
      name: "all-groups",
      field: "allGroups",
      command: "status",
      description:
        "`status`: one table of every group's semaphore; `history`: every group's reboots",
    },
    {
      name: "since",
      value: "DURATION",
      example: "24h",
      field: "sinceMs",
      parse: timeout(),
      default: DEFAULT_HISTORY_SINCE_MS,
      command: "history",
      description: "`history`: the reboots of this long back (default `24h`)",
    },
    { name: "help", short: "h", description: "show help" },
    { name: "version", field: "version", description: "print the version" },
  ] satisfies readonly CtlFlag[],
);

/** Returns the environment variable that fills `--flag`: `LOCKSMITHCTL_ETCD_CAFILE` for `etcd-cafile`. */
export function envNameOf(flag: string): string {
  return `LOCKSMITHCTL_${flag.toUpperCase().replaceAll("-", "_")}`;
}

/** The flags that take a value (and may come from the environment), in table order. */
export function valueFlags(): CtlValueFlag<CtlValueField>[] {
  return CTL_FLAGS.filter((f) => f.value !== undefined) as CtlValueFlag<
    CtlValueField
  >[];
}

/** The environment variables locksmithctl reads, one per flag with a value. */
export function ctlEnvNames(): string[] {
  return valueFlags().map((f) => envNameOf(f.name));
}

/** The flag in the help: `--endpoint URL`, `-h, --help`. */
export function flagSynopsis(flag: CtlFlag): string {
  const short = flag.short === undefined ? "" : `-${flag.short}, `;
  const value = flag.value === undefined ? "" : ` ${flag.value}`;
  return `${short}--${flag.name}${value}`;
}
