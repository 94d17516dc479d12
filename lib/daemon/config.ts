/**
 * locksmithd's configuration: `update.conf` files, environment variables and
 * command-line flags, resolved into one validated {@link DaemonConfig}.
 *
 * Precedence, highest first: flag > environment > later file > earlier file >
 * default. An empty value (`KEY=`) is a value like any other: it hides the
 * lower levels and means "use the default" (as in the original locksmithd,
 * which read everything from environment variables).
 *
 * {@link resolveDaemonConfig} is pure and takes file texts that were already
 * read; {@link loadDaemonConfig} reads the files and calls it.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parse as parseDotenv } from "dotenv";
import { quote, UsageError } from "../common/errors.ts";
import {
  MAX_DURATION_MS,
  MAX_DURATION_TEXT,
  parseDuration,
} from "../common/duration.ts";
import type { EtcdConnectionOptions } from "../etcd/grpc_client.ts";
import { parseEndpoints } from "../etcd/endpoints.ts";
import { idDefect } from "../common/machine_id.ts";
import {
  canonicalTimeZone,
  parseRebootWindow,
  type RebootWindow,
  RebootWindowError,
} from "./reboot_window.ts";

/** Config files read when no `--config` is given, in order; a later file wins. */
export const DEFAULT_CONFIG_FILES: readonly string[] = Object.freeze([
  "/usr/share/coreos/update.conf",
  "/etc/coreos/update.conf",
  "/usr/share/flatcar/update.conf",
  "/etc/flatcar/update.conf",
]);

/** What locksmithd does once a reboot is needed. */
export type RebootStrategy = "etcd-lock" | "reboot" | "best-effort" | "off";

/** Every accepted {@link RebootStrategy}, in the order shown in messages. */
export const REBOOT_STRATEGIES: readonly RebootStrategy[] = Object.freeze([
  "etcd-lock",
  "reboot",
  "best-effort",
  "off",
]);

/** Strategy used when `REBOOT_STRATEGY` is unset or empty. */
export const DEFAULT_REBOOT_STRATEGY: RebootStrategy = "best-effort";

/** Sentinel file path used when `LOCKSMITHD_REBOOT_SENTINEL` is unset or empty. */
export const DEFAULT_REBOOT_SENTINEL = "/run/reboot-required";

/** Login delay used when `LOCKSMITHD_LOGIN_DELAY` is unset or empty: 5 minutes. */
export const DEFAULT_LOGIN_DELAY_MS = 300_000;

/** etcd request deadline used when `LOCKSMITHD_ETCD_TIMEOUT` is unset or empty: 5 seconds. */
export const DEFAULT_ETCD_TIMEOUT_MS = 5_000;

/** Every config key locksmithd reads, from files, the environment or flags. */
export const DAEMON_CONFIG_KEYS: readonly string[] = Object.freeze([
  "REBOOT_STRATEGY",
  "LOCKSMITHD_ENDPOINT",
  "LOCKSMITHD_ETCD_CAFILE",
  "LOCKSMITHD_ETCD_CERTFILE",
  "LOCKSMITHD_ETCD_KEYFILE",
  "LOCKSMITHD_ETCD_USERNAME",
  "LOCKSMITHD_ETCD_PASSWORD",
  "LOCKSMITHD_ETCD_TIMEOUT",
  "LOCKSMITHD_GROUP",
  "LOCKSMITHD_REBOOT_WINDOW_START",
  "LOCKSMITHD_REBOOT_WINDOW_LENGTH",
  "REBOOT_WINDOW_START",
  "REBOOT_WINDOW_LENGTH",
  "LOCKSMITHD_REBOOT_WINDOW_TZ",
  "LOCKSMITHD_MACHINE_ID",
  "LOCKSMITHD_REBOOT_SENTINEL",
  "LOCKSMITHD_LOGIN_DELAY",
]);

const KNOWN_KEYS = new Set(DAEMON_CONFIG_KEYS);

/** Command-line flags of locksmithd that override a config key, and that key. */
export const DAEMON_FLAG_KEYS: Readonly<Record<string, string>> = Object
  .freeze({
    strategy: "REBOOT_STRATEGY",
    endpoint: "LOCKSMITHD_ENDPOINT",
    group: "LOCKSMITHD_GROUP",
    "machine-id": "LOCKSMITHD_MACHINE_ID",
  });

