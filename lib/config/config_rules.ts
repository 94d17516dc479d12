/**
 * The rules of locksmithd's configuration that tie keys together (a
 * certificate and its key, TLS and https:// endpoints, a reboot window's
 * start and length, a schedule or a window), checked by
 * `resolveDaemonConfig` after each key was parsed on its own; and the
 * reboot window and schedule built from their keys.
 *
 * @module
 */

import { quote, UsageError } from "../common/errors.ts";
import {
  parseRebootWindow,
  type RebootWindow,
  RebootWindowError,
} from "../schedule/reboot_window.ts";
import {
  parseSchedule,
  type RebootSchedule,
  ScheduleError,
  scheduleFromWindow,
} from "../schedule/schedule.ts";
import { DAEMON_KEYS, type DaemonKey } from "./config_keys.ts";
import type { ConfigSetting as Setting } from "./config.ts";
import { FLEETLOCK_RULES } from "./config_rules_fleetlock.ts";

/** What a rule sees once every key was parsed. */
export interface Resolution {
  /** The setting that gave a row's key its value (maybe its fallback's); `undefined` when unset or empty. */
  setting(key: string): Setting | undefined;
  /** A row's parsed value, or its default. */
  value(key: string): unknown;
  /** Adds a warning for the caller to log. */
  warn(warning: string): void;
}

/** A check that ties keys together; throws a {@link UsageError} naming them. */
export type Rule = (r: Resolution) => void;

/** Each row by its key and by its fallback key. */
const ROW_OF_KEY = new Map<string, DaemonKey>(
  DAEMON_KEYS.flatMap((row) =>
    row.fallback === undefined
      ? [[row.key, row]]
      : [[row.key, row], [row.fallback, row]]
  ),
);

/** Whether `key` (or the key it is the fallback of) is a secret: its value is never shown. */
export function isSecret(key: string): boolean {
  return ROW_OF_KEY.get(key)?.secret === true;
}

/**
 * The error for a rejected setting: `KEY="value" (from origin) defect`, or
 * `KEY (from origin) defect` for a secret key.
 */
export function invalidSetting(
  setting: Setting,
  defect: string,
  secret: boolean = isSecret(setting.key),
): UsageError {
  if (secret) {
    return new UsageError(`${setting.key} (from ${setting.origin}) ${defect}`);
  }
  // Long enough to show any acceptable id (256 bytes) in full.
  return new UsageError(
    `${setting.key}=${
      quote(setting.value, 300)
    } (from ${setting.origin}) ${defect}`,
  );
}

/** `LOCKSMITHD_REBOOT_WINDOW_LENGTH nor REBOOT_WINDOW_LENGTH`: a key and its fallback. */
function orFallback(key: string): string {
  const fallback = ROW_OF_KEY.get(key)?.fallback;
  return fallback === undefined ? key : `${key} nor ${fallback}`;
}

/** Both keys are set, or neither: `X is set (from ...) but Y is not; set both or neither`. */
function bothOrNeither(a: string, b: string): Rule {
  return (r) => {
    const [given, missing] = r.setting(a) === undefined
      ? [r.setting(b), a]
      : [r.setting(a), b];
    if (given !== undefined && r.setting(missing) === undefined) {
      throw new UsageError(
        `${given.key} is set (from ${given.origin}) but ${missing} is not; set both or neither`,
      );
    }
  };
}

/** A CA or client certificate asks for TLS, which `http://` endpoints cannot give. */
const tlsNeedsHttps: Rule = (r) => {
  const tls = r.setting("LOCKSMITHD_ETCD_CAFILE") ??
    r.setting("LOCKSMITHD_ETCD_CERTFILE");
  const endpoints = r.value("LOCKSMITHD_ENDPOINT") as readonly string[];
  const plain = endpoints.find((e) => e.startsWith("http:"));
  if (tls !== undefined && plain !== undefined) {
    throw new UsageError(
      `${tls.key} (from ${tls.origin}) asks for TLS but endpoint ${
        quote(plain)
      } (from ${
        r.setting("LOCKSMITHD_ENDPOINT")?.origin ?? "the default"
      }) uses http://; use https:// endpoints in LOCKSMITHD_ENDPOINT`,
    );
  }
};

const START = "LOCKSMITHD_REBOOT_WINDOW_START";
const LENGTH = "LOCKSMITHD_REBOOT_WINDOW_LENGTH";
const TZ = "LOCKSMITHD_REBOOT_WINDOW_TZ";
const SCHEDULE = "LOCKSMITHD_REBOOT_SCHEDULE";

