/**
 * Options of `locksmithd serve` as data: one row per key (its flag, its
 * `LOCKSMITHD_FLEETLOCK_*` environment variable, parser, default and
 * description), the same kind of table as locksmithd's keys
 * (`lib/common/key_table.ts`). The command line, `--help` (`help.ts`), the
 * resolution (flag > environment > default) into {@link ServeOptions} and
 * the table of docs/configuration.md (`deno task docs`) follow from it.
 * The etcd settings are locksmithd's own (`--config`, `--endpoint`,
 * update.conf, `LOCKSMITHD_*`) and are resolved by the daemon's config.
 *
 * To add an option, add one row to {@link SERVE_OPTIONS} (and the field it
 * fills to {@link ServeValues}); options that only make sense together get
 * a rule in {@link resolveServeOptions}. Then run `deno task docs`.
 *
 * @module
 */

import { walkFlags } from "../common/flag_walk.ts";
import { quote, UsageError } from "../common/errors.ts";
import type { KeyFlag, KeyRow } from "../common/key_table.ts";
import {
  anyText,
  duration,
  ValueDefect,
  type ValueParser,
} from "../common/value_parsers.ts";
import { ANY_GROUP } from "./auth.ts";
import { DEFAULT_READ_TIMEOUT_MS } from "./handler.ts";
import {
  DEFAULT_LISTEN,
  groupList,
  groupTokens,
  listenAddress,
  type ListenOn,
  slotCounts,
} from "./serve_parsers.ts";

export { DEFAULT_LISTEN, type ListenOn, parseListen } from "./serve_parsers.ts";

/** What the rows of {@link SERVE_OPTIONS} fill, by field. */
export interface ServeValues {
  /** `LOCKSMITHD_FLEETLOCK_LISTEN`. */
  readonly listen: ListenOn;
  /** `LOCKSMITHD_FLEETLOCK_TLS_CERT`. */
  readonly tlsCertFile: string | undefined;
  /** `LOCKSMITHD_FLEETLOCK_TLS_KEY`. */
  readonly tlsKeyFile: string | undefined;
  /** `LOCKSMITHD_FLEETLOCK_GROUPS`: the only groups served, or any. */
  readonly groups: readonly string[] | undefined;
  /** `LOCKSMITHD_FLEETLOCK_SLOTS`: slot counts by group. */
  readonly slots: ReadonlyMap<string, number>;
  /** `LOCKSMITHD_FLEETLOCK_TOKENS`: tokens by group (`*`: every group). */
  readonly tokens: ReadonlyMap<string, readonly string[]>;
  /** `LOCKSMITHD_FLEETLOCK_READ_TIMEOUT`, in ms. */
  readonly readTimeoutMs: number;
}

/** A row of {@link SERVE_OPTIONS} that fills the {@link ServeValues} property `field`. */
export interface ServeKey<F extends keyof ServeValues> extends KeyRow {
  /** Every option of `serve` has a flag. */
  readonly flag: KeyFlag;
  /** The property this key fills. */
  readonly field: F;
  /** Turns the trimmed, non-empty value into the property's type; throws a {@link ValueDefect}. */
  readonly parse: ValueParser<NonNullable<ServeValues[F]>>;
  /** The property's value when the key is unset or empty. */
  readonly default: ServeValues[F];
}

/** One row of {@link SERVE_OPTIONS}. */
export type ServeOptionSpec = {
  [F in keyof ServeValues]: ServeKey<F>;
}[keyof ServeValues];

