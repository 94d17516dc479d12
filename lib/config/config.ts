/**
 * locksmithd's configuration: `update.conf` files, environment variables and
 * command-line flags, resolved into one validated {@link DaemonConfig}.
 *
 * Precedence, highest first: flag > environment > later file > earlier file >
 * default. An empty value (`KEY=`) is a value like any other: it hides the
 * lower levels and means "use the default" (as in the original locksmithd,
 * which read everything from environment variables).
 *
 * The keys are data (`config_keys.ts`): {@link resolveDaemonConfig} parses
 * each key with its row's parser, then checks the few rules that tie keys
 * together (`config_rules.ts`). It is pure and takes file texts that were already
 * read; {@link loadDaemonConfig} reads the files and calls it. This module
 * also re-exports the configuration API of its neighbours (files, keys,
 * command line), so that callers import it from one place.
 *
 * @module
 */

import { ValueDefect } from "../common/value_parsers.ts";
import { didYouMean } from "../common/env_names.ts";
import type { EtcdConnectionOptions } from "../etcd/client/etcd_options.ts";
import type { RebootWindow } from "../schedule/reboot_window.ts";
import type { RebootSchedule } from "../schedule/schedule.ts";
import type { ParsedCommand } from "../host/command.ts";
import type { ListenAddress } from "../common/listen_address.ts";
import type { FleetLockIdSource } from "./config_keys_fleetlock.ts";
import {
  type ConfigSource,
  parseConfigText,
  readConfigSources,
} from "./config_file.ts";
import {
  DAEMON_CONFIG_KEYS,
  DAEMON_FLAG_KEYS,
  DAEMON_KEYS,
  type DaemonKey,
  type DerivedField,
  type RebootStrategy,
} from "./config_keys.ts";
import {
  invalidSetting,
  isSecret,
  rebootScheduleOf,
  rebootWindowOf,
  type Resolution,
  RULES,
} from "./config_rules.ts";

export {
  type ConfigLine,
  type ConfigSource,
  decodeConfig,
  DEFAULT_CONFIG_FILES,
  parseConfigText,
  readConfigSources,
} from "./config_file.ts";
export {
  DAEMON_CONFIG_KEYS,
  DAEMON_FLAG_KEYS,
  DAEMON_KEYS,
  type DaemonField,
  type DaemonFieldValue,
  type DaemonFlag,
  type DaemonKey,
  DEFAULT_ETCD_TIMEOUT_MS,
  DEFAULT_LOGIN_DELAY_MS,
  DEFAULT_REBOOT_SENTINEL,
  DEFAULT_REBOOT_STRATEGY,
  type DerivedField,
  REBOOT_STRATEGIES,
  type RebootStrategy,
} from "./config_keys.ts";
export {
  DAEMON_USAGE,
  type DaemonArgs,
  parseDaemonArgs,
} from "./daemon_args.ts";

