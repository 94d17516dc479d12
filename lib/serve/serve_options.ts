/**
 * Options of `locksmithd serve`: one table of keys (flag and
 * `LOCKSMITHD_FLEETLOCK_*` environment variable), the command line, and
 * their resolution (flag > environment > default) into {@link ServeOptions}.
 * The etcd settings are locksmithd's own (`--config`, `--endpoint`,
 * update.conf, `LOCKSMITHD_*`) and are resolved by the daemon's config.
 *
 * @module
 */

import { walkFlags } from "../common/flag_walk.ts";
import { quote, UsageError } from "../common/errors.ts";
import {
  duration,
  splitHostPort,
  ValueDefect,
} from "../common/value_parsers.ts";
import { MAX_SLOTS } from "../semaphore/document.ts";
import { groupDefect, TOKEN_PATTERN } from "../fleetlock/protocol/protocol.ts";
import { ANY_GROUP } from "./auth.ts";
import { DEFAULT_READ_TIMEOUT_MS } from "./handler.ts";

/** One option of `serve`: its flag, its environment variable, its help. */
export interface ServeOptionSpec {
  /** Flag name without dashes, e.g. `listen`. */
  readonly flag: string;
  /** Environment variable, e.g. `LOCKSMITHD_FLEETLOCK_LISTEN`. */
  readonly key: string;
  /** Placeholder of the value in the help text. */
  readonly value: string;
  /** Whether the flag may repeat (values are comma-separated lists). */
  readonly list: boolean;
  /** One line of help. */
  readonly help: string;
}

/** Default of `--listen`. */
export const DEFAULT_LISTEN = "127.0.0.1:8080";

/** The options of `serve`, in help order. */
export const SERVE_OPTIONS: readonly ServeOptionSpec[] = Object.freeze([
  {
    flag: "listen",
    key: "LOCKSMITHD_FLEETLOCK_LISTEN",
    value: "HOST:PORT",
    list: false,
    help: `address (default ${DEFAULT_LISTEN}; IPv6: [::1]:8080)`,
  },
  {
    flag: "tls-cert",
    key: "LOCKSMITHD_FLEETLOCK_TLS_CERT",
    value: "FILE",
    list: false,
    help: "PEM certificate chain: serve HTTPS (with --tls-key)",
  },
  {
    flag: "tls-key",
    key: "LOCKSMITHD_FLEETLOCK_TLS_KEY",
    value: "FILE",
    list: false,
    help: "PEM private key of --tls-cert",
  },
  {
    flag: "groups",
    key: "LOCKSMITHD_FLEETLOCK_GROUPS",
    value: "G1,G2",
    list: true,
    help: "serve only these groups (default: any group)",
  },
  {
    flag: "slots",
    key: "LOCKSMITHD_FLEETLOCK_SLOTS",
    value: "GROUP=N",
    list: true,
    help: "slot count of GROUP, stored at start (as set-max)",
  },
  {
    flag: "token",
    key: "LOCKSMITHD_FLEETLOCK_TOKENS",
    value: "GROUP=TOKEN",
    list: true,
    help: "require TOKEN for GROUP (* for all groups)",
  },
  {
    flag: "read-timeout",
    key: "LOCKSMITHD_FLEETLOCK_READ_TIMEOUT",
    value: "DURATION",
    list: false,
    help: "time a request body may take (default 10s)",
  },
]);

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
  ...SERVE_OPTIONS.map((o) => [o.flag, { type: "string", multiple: true }]),
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
        serveOption(name)?.value ?? (name === "config" ? "FILE" : "URL")
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
      if (!spec.list && lists.has(spec.key)) {
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
  return SERVE_OPTIONS.find((o) => o.flag === name);
}