const FLAG_OF_KEY: Record<string, string> = Object.fromEntries(
  Object.entries(DAEMON_FLAG_KEYS).map(([flag, key]) => [key, `--${flag}`]),
);

/** One config file's text, already read. */
export interface ConfigSource {
  /** Path of the file, used in messages (`/etc/coreos/update.conf:3`). */
  readonly path: string;
  /** The file's whole text. */
  readonly text: string;
}

/**
 * Values given on the command line, by config key (e.g. `REBOOT_STRATEGY`),
 * as returned in {@link DaemonArgs.flags}. `undefined` values are ignored.
 */
export type ConfigFlags = Readonly<Record<string, string | undefined>>;

/** The environment: variable name to value; `undefined` values are ignored. */
export type ConfigEnv = Readonly<Record<string, string | undefined>>;

/** locksmithd's validated configuration. */
export interface DaemonConfig {
  /** What to do once a reboot is needed (`REBOOT_STRATEGY`). */
  readonly strategy: RebootStrategy;
  /** How to reach etcd (`LOCKSMITHD_ENDPOINT`, `LOCKSMITHD_ETCD_*`). */
  readonly etcd: EtcdConnectionOptions;
  /** Semaphore group (`LOCKSMITHD_GROUP`); `undefined` for the default group. */
  readonly group: string | undefined;
  /** Reboot window, `undefined` when reboots may happen at any time. */
  readonly rebootWindow: RebootWindow | undefined;
  /** Holder id overriding `/etc/machine-id` (`LOCKSMITHD_MACHINE_ID`), if set. */
  readonly machineId: string | undefined;
  /** Absolute path of the file that marks a needed reboot (`LOCKSMITHD_REBOOT_SENTINEL`). */
  readonly rebootSentinel: string;
  /** Delay before rebooting while users are logged in, in ms; 0 disables it (`LOCKSMITHD_LOGIN_DELAY`). */
  readonly loginDelayMs: number;
  /** The config files that were read, in order (missing ones left out). */
  readonly configFiles: readonly string[];
  /**
   * Where each key that was set came from: `/etc/coreos/update.conf:3`,
   * `environment` or a flag such as `--strategy`. Keys left at their default
   * are absent.
   */
  readonly origins: Readonly<Record<string, string>>;
  /** One-line warnings for the caller to log, e.g. about unknown `LOCKSMITHD_*` keys. */
  readonly warnings: readonly string[];
}

/** A `KEY=value` assignment found in a config file. */
export interface ConfigLine {
  /** The key, e.g. `REBOOT_STRATEGY`. */
  readonly key: string;
  /** The value as dotenv parses it (unquoted, trimmed, inline comment removed). */
  readonly value: string;
  /** 1-based line number. */
  readonly line: number;
}