/**
 * Values given on the command line, by config key (e.g. `REBOOT_STRATEGY`),
 * as returned in `DaemonArgs.flags`. `undefined` values are ignored.
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
  /** Reboot window (`LOCKSMITHD_REBOOT_WINDOW_*`), `undefined` when none is set. */
  readonly rebootWindow: RebootWindow | undefined;
  /**
   * When reboots may happen: `LOCKSMITHD_REBOOT_SCHEDULE`, or the reboot
   * window as a one-entry schedule; `undefined` for any time.
   */
  readonly rebootSchedule: RebootSchedule | undefined;
  /** Holder id overriding `/etc/machine-id` (`LOCKSMITHD_MACHINE_ID`), if set. */
  readonly machineId: string | undefined;
  /** Absolute path of the file that marks a needed reboot (`LOCKSMITHD_REBOOT_SENTINEL`). */
  readonly rebootSentinel: string;
  /** Delay before rebooting while users are logged in, in ms; 0 disables it (`LOCKSMITHD_LOGIN_DELAY`). */
  readonly loginDelayMs: number;
  /** best-effort's wait for an etcd that never answered, in ms (`LOCKSMITHD_BEST_EFFORT_WAIT`). */
  readonly bestEffortWaitMs: number;
  /** How long a refused reboot is retried before the slot is given back, in ms (`LOCKSMITHD_REBOOT_RETRY_LIMIT`). */
  readonly rebootRetryLimitMs: number;
  /** This boot's id when given (`LOCKSMITHD_BOOT_ID`), else read or derived at start. */
  readonly bootId: string | undefined;
  /** Run before taking a slot and before rebooting; non-zero means not now (`LOCKSMITHD_PRE_REBOOT_CHECK`). */
  readonly preRebootCheck: ParsedCommand | undefined;
  /** Run instead of logind's `Reboot` (`LOCKSMITHD_REBOOT_COMMAND`). */
  readonly rebootCommand: ParsedCommand | undefined;
  /** Run after boot; the slot is released once it exits 0 (`LOCKSMITHD_HEALTH_CHECK`). */
  readonly healthCheck: ParsedCommand | undefined;
  /** Time between failed health checks, in ms (`LOCKSMITHD_HEALTH_CHECK_INTERVAL`). */
  readonly healthCheckIntervalMs: number;
  /** Time after which a failing health check is reported and the slot kept, in ms (`LOCKSMITHD_HEALTH_CHECK_TIMEOUT`). */
  readonly healthCheckTimeoutMs: number;
  /** Limit of each command run, in ms (`LOCKSMITHD_COMMAND_TIMEOUT`). */
  readonly commandTimeoutMs: number;
  /** Where to serve Prometheus metrics (`LOCKSMITHD_METRICS_ADDR`); `undefined` for none. */
  readonly metricsAddress: ListenAddress | undefined;
  /** Where to POST notifications (`LOCKSMITHD_NOTIFY_URL`); `undefined` for none. */
  readonly notifyUrl: string | undefined;
  /** Slot TTL in seconds when none is stored with the semaphore; `0` for none (`LOCKSMITHD_SLOT_TTL`). */
  readonly slotTtlSeconds: number;
  /** Base URL of the FleetLock server (`LOCKSMITHD_FLEETLOCK_URL`); required with strategy `fleetlock`. */
  readonly fleetLockUrl: string | undefined;
  /** Which id the `fleetlock` strategy sends (`LOCKSMITHD_FLEETLOCK_ID`). */
  readonly fleetLockId: FleetLockIdSource;
  /** PEM CA file of an `https://` FleetLock server (`LOCKSMITHD_FLEETLOCK_CAFILE`). */
  readonly fleetLockCaFile: string | undefined;
  /** Bearer token for the FleetLock server (`LOCKSMITHD_FLEETLOCK_TOKEN`). */
  readonly fleetLockToken: string | undefined;
  /** Limit of each FleetLock request, in ms (`LOCKSMITHD_FLEETLOCK_TIMEOUT`). */
  readonly fleetLockTimeoutMs: number;
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

/** A key's value and where it came from. */
export interface ConfigSetting {
  /** The key as it was set: a row's key or its fallback. */
  readonly key: string;
  /** The value, trimmed unless the key is secret. */
  readonly value: string;
  /** Where it came from: `/etc/coreos/update.conf:3`, `environment`, `--strategy`. */
  readonly origin: string;
}

const KNOWN_KEYS = new Set(DAEMON_CONFIG_KEYS);
const FLAG_OF_KEY = new Map(
  Object.entries(DAEMON_FLAG_KEYS).map(([flag, key]) => [key, `--${flag}`]),
);

function isRelevant(key: string): boolean {
  return KNOWN_KEYS.has(key) || key.startsWith("LOCKSMITHD_");
}

/** Every relevant key's last setting: files in order, then the environment, then flags. */
function collectSettings(
  sources: readonly ConfigSource[],
  env: ConfigEnv,
  flags: ConfigFlags,
): Map<string, ConfigSetting> {
  const settings = new Map<string, ConfigSetting>();
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
      origin: FLAG_OF_KEY.get(key) ?? "command line",
    });
  }
  return settings;
}

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
 * Throws a `UsageError` with one line naming the key, the value, where
 * it came from and what is accepted, e.g. `REBOOT_STRATEGY="fast" (from
 * /etc/coreos/update.conf:3) is not one of etcd-lock, fleetlock, reboot, best-effort, off`;
 * a malformed file line is reported as `path:line: ...`. Each key is checked in
 * the order of {@link DAEMON_KEYS}, then the rules that tie keys together.
 */