/** A reboot window has a start and a length, or neither. */
const windowStartAndLength: Rule = (r) => {
  const [start, length] = [r.setting(START), r.setting(LENGTH)];
  const [given, missing] = start === undefined
    ? [length, START]
    : [start, LENGTH];
  if (given !== undefined && r.setting(missing) === undefined) {
    throw invalidSetting(
      given,
      `is set but neither ${
        orFallback(missing)
      } is; set both start and length, or neither`,
    );
  }
};

/** A schedule replaces the window keys: both set is ambiguous. */
const scheduleOrWindow: Rule = (r) => {
  const schedule = r.setting(SCHEDULE);
  const window = r.setting(START) ?? r.setting(LENGTH);
  if (schedule !== undefined && window !== undefined) {
    throw new UsageError(
      `${SCHEDULE} (from ${schedule.origin}) and ${window.key} (from ${window.origin}) are both set; a schedule replaces the reboot window: set one or the other`,
    );
  }
};

/** A time zone without a window or schedule does nothing: worth a warning. */
const timeZoneNeedsWindow: Rule = (r) => {
  const tz = r.setting(TZ);
  if (
    tz !== undefined && r.setting(START) === undefined &&
    r.setting(SCHEDULE) === undefined
  ) {
    r.warn(
      `${TZ} (from ${tz.origin}) has no effect without a reboot window or schedule`,
    );
  }
};

/** Health check timings without a health check do nothing: worth a warning. */
const healthTimingsNeedCheck: Rule = (r) => {
  if (r.setting("LOCKSMITHD_HEALTH_CHECK") !== undefined) return;
  for (
    const key of [
      "LOCKSMITHD_HEALTH_CHECK_INTERVAL",
      "LOCKSMITHD_HEALTH_CHECK_TIMEOUT",
    ]
  ) {
    const setting = r.setting(key);
    if (setting !== undefined) {
      r.warn(
        `${key} (from ${setting.origin}) has no effect without LOCKSMITHD_HEALTH_CHECK`,
      );
    }
  }
};

/** The commands run only around a slot or a reboot: without a slot, the health check does nothing. */
const healthCheckNeedsSlot: Rule = (r) => {
  const check = r.setting("LOCKSMITHD_HEALTH_CHECK");
  const strategy = r.value("REBOOT_STRATEGY");
  if (check !== undefined && strategy === "reboot") {
    r.warn(
      `LOCKSMITHD_HEALTH_CHECK (from ${check.origin}) has no effect with REBOOT_STRATEGY=reboot: no slot is held to release after boot`,
    );
  }
};

/** The rules that tie keys together, checked in this order after every key was parsed. */
export const RULES: readonly Rule[] = [
  bothOrNeither("LOCKSMITHD_ETCD_CERTFILE", "LOCKSMITHD_ETCD_KEYFILE"),
  bothOrNeither("LOCKSMITHD_ETCD_USERNAME", "LOCKSMITHD_ETCD_PASSWORD"),
  tlsNeedsHttps,
  windowStartAndLength,
  scheduleOrWindow,
  timeZoneNeedsWindow,
  healthTimingsNeedCheck,
  healthCheckNeedsSlot,
  ...FLEETLOCK_RULES,
];

/** The reboot window from its start, length and zone (the length's limit depends on the start). */
export function rebootWindowOf(r: Resolution): RebootWindow | undefined {
  const start = r.setting(START);
  const length = r.setting(LENGTH);
  if (start === undefined || length === undefined) return undefined;
  try {
    return parseRebootWindow(
      start.value,
      length.value,
      r.value(TZ) as string | undefined,
    );
  } catch (error) {
    if (!(error instanceof RebootWindowError)) throw error;
    const setting = error.field === "start"
      ? start
      : error.field === "length"
      ? length
      : r.setting(TZ);
    if (setting === undefined) throw error;
    throw invalidSetting(setting, error.defect);
  }
}

/**
 * When reboots may happen: the schedule in its zone, else the reboot
 * window as a one-entry schedule, else `undefined` (any time).
 */
export function rebootScheduleOf(
  r: Resolution,
  window: RebootWindow | undefined,
): RebootSchedule | undefined {
  const schedule = r.setting(SCHEDULE);
  if (schedule === undefined) {
    return window === undefined ? undefined : scheduleFromWindow(window);
  }
  try {
    return parseSchedule(schedule.value, r.value(TZ) as string | undefined);
  } catch (error) {
    if (!(error instanceof ScheduleError)) throw error;
    throw invalidSetting(schedule, error.defect);
  }
}