const ASSIGNMENT_RE = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/;
const IGNORABLE_RE = /^\s*(?:#.*)?$/;
const TRAILER_RE = /^\s*(?:#.*)?$/;

/** The line for an error message: quoted, shortened, hidden if it may hold a password. */
function excerpt(line: string): string {
  if (/passw/i.test(line)) return "(not shown: it may hold a password)";
  const short = line.length > 80 ? `${line.slice(0, 77)}...` : line;
  return quote(short);
}

/** Checks that a quoted value is closed and followed by nothing but a comment. */
function quoteDefect(rawValue: string): string | undefined {
  const value = rawValue.trimStart();
  const quote = value[0];
  if (quote !== '"' && quote !== "'" && quote !== "`") return undefined;
  let i = 1;
  while (i < value.length && value[i] !== quote) {
    i += value[i] === "\\" ? 2 : 1;
  }
  if (i >= value.length) return `has an unterminated ${quote} quote`;
  if (!TRAILER_RE.test(value.slice(i + 1))) {
    return "has text after its closing quote; quote the whole value";
  }
  return undefined;
}

/**
 * Parses the text of an `update.conf` file into its assignments, in order.
 *
 * Each line is blank, a `#` comment, or `[export ]KEY=value` with KEY made of
 * letters, digits and `_` (not starting with a digit). Values are read by
 * dotenv: they may be unquoted and contain spaces (`KEY=Thu 04:00`), or be
 * quoted with `"`, `'` or `` ` ``; an unquoted ` #` starts a comment. A quoted
 * value must end on its own line. CRLF line endings and a leading byte-order
 * mark are accepted.
 *
 * Throws a {@link UsageError} naming `path` and the line number of the first
 * malformed line, e.g. `update.conf:7: line is not KEY=value or a # comment
 * (…): "oops"`.
 */
export function parseConfigText(path: string, text: string): ConfigLine[] {
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
  const result: ConfigLine[] = [];
  lines.forEach((line, index) => {
    const where = `${path}:${index + 1}`;
    if (IGNORABLE_RE.test(line)) return;
    const match = ASSIGNMENT_RE.exec(line);
    if (match === null) {
      throw new UsageError(
        `${where}: line is not KEY=value or a # comment (KEY is letters, digits and _, optionally after "export "): ${
          excerpt(line)
        }`,
      );
    }
    const key = match[1] as string;
    const defect = quoteDefect(match[2] as string);
    if (defect !== undefined) {
      throw new UsageError(`${where}: value of ${key} ${defect}`);
    }
    const value = parseDotenv(line)[key];
    if (value === undefined) {
      throw new UsageError(
        `${where}: line is not KEY=value: ${excerpt(line)}`,
      );
    }
    result.push({ key, value, line: index + 1 });
  });
  return result;
}

interface Setting {
  readonly key: string;
  readonly value: string;
  readonly origin: string;
}

function isRelevant(key: string): boolean {
  return KNOWN_KEYS.has(key) || key.startsWith("LOCKSMITHD_");
}

function invalid(setting: Setting, defect: string): UsageError {
  // Long enough to show any acceptable id (256 bytes) in full.
  return new UsageError(
    `${setting.key}=${
      quote(setting.value, 300)
    } (from ${setting.origin}) ${defect}`,
  );
}

const DURATION_UNITS = "units ms, s, m, h, d";

// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

/**
 * Resolves locksmithd's configuration from config file texts (in order, a
 * later one wins), the environment and command-line flags (by config key, see
 * {@link DAEMON_FLAG_KEYS}). Pure: reads nothing but the system's time zone
 * when a reboot window has no `LOCKSMITHD_REBOOT_WINDOW_TZ`.
 *
 * Only the keys in {@link DAEMON_CONFIG_KEYS} are read; other keys (such as
 * update_engine's `GROUP` and `SERVER`) are ignored, except unknown
 * `LOCKSMITHD_*` keys, which yield a warning. `LOCKSMITHD_REBOOT_WINDOW_START`
 * and `_LENGTH` fall back to `REBOOT_WINDOW_START` and `_LENGTH` each on its
 * own, after precedence is applied to each key.
 *
 * Throws a {@link UsageError} with one line naming the key, the value, where
 * it came from and what is accepted, e.g. `REBOOT_STRATEGY="fast" (from
 * /etc/coreos/update.conf:3) is not one of etcd-lock, reboot, best-effort, off`;
 * a malformed file line is reported as `path:line: …`.
 */
export function resolveDaemonConfig(
  sources: readonly ConfigSource[],
  env: ConfigEnv,
  flags: ConfigFlags = {},
): DaemonConfig {
  const settings = new Map<string, Setting>();
  for (const source of sources) {
    for (
      const { key, value, line } of parseConfigText(source.path, source.text)
    ) {
      if (isRelevant(key)) {
        settings.set(key, { key, value, origin: `${source.path}:${line}` });
      }
    }
  }
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && isRelevant(key)) {
      settings.set(key, { key, value, origin: "environment" });
    }
  }
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    if (!KNOWN_KEYS.has(key)) {
      throw new TypeError(`flags has ${key}, which is not a config key`);
    }
    settings.set(key, {
      key,
      value,
      origin: FLAG_OF_KEY[key] ?? "command line",
    });
  }

  const warnings: string[] = [];
  for (const setting of settings.values()) {
    if (!KNOWN_KEYS.has(setting.key)) {
      warnings.push(
        `unknown key ${setting.key} (from ${setting.origin}) is ignored`,
      );
    }
  }

  /** The setting of `key` when its value is not empty (passwords are not trimmed). */
  const get = (key: string): Setting | undefined => {
    const setting = settings.get(key);
    if (setting === undefined) return undefined;
    const value = key === "LOCKSMITHD_ETCD_PASSWORD"
      ? setting.value
      : setting.value.trim();
    return value === "" ? undefined : { ...setting, value };
  };
  const origins: Record<string, string> = {};
  for (const key of DAEMON_CONFIG_KEYS) {
    const setting = get(key);
    if (setting !== undefined) origins[key] = setting.origin;
  }

  // REBOOT_STRATEGY
  const strategySetting = get("REBOOT_STRATEGY");
  let strategy = DEFAULT_REBOOT_STRATEGY;
  if (strategySetting !== undefined) {
    if (
      !(REBOOT_STRATEGIES as readonly string[]).includes(strategySetting.value)
    ) {
      throw invalid(
        strategySetting,
        `is not one of ${REBOOT_STRATEGIES.join(", ")}`,
      );
    }
    strategy = strategySetting.value as RebootStrategy;
  }

  // etcd
  const endpointSetting = get("LOCKSMITHD_ENDPOINT");
  let endpoints: string[];
  try {
    endpoints = parseEndpoints(
      endpointSetting === undefined ? [] : [endpointSetting.value],
    );
  } catch (error) {
    if (!(error instanceof UsageError) || endpointSetting === undefined) {
      throw error;
    }
    throw invalid(endpointSetting, `is invalid: ${error.message}`);
  }
  const caFile = get("LOCKSMITHD_ETCD_CAFILE");
  const certFile = get("LOCKSMITHD_ETCD_CERTFILE");
  const keyFile = get("LOCKSMITHD_ETCD_KEYFILE");
  const username = get("LOCKSMITHD_ETCD_USERNAME");
  const password = get("LOCKSMITHD_ETCD_PASSWORD");
  requirePair(
    certFile,
    keyFile,
    "LOCKSMITHD_ETCD_CERTFILE",
    "LOCKSMITHD_ETCD_KEYFILE",
  );
  requirePair(
    username,
    password,
    "LOCKSMITHD_ETCD_USERNAME",
    "LOCKSMITHD_ETCD_PASSWORD",
  );
  const tlsSetting = caFile ?? certFile;
  const plainEndpoint = endpoints.find((e) => e.startsWith("http:"));
  if (tlsSetting !== undefined && plainEndpoint !== undefined) {
    throw new UsageError(
      `${tlsSetting.key} (from ${tlsSetting.origin}) asks for TLS but endpoint ${
        quote(plainEndpoint)
      } (from ${
        endpointSetting?.origin ?? "the default"
      }) uses http://; use https:// endpoints in LOCKSMITHD_ENDPOINT`,
    );
  }
  const timeoutSetting = get("LOCKSMITHD_ETCD_TIMEOUT");
  let timeoutMs = DEFAULT_ETCD_TIMEOUT_MS;
  if (timeoutSetting !== undefined) {
    const ms = parseDuration(timeoutSetting.value);
    if (ms === undefined || ms <= 0) {
      throw invalid(
        timeoutSetting,
        `is not a duration longer than 0, like 5s (${DURATION_UNITS})`,
      );
    }
    if (ms > MAX_DURATION_MS) {
      throw invalid(timeoutSetting, `is longer than ${MAX_DURATION_TEXT}`);
    }
    timeoutMs = ms;
  }
  const etcd: EtcdConnectionOptions = {
    endpoints,
    caFile: caFile?.value,
    certFile: certFile?.value,
    keyFile: keyFile?.value,
    username: username?.value,
    password: password?.value,
    timeoutMs,
  };

  // LOCKSMITHD_GROUP and LOCKSMITHD_MACHINE_ID
  const groupSetting = get("LOCKSMITHD_GROUP");
  if (groupSetting !== undefined) {
    const defect = idDefect(groupSetting.value);
    if (defect !== undefined) throw invalid(groupSetting, defect);
  }
  const machineIdSetting = get("LOCKSMITHD_MACHINE_ID");
  if (machineIdSetting !== undefined) {
    const defect = idDefect(machineIdSetting.value);
    if (defect !== undefined) throw invalid(machineIdSetting, defect);
  }

  // Reboot window
  const startSetting = get("LOCKSMITHD_REBOOT_WINDOW_START") ??
    get("REBOOT_WINDOW_START");
  const lengthSetting = get("LOCKSMITHD_REBOOT_WINDOW_LENGTH") ??
    get("REBOOT_WINDOW_LENGTH");
  const tzSetting = get("LOCKSMITHD_REBOOT_WINDOW_TZ");
  let rebootWindow: RebootWindow | undefined;
  if (startSetting !== undefined && lengthSetting === undefined) {
    throw invalid(
      startSetting,
      "is set but neither LOCKSMITHD_REBOOT_WINDOW_LENGTH nor REBOOT_WINDOW_LENGTH is; set both start and length, or neither",
    );
  }
  if (startSetting === undefined && lengthSetting !== undefined) {
    throw invalid(
      lengthSetting,
      "is set but neither LOCKSMITHD_REBOOT_WINDOW_START nor REBOOT_WINDOW_START is; set both start and length, or neither",
    );
  }
  if (startSetting !== undefined && lengthSetting !== undefined) {
    try {
      rebootWindow = parseRebootWindow(
        startSetting.value,
        lengthSetting.value,
        tzSetting?.value,
      );
    } catch (error) {
      if (!(error instanceof RebootWindowError)) throw error;
      const setting = error.field === "start"
        ? startSetting
        : error.field === "length"
        ? lengthSetting
        : tzSetting;
      if (setting === undefined) throw error;
      throw invalid(setting, error.defect);
    }
  } else if (tzSetting !== undefined) {
    try {
      canonicalTimeZone(tzSetting.value);
    } catch (error) {
      if (!(error instanceof RebootWindowError)) throw error;
      throw invalid(tzSetting, error.defect);
    }
    warnings.push(
      `LOCKSMITHD_REBOOT_WINDOW_TZ (from ${tzSetting.origin}) has no effect without a reboot window`,
    );
  }

  // LOCKSMITHD_REBOOT_SENTINEL
  const sentinelSetting = get("LOCKSMITHD_REBOOT_SENTINEL");
  if (sentinelSetting !== undefined && !sentinelSetting.value.startsWith("/")) {
    throw invalid(sentinelSetting, "is not an absolute path");
  }
  if (sentinelSetting !== undefined && CONTROL_RE.test(sentinelSetting.value)) {
    throw invalid(sentinelSetting, "contains a control character");
  }

  // LOCKSMITHD_LOGIN_DELAY
  const delaySetting = get("LOCKSMITHD_LOGIN_DELAY");
  let loginDelayMs = DEFAULT_LOGIN_DELAY_MS;
  if (delaySetting !== undefined) {
    const ms = parseDuration(delaySetting.value);
    if (ms === undefined) {
      throw invalid(
        delaySetting,
        `is not a duration like 5m (${DURATION_UNITS}; 0 disables the delay)`,
      );
    }
    if (ms > MAX_DURATION_MS) {
      // A longer timer would fire at once: no delay at all.
      throw invalid(delaySetting, `is longer than ${MAX_DURATION_TEXT}`);
    }
    loginDelayMs = ms;
  }

  return {
    strategy,
    etcd,
    group: groupSetting?.value,
    rebootWindow,
    machineId: machineIdSetting?.value,
    rebootSentinel: sentinelSetting?.value ?? DEFAULT_REBOOT_SENTINEL,
    loginDelayMs,
    configFiles: sources.map((s) => s.path),
    origins,
    warnings,
  };
}