export function resolveDaemonConfig(
  sources: readonly ConfigSource[],
  env: ConfigEnv,
  flags: ConfigFlags = {},
): DaemonConfig {
  const settings = collectSettings(sources, env, flags);
  const warnings: string[] = [];
  for (const setting of settings.values()) {
    if (!KNOWN_KEYS.has(setting.key)) {
      warnings.push(
        `unknown key ${setting.key} (from ${setting.origin}) is ignored${
          didYouMean(setting.key, DAEMON_CONFIG_KEYS)
        }`,
      );
    }
  }

  /** The setting of `key` when its value is not empty (secrets are not trimmed). */
  const get = (key: string): ConfigSetting | undefined => {
    const setting = settings.get(key);
    if (setting === undefined) return undefined;
    const value = isSecret(key) ? setting.value : setting.value.trim();
    return value === "" ? undefined : { ...setting, value };
  };
  const origins: Record<string, string> = {};
  for (const key of DAEMON_CONFIG_KEYS) {
    const setting = get(key);
    if (setting !== undefined) origins[key] = setting.origin;
  }

  const used = new Map<string, ConfigSetting>();
  const values = new Map<string, unknown>();
  const fields: Record<string, unknown> = {};
  const etcd: Record<string, unknown> = {};
  for (const row of DAEMON_KEYS) {
    const setting = get(row.key) ??
      (row.fallback === undefined ? undefined : get(row.fallback));
    let value: unknown = row.default;
    if (setting !== undefined) {
      used.set(row.key, setting);
      value = parseKeySetting(row, setting);
    }
    values.set(row.key, value);
    if (row.field?.startsWith("etcd.")) etcd[row.field.slice(5)] = value;
    else if (row.field !== undefined) fields[row.field] = value;
  }

  const resolution: Resolution = {
    setting: (key) => used.get(key),
    value: (key) => values.get(key),
    warn: (warning) => warnings.push(warning),
  };
  for (const rule of RULES) rule(resolution);
  const rebootWindow = rebootWindowOf(resolution);
  const derived: Pick<DaemonConfig, DerivedField> = {
    etcd: etcd as unknown as EtcdConnectionOptions,
    rebootWindow,
    rebootSchedule: rebootScheduleOf(resolution, rebootWindow),
    configFiles: sources.map((s) => s.path),
    origins,
    warnings,
  };
  return { ...fields, ...derived } as DaemonConfig;
}

/**
 * Parses one key's setting with its row's parser. A defect becomes a
 * `UsageError` naming the key, the value (not for a `secret` key) and
 * where it came from: `LOCKSMITHD_GROUP="a\tb" (from environment) contains
 * a control character`.
 */
export function parseKeySetting(
  row: DaemonKey,
  setting: ConfigSetting,
): unknown {
  try {
    return row.parse(setting.value);
  } catch (error) {
    if (!(error instanceof ValueDefect)) throw error;
    throw invalidSetting(setting, error.defect, row.secret === true);
  }
}

/** Options of {@link loadDaemonConfig}. */
export interface LoadDaemonConfigOptions {
  /**
   * Config files to read instead of the default ones, in order (a later one
   * wins). Each of these must exist; missing default files are skipped.
   */
  readonly configFiles?: readonly string[] | undefined;
  /** The environment, e.g. `Deno.env.toObject()`. */
  readonly env: ConfigEnv;
  /** Values from the command line, by config key (see `DaemonArgs.flags`). */
  readonly flags?: ConfigFlags | undefined;
}

/**
 * Reads the config files (see {@link readConfigSources}) and resolves the
 * configuration with {@link resolveDaemonConfig}. A missing default file is
 * skipped; a missing file named in `configFiles`, or any file that cannot be
 * read (a directory, no permission), is a `UsageError` naming the file.
 */
export async function loadDaemonConfig(
  options: LoadDaemonConfigOptions,
): Promise<DaemonConfig> {
  return resolveDaemonConfig(
    await readConfigSources(options.configFiles),
    options.env,
    options.flags ?? {},
  );
}