/** The resolved options of `serve`. */
export interface ServeOptions {
  /** Where to listen. */
  readonly listen: { readonly hostname: string; readonly port: number };
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

/** `--read-timeout`: `is not a duration longer than 0, like 10s (...)`, `is longer than 24d`. */
const READ_TIMEOUT = duration({ example: "10s", positive: true });

interface Setting {
  readonly key: string;
  readonly value: string;
  readonly origin: string;
}

function invalid(setting: Setting, defect: string): UsageError {
  const shown = setting.key === "LOCKSMITHD_FLEETLOCK_TOKENS"
    ? "(value not shown: it holds tokens)"
    : quote(setting.value, 120);
  return new UsageError(
    `${setting.key}=${shown} (from ${setting.origin}) ${defect}`,
  );
}

/** Parses `HOST:PORT` or `[IPv6]:PORT`; returns a defect message or the address. */
export function parseListen(
  text: string,
): { hostname: string; port: number } | string {
  const address = splitHostPort(text);
  if (address === undefined) {
    return `is not HOST:PORT, e.g. ${DEFAULT_LISTEN}, 0.0.0.0:8080 or [::1]:8080`;
  }
  if (address.port > 65535) {
    return `has port ${address.port}, outside 0..65535`;
  }
  return address;
}

/** Splits `GROUP=VALUE,GROUP=VALUE`; checks the group names (and `*` when allowed). */
function pairs(
  setting: Setting,
  anyGroup: boolean,
): [group: string, value: string][] {
  return setting.value.split(",").map((item) => item.trim()).filter((item) =>
    item !== ""
  ).map((item) => {
    const eq = item.indexOf("=");
    if (eq <= 0) {
      throw invalid(setting, `has an item that is not GROUP=VALUE`);
    }
    const group = item.slice(0, eq).trim();
    if (!(anyGroup && group === ANY_GROUP)) {
      const defect = groupDefect(group);
      if (defect !== undefined) {
        throw invalid(setting, `has a group that ${defect}`);
      }
    }
    return [group, item.slice(eq + 1).trim()];
  });
}

/**
 * Resolves the options of `serve` from flag values (by environment key, as
 * in {@link ServeArgs.values}) and the environment; a flag wins, and an
 * empty value means the default. Pure. Throws a {@link UsageError} naming
 * the key, its origin and what is accepted (never showing a token).
 */
export function resolveServeOptions(
  flags: Readonly<Record<string, string | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
): ServeOptions {
  const get = (key: string): Setting | undefined => {
    const spec = SERVE_OPTIONS.find((o) => o.key === key) as ServeOptionSpec;
    const flag = flags[key];
    const setting = flag !== undefined
      ? { key, value: flag.trim(), origin: `--${spec.flag}` }
      : env[key] !== undefined
      ? { key, value: (env[key] as string).trim(), origin: "environment" }
      : undefined;
    return setting?.value === "" ? undefined : setting;
  };

  const listenSetting = get("LOCKSMITHD_FLEETLOCK_LISTEN");
  const listen = parseListen(listenSetting?.value ?? DEFAULT_LISTEN);
  if (typeof listen === "string") {
    throw invalid(listenSetting as Setting, listen);
  }

  const cert = get("LOCKSMITHD_FLEETLOCK_TLS_CERT");
  const key = get("LOCKSMITHD_FLEETLOCK_TLS_KEY");
  if ((cert === undefined) !== (key === undefined)) {
    const [given, missing] = cert === undefined
      ? [key as Setting, "LOCKSMITHD_FLEETLOCK_TLS_CERT (--tls-cert)"]
      : [cert, "LOCKSMITHD_FLEETLOCK_TLS_KEY (--tls-key)"];
    throw new UsageError(
      `${given.key} (from ${given.origin}) needs ${missing} too`,
    );
  }

  const groupsSetting = get("LOCKSMITHD_FLEETLOCK_GROUPS");
  let groups: string[] | undefined;
  if (groupsSetting !== undefined) {
    groups = [
      ...new Set(
        groupsSetting.value.split(",").map((g) => g.trim()).filter((g) =>
          g !== ""
        ),
      ),
    ];
    for (const group of groups) {
      const defect = groupDefect(group);
      if (defect !== undefined) {
        throw invalid(groupsSetting, `has a group that ${defect}`);
      }
    }
  }
  const checkServed = (setting: Setting, group: string) => {
    if (
      groups !== undefined && group !== ANY_GROUP && !groups.includes(group)
    ) {
      throw invalid(
        setting,
        `names group ${
          quote(group)
        }, which is not in LOCKSMITHD_FLEETLOCK_GROUPS (--groups)`,
      );
    }
  };

  const slots = new Map<string, number>();
  const slotsSetting = get("LOCKSMITHD_FLEETLOCK_SLOTS");
  if (slotsSetting !== undefined) {
    for (const [group, text] of pairs(slotsSetting, false)) {
      checkServed(slotsSetting, group);
      const n = /^\d{1,7}$/.test(text) ? Number(text) : NaN;
      if (!(n <= MAX_SLOTS)) {
        throw invalid(
          slotsSetting,
          `gives group ${group} ${
            quote(text, 20)
          } slots; expected an integer from 0 to ${MAX_SLOTS}`,
        );
      }
      if (slots.has(group)) {
        throw invalid(slotsSetting, `gives group ${group} slots twice`);
      }
      slots.set(group, n);
    }
  }

  const tokens = new Map<string, string[]>();
  const tokensSetting = get("LOCKSMITHD_FLEETLOCK_TOKENS");
  if (tokensSetting !== undefined) {
    for (const [group, token] of pairs(tokensSetting, true)) {
      checkServed(tokensSetting, group);
      if (!TOKEN_PATTERN.test(token)) {
        throw invalid(
          tokensSetting,
          `has a token for group ${group} that is empty or not made of A-Z a-z 0-9 - . _ ~ + / (then =)`,
        );
      }
      tokens.set(group, [...(tokens.get(group) ?? []), token]);
    }
  }

  const timeoutSetting = get("LOCKSMITHD_FLEETLOCK_READ_TIMEOUT");
  let readTimeoutMs = DEFAULT_READ_TIMEOUT_MS;
  if (timeoutSetting !== undefined) {
    try {
      readTimeoutMs = READ_TIMEOUT(timeoutSetting.value);
    } catch (error) {
      if (!(error instanceof ValueDefect)) throw error;
      throw invalid(timeoutSetting, error.defect);
    }
  }

  return {
    listen,
    tls: cert && key ? { certFile: cert.value, keyFile: key.value } : undefined,
    groups,
    slots,
    tokens,
    readTimeoutMs,
  };
}