function requirePair(
  a: Setting | undefined,
  b: Setting | undefined,
  keyA: string,
  keyB: string,
): void {
  const [given, missing] = a !== undefined && b === undefined
    ? [a, keyB]
    : a === undefined && b !== undefined
    ? [b, keyA]
    : [undefined, undefined];
  if (given !== undefined) {
    throw new UsageError(
      `${given.key} is set (from ${given.origin}) but ${missing} is not; set both or neither`,
    );
  }
}

/** Options of {@link loadDaemonConfig}. */
export interface LoadDaemonConfigOptions {
  /**
   * Config files to read instead of {@link DEFAULT_CONFIG_FILES}, in order (a
   * later one wins). Each of these must exist; missing default files are skipped.
   */
  readonly configFiles?: readonly string[] | undefined;
  /** The environment, e.g. `Deno.env.toObject()`. */
  readonly env: ConfigEnv;
  /** Values from the command line, by config key (see {@link DaemonArgs.flags}). */
  readonly flags?: ConfigFlags | undefined;
}

/**
 * Reads the config files and resolves the configuration with
 * {@link resolveDaemonConfig}. A missing default file is skipped; a missing
 * file named in `configFiles`, or any file that cannot be read (a directory,
 * no permission), is a {@link UsageError} naming the file.
 */