/** The options of `serve`, in the order of `--help` and docs/configuration.md. */
export const SERVE_OPTIONS: readonly ServeOptionSpec[] = Object.freeze(
  [
    {
      key: "LOCKSMITHD_FLEETLOCK_LISTEN",
      flag: { name: "listen", value: "HOST:PORT", example: "0.0.0.0:8080" },
      field: "listen",
      parse: listenAddress(),
      default: Object.freeze({ hostname: "127.0.0.1", port: 8080 }),
      shownDefault: `\`${DEFAULT_LISTEN}\``,
      description:
        "address to listen on; IPv6 as `[::1]:8080`; port 0 picks a free one",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_TLS_CERT",
      flag: {
        name: "tls-cert",
        value: "FILE",
        example: "/etc/locksmith/tls.pem",
      },
      field: "tlsCertFile",
      parse: anyText(),
      default: undefined,
      shownDefault: "none: plain HTTP",
      description: "PEM certificate chain: serve HTTPS only (with `--tls-key`)",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_TLS_KEY",
      flag: {
        name: "tls-key",
        value: "FILE",
        example: "/etc/locksmith/tls.key",
      },
      field: "tlsKeyFile",
      parse: anyText(),
      default: undefined,
      description: "PEM private key of `--tls-cert`",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_GROUPS",
      flag: {
        name: "groups",
        value: "G1,G2",
        example: "default,web",
        repeatable: true,
      },
      field: "groups",
      parse: groupList(),
      default: undefined,
      shownDefault: "any valid group",
      description: "serve only these groups",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_SLOTS",
      flag: {
        name: "slots",
        value: "GROUP=N",
        example: "default=2",
        repeatable: true,
      },
      field: "slots",
      parse: slotCounts(),
      default: new Map<string, number>(),
      shownDefault: "none: the stored `max` stands",
      description:
        "slot count of each group (0 to 1,000,000), stored at start as `locksmithctl set-max` would",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_TOKENS",
      flag: {
        name: "token",
        value: "GROUP=TOKEN",
        example: "web=s3cret",
        repeatable: true,
      },
      field: "tokens",
      parse: groupTokens(),
      default: new Map<string, string[]>(),
      shownDefault: "none: no token needed",
      secret: true,
      description:
        "tokens per group, sent as `Authorization: Bearer` (or as the password of Basic credentials); `*` for every group; several per group for rotation",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_READ_TIMEOUT",
      flag: { name: "read-timeout", value: "DURATION", example: "10s" },
      field: "readTimeoutMs",
      parse: duration({ example: "10s", positive: true }),
      default: DEFAULT_READ_TIMEOUT_MS,
      shownDefault: "`10s`",
      description: "time a request body may take to arrive",
    },
  ] satisfies readonly ServeOptionSpec[],
);

/** Every environment variable of {@link SERVE_OPTIONS}. */
export const SERVE_ENV_KEYS: readonly string[] = Object.freeze(
  SERVE_OPTIONS.map((o) => o.key),
);

/** The parsed command line of `serve`. */
export interface ServeArgs {
  /** `--help` or `-h` was given. */
  readonly help: boolean;
  /** `--version` was given. */
  readonly version: boolean;
  /** `--config` files, or `undefined` for the daemon's default files. */
  readonly configFiles: readonly string[] | undefined;
  /** Daemon config overrides by key (`--endpoint` as `LOCKSMITHD_ENDPOINT`). */
  readonly daemonFlags: Readonly<Record<string, string>>;
  /** `serve` option values by environment key (repeated flags joined with `,`). */
  readonly values: Readonly<Record<string, string>>;
}

const SEE_HELP = "see locksmithd serve --help";

/** The flags for `node:util` parseArgs: every value flag takes a string. */
const ARG_OPTIONS = Object.fromEntries([
  ["help", { type: "boolean", short: "h" }],
  ["version", { type: "boolean" }],
  ["config", { type: "string", multiple: true }],
  ["endpoint", { type: "string", multiple: true }],
  ...SERVE_OPTIONS.map((o) => [o.flag.name, {
    type: "string",
    multiple: true,
  }]),
]) as Record<string, { type: "string" | "boolean"; multiple?: boolean }>;

/**
 * Parses the arguments of `serve` (after the word `serve`). Throws a
 * {@link UsageError} for an unknown flag, a missing value, a value given to
 * `--help`/`--version`, or a positional argument.
 */
export function parseServeArgs(args: readonly string[]): ServeArgs {
  const { help, version, values } = walkFlags(args, {
    options: ARG_OPTIONS,
    seeHelp: SEE_HELP,
    known: (name) =>
      name === "config" || name === "endpoint" ||
      serveOption(name) !== undefined,
    needsValue: (name) =>
      `--${name} needs a value (${
        serveOption(name)?.flag.value ?? (name === "config" ? "FILE" : "URL")
      })`,
  });
  const configFiles: string[] = [];
  const endpoints: string[] = [];
  const lists = new Map<string, string[]>();
  for (const { name, rawName, value } of values) {
    if (name === "config") configFiles.push(value);
    else if (name === "endpoint") endpoints.push(value);
    else {
      const spec = serveOption(name)!;
      if (!spec.flag.repeatable && lists.has(spec.key)) {
        throw new UsageError(`${rawName} given twice; ${SEE_HELP}`);
      }
      lists.set(spec.key, [...(lists.get(spec.key) ?? []), value]);
    }
  }
  return {
    help,
    version,
    configFiles: configFiles.length > 0 ? configFiles : undefined,
    daemonFlags: endpoints.length > 0
      ? { LOCKSMITHD_ENDPOINT: endpoints.join(",") }
      : {},
    values: Object.fromEntries(
      [...lists].map(([key, values]) => [key, values.join(",")]),
    ),
  };
}

/** The `serve` option of flag `name`. */
function serveOption(name: string): ServeOptionSpec | undefined {
  return SERVE_OPTIONS.find((o) => o.flag.name === name);
}