export async function loadDaemonConfig(
  options: LoadDaemonConfigOptions,
): Promise<DaemonConfig> {
  const explicit = options.configFiles !== undefined;
  const paths = options.configFiles ?? DEFAULT_CONFIG_FILES;
  const sources: ConfigSource[] = [];
  for (const path of paths) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound && !explicit) continue;
      const reason = (error as Error).message.replace(/: \w+ '.*'$/, "");
      throw new UsageError(`cannot read config file ${path}: ${reason}`);
    }
    sources.push({ path, text: decodeConfig(path, bytes) });
  }
  return resolveDaemonConfig(sources, options.env, options.flags ?? {});
}

/**
 * Decodes a config file as UTF-8. Invalid bytes are an error naming the
 * line, not U+FFFD: a lossy decode would silently change a value (a group
 * name, a machine id).
 */
export function decodeConfig(path: string, bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let line = 1;
    let start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i < bytes.length && bytes[i] !== 0x0a) continue;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(
          bytes.subarray(start, i),
        );
      } catch {
        break;
      }
      line++;
      start = i + 1;
    }
    throw new UsageError(
      `${path}:${line}: line is not valid UTF-8; save the file as UTF-8`,
    );
  }
}

/** locksmithd's parsed command line. */
export interface DaemonArgs {
  /** `--help` or `-h` was given. */
  readonly help: boolean;
  /** `--version` was given. */
  readonly version: boolean;
  /** Files from `--config` (in order), or `undefined` to read {@link DEFAULT_CONFIG_FILES}. */
  readonly configFiles: readonly string[] | undefined;
  /**
   * Overrides by config key, for {@link resolveDaemonConfig}: `--strategy`,
   * `--group`, `--machine-id` and `--endpoint` (repeated ones joined with `,`).
   */
  readonly flags: Readonly<Record<string, string>>;
}

const ARG_OPTIONS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  config: { type: "string", multiple: true },
  strategy: { type: "string" },
  endpoint: { type: "string", multiple: true },
  group: { type: "string" },
  "machine-id": { type: "string" },
} as const;

const SEE_HELP = "see locksmithd --help";

/**
 * Parses locksmithd's arguments (without the program name). Throws a
 * {@link UsageError} with one line for an unknown flag, a missing or empty
 * value, a value given to `--help`/`--version`, or a positional argument.
 * Values are not validated here: {@link resolveDaemonConfig} does that.
 */
export function parseDaemonArgs(args: readonly string[]): DaemonArgs {
  const { tokens } = parseArgs({
    args: [...args],
    options: ARG_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  let help = false;
  let version = false;
  const configFiles: string[] = [];
  const endpoints: string[] = [];
  const flags: Record<string, string> = {};
  for (const token of tokens) {
    if (token.kind === "positional") {
      throw new UsageError(
        `unexpected argument ${quote(token.value)}; ${SEE_HELP}`,
      );
    }
    if (token.kind === "option-terminator") continue;
    const name = token.name;
    const spec = (ARG_OPTIONS as Record<string, { type: string }>)[name];
    if (spec === undefined) {
      throw new UsageError(
        `unknown flag ${token.rawName}; ${SEE_HELP}`,
      );
    }
    if (spec.type === "boolean") {
      if (token.value !== undefined) {
        throw new UsageError(`${token.rawName} takes no value; ${SEE_HELP}`);
      }
      if (name === "help") help = true;
      else version = true;
      continue;
    }
    const value = token.value;
    if (
      value === undefined || value === "" ||
      (!token.inlineValue && value.startsWith("-"))
    ) {
      throw new UsageError(
        `--${name} needs a value, e.g. ${EXAMPLES[name]}; ${SEE_HELP}`,
      );
    }
    if (name === "config") configFiles.push(value);
    else if (name === "endpoint") endpoints.push(value);
    else flags[DAEMON_FLAG_KEYS[name] as string] = value;
  }
  if (endpoints.length > 0) {
    flags["LOCKSMITHD_ENDPOINT"] = endpoints.join(",");
  }
  return {
    help,
    version,
    configFiles: configFiles.length > 0 ? configFiles : undefined,
    flags,
  };
}

const EXAMPLES: Record<string, string> = {
  config: "--config /etc/flatcar/update.conf",
  strategy: "--strategy etcd-lock",
  endpoint: "--endpoint http://127.0.0.1:2379",
  group: "--group web",
  "machine-id": "--machine-id node-1",
};

/** locksmithd's `--help` text. */
export const DAEMON_USAGE: string = `\
Usage: locksmithd [flags]

Reboots this machine when update_engine says an update needs it, taking a slot
of the etcd reboot semaphore first (unless the strategy says otherwise) and
waiting for the reboot window, if one is set.

Flags:
  --config FILE       read FILE instead of the default config files; repeat for
                      more files (a later file wins); each must exist
  --strategy NAME     same as REBOOT_STRATEGY
  --endpoint URL      same as LOCKSMITHD_ENDPOINT; repeatable, comma separated
  --group NAME        same as LOCKSMITHD_GROUP
  --machine-id ID     same as LOCKSMITHD_MACHINE_ID
  -h, --help          print this help and exit
  --version           print the version and exit

Config files (KEY=value lines, # comments; missing files are skipped):
  ${DEFAULT_CONFIG_FILES.join("\n  ")}

Precedence: flag > environment variable > later file > earlier file > default.
An empty value means the default.

Config keys:
  REBOOT_STRATEGY                 etcd-lock: take a semaphore slot, then
                                  reboot; reboot: reboot at once;
                                  best-effort (default): etcd-lock when etcd
                                  is reachable, else reboot; off: do nothing
  LOCKSMITHD_ENDPOINT             etcd URLs, comma separated
                                  (default http://127.0.0.1:2379)
  LOCKSMITHD_ETCD_CAFILE          PEM CA file for https:// endpoints
  LOCKSMITHD_ETCD_CERTFILE        PEM client certificate (with _KEYFILE)
  LOCKSMITHD_ETCD_KEYFILE         PEM client key (with _CERTFILE)
  LOCKSMITHD_ETCD_USERNAME        etcd user (with _PASSWORD)
  LOCKSMITHD_ETCD_PASSWORD        etcd password (with _USERNAME)
  LOCKSMITHD_ETCD_TIMEOUT         etcd request deadline (default 5s)
  LOCKSMITHD_GROUP                semaphore group (default: the global one)
  LOCKSMITHD_REBOOT_WINDOW_START  window start, [Day ]H:M, e.g. "Thu 04:00"
                                  or "04:00" (daily);
                                  fallback REBOOT_WINDOW_START
  LOCKSMITHD_REBOOT_WINDOW_LENGTH window length, e.g. 1h30m (< 24h daily,
                                  < 7d weekly); fallback REBOOT_WINDOW_LENGTH;
                                  set start and length together or not at all
  LOCKSMITHD_REBOOT_WINDOW_TZ     IANA time zone of the window, e.g.
                                  Europe/Berlin (default: the system's zone)
  LOCKSMITHD_MACHINE_ID           holder id (default: /etc/machine-id)
  LOCKSMITHD_REBOOT_SENTINEL      file that marks a needed reboot
                                  (default ${DEFAULT_REBOOT_SENTINEL})
  LOCKSMITHD_LOGIN_DELAY          wait before rebooting while users are
                                  logged in (default 5m, 0 disables)
GROUP and SERVER belong to update_engine and are ignored.

Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error.
`;