/** The resolved options of `serve`. */
export interface ServeOptions {
  /** Where to listen. */
  readonly listen: ListenOn;
  /** Certificate and key files for HTTPS; `undefined` for plain HTTP. */
  readonly tls:
    | { readonly certFile: string; readonly keyFile: string }
    | undefined;
  /** The only groups served, or `undefined` for any valid group. */
  readonly groups: readonly string[] | undefined;
  /** Slot counts to apply at start, by group. */
  readonly slots: ReadonlyMap<string, number>;
  /** Tokens by group (`*`: every group); empty when no token is required. */
  readonly tokens: ReadonlyMap<string, readonly string[]>;
  /** Time a body may take to arrive, in ms. */
  readonly readTimeoutMs: number;
}

/** A key's value (trimmed) and where it came from: `--listen` or `environment`. */
interface Setting {
  readonly key: string;
  readonly value: string;
  readonly origin: string;
}

/** `KEY="value" (from origin) defect`; a secret key's value is not shown. */
function invalid(row: KeyRow, setting: Setting, defect: string): UsageError {
  const shown = row.secret
    ? "(value not shown: it holds tokens)"
    : quote(setting.value, 120);
  return new UsageError(
    `${setting.key}=${shown} (from ${setting.origin}) ${defect}`,
  );
}

/** Each key's setting that is not empty: the flag's value, else the environment's. */
function collectSettings(
  flags: Readonly<Record<string, string | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
): Map<string, Setting> {
  const settings = new Map<string, Setting>();
  for (const { key, flag } of SERVE_OPTIONS) {
    const [value, origin] = flags[key] !== undefined
      ? [flags[key], `--${flag.name}`]
      : [env[key], "environment"];
    if (value !== undefined && value.trim() !== "") {
      settings.set(key, { key, value: value.trim(), origin });
    }
  }
  return settings;
}

/** Every row's parsed value, or its default when unset; a defect names the key. */
function parseRows(settings: ReadonlyMap<string, Setting>): ServeValues {
  const values: Record<string, unknown> = {};
  for (const row of SERVE_OPTIONS) {
    const setting = settings.get(row.key);
    if (setting === undefined) {
      values[row.field] = row.default;
      continue;
    }
    try {
      values[row.field] = row.parse(setting.value);
    } catch (error) {
      if (!(error instanceof ValueDefect)) throw error;
      throw invalid(row, setting, error.defect);
    }
  }
  return values as unknown as ServeValues;
}

/** Rule: a certificate needs its key, and a key its certificate. */
function tlsOf(
  values: ServeValues,
  settings: ReadonlyMap<string, Setting>,
): ServeOptions["tls"] {
  const { tlsCertFile: certFile, tlsKeyFile: keyFile } = values;
  if (certFile !== undefined && keyFile !== undefined) {
    return { certFile, keyFile };
  }
  const [given, missing] = certFile === undefined
    ? [settings.get("LOCKSMITHD_FLEETLOCK_TLS_KEY"), "TLS_CERT (--tls-cert)"]
    : [settings.get("LOCKSMITHD_FLEETLOCK_TLS_CERT"), "TLS_KEY (--tls-key)"];
  if (given === undefined) return undefined;
  throw new UsageError(
    `${given.key} (from ${given.origin}) needs LOCKSMITHD_FLEETLOCK_${missing} too`,
  );
}

/** Rule: with `--groups`, slots and tokens name only groups served (or `*`). */
function checkServed(
  values: ServeValues,
  settings: ReadonlyMap<string, Setting>,
): void {
  const { groups } = values;
  if (groups === undefined) return;
  for (const row of SERVE_OPTIONS) {
    if (row.field !== "slots" && row.field !== "tokens") continue;
    const setting = settings.get(row.key);
    for (const group of values[row.field].keys()) {
      if (setting === undefined || group === ANY_GROUP) continue;
      if (groups.includes(group)) continue;
      throw invalid(
        row,
        setting,
        `names group ${
          quote(group)
        }, which is not in LOCKSMITHD_FLEETLOCK_GROUPS (--groups)`,
      );
    }
  }
}

/**
 * Resolves the options of `serve` from flag values (by environment key, as
 * in {@link ServeArgs.values}) and the environment; a flag wins, and an
 * empty value means the default. Each row of {@link SERVE_OPTIONS} is parsed
 * by its parser, then the rules that tie keys together are checked. Pure.
 * Throws a {@link UsageError} naming the key, its origin and what is
 * accepted (never showing a token).
 */
export function resolveServeOptions(
  flags: Readonly<Record<string, string | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
): ServeOptions {
  const settings = collectSettings(flags, env);
  const values = parseRows(settings);
  const tls = tlsOf(values, settings);
  checkServed(values, settings);
  const { listen, groups, slots, tokens, readTimeoutMs } = values;
  return { listen, tls, groups, slots, tokens, readTimeoutMs };
}
