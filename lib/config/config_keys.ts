/**
 * locksmithd's config keys as data: one row per key, from which the
 * resolution (`config.ts`), the command-line flags and `--help`
 * (`daemon_args.ts`) and the key table of docs/configuration.md (`deno task docs`) follow.
 *
 * To add a key, add one row to {@link DAEMON_KEYS} (its parser too, in
 * `lib/common/value_parsers.ts`, if none of those fits), and nothing else
 * (the safe-reboot keys have their rows in `config_keys_safety.ts`).
 * If the daemon reads the value, `field` names the {@link DaemonConfig}
 * property it fills; declare that property in `DaemonConfig` (the type
 * checker insists, and checks the parser and the default against it). Keys
 * that only make sense together (a certificate and its key) get a rule in
 * `config.ts`. Then run `deno task docs` to regenerate the table in docs/configuration.md.
 *
 * @module
 */

import type { DaemonConfig } from "./config.ts";
import type { EtcdConnectionOptions } from "../etcd/client/etcd_options.ts";
import { UsageError } from "../common/errors.ts";
import type { KeyFlag, KeyRow } from "../common/key_table.ts";
import { DEFAULT_ENDPOINT, parseEndpoints } from "../etcd/client/endpoints.ts";
import {
  canonicalTimeZone,
  RebootWindowError,
} from "../schedule/reboot_window.ts";
import { SAFE_REBOOT_KEYS } from "./config_keys_safety.ts";
import { parseSlotTtl } from "../semaphore/settings.ts";
import { FLEETLOCK_KEYS } from "./config_keys_fleetlock.ts";
import {
  absolutePath,
  anyText,
  duration,
  holderId,
  oneOf,
  ValueDefect,
  type ValueParser,
} from "../common/value_parsers.ts";

/** What locksmithd does once a reboot is needed. */
export type RebootStrategy =
  | "etcd-lock"
  | "fleetlock"
  | "reboot"
  | "best-effort"
  | "off";

/** Every accepted {@link RebootStrategy}, in the order shown in messages. */
export const REBOOT_STRATEGIES: readonly RebootStrategy[] = Object.freeze([
  "etcd-lock",
  "fleetlock",
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

/** best-effort's wait for etcd when it never answered, when `LOCKSMITHD_BEST_EFFORT_WAIT` is unset: 30 seconds. */
export const DEFAULT_BEST_EFFORT_WAIT_MS = 30_000;

/** How long a refused reboot is retried, when `LOCKSMITHD_REBOOT_RETRY_LIMIT` is unset: 30 minutes. */
export const DEFAULT_REBOOT_RETRY_LIMIT_MS = 1_800_000;

/** etcd request deadline used when `LOCKSMITHD_ETCD_TIMEOUT` is unset or empty: 5 seconds. */
export const DEFAULT_ETCD_TIMEOUT_MS = 5_000;

/** {@link DaemonConfig} properties filled by the resolution as a whole, not by one key. */
export type DerivedField =
  | "etcd"
  | "rebootWindow"
  | "rebootSchedule"
  | "configFiles"
  | "origins"
  | "warnings";

/** A {@link DaemonConfig} property that one key fills: a top-level one, or `etcd.<option>`. */
export type DaemonField =
  | Exclude<keyof DaemonConfig, DerivedField>
  | `etcd.${keyof EtcdConnectionOptions}`;

/** The type of the {@link DaemonConfig} property named by a {@link DaemonField}. */
export type DaemonFieldValue<F extends DaemonField> = F extends
  `etcd.${infer K extends keyof EtcdConnectionOptions}`
  ? EtcdConnectionOptions[K]
  : F extends keyof DaemonConfig ? DaemonConfig[F]
  : never;

/** A command-line flag of locksmithd that sets a key (and wins over files and environment). */
export type DaemonFlag = KeyFlag;

/** What every row of {@link DAEMON_KEYS} has: a {@link KeyRow}, maybe with a fallback key. */
export interface DaemonKeyBase extends KeyRow {
  /** An older key read when this one is unset or empty, e.g. `REBOOT_WINDOW_START`. */
  readonly fallback?: string | undefined;
}

/** A key whose parsed value (or default) fills the {@link DaemonConfig} property `field`. */
export interface FieldKey<F extends DaemonField> extends DaemonKeyBase {
  /** The property this key fills, e.g. `strategy` or `etcd.timeoutMs`. */
  readonly field: F;
  /** Turns the trimmed, non-empty value into the property's type; throws a {@link ValueDefect}. */
  readonly parse: ValueParser<NonNullable<DaemonFieldValue<F>>>;
  /** The property's value when the key is unset or empty. */
  readonly default: DaemonFieldValue<F>;
}

/** A key that only a rule of `config.ts` reads (the reboot window's start and length, its zone). */
export interface RuleKey extends DaemonKeyBase {
  /** No property of its own. */
  readonly field?: undefined;
  /** Checks (and may convert) the trimmed, non-empty value; throws a {@link ValueDefect}. */
  readonly parse: ValueParser<unknown>;
  /** None: an unset key is `undefined` for the rule. */
  readonly default?: undefined;
}

/** One row of {@link DAEMON_KEYS}. */
export type DaemonKey =
  | { [F in DaemonField]: FieldKey<F> }[DaemonField]
  | RuleKey;

/** etcd endpoints, comma separated: `is invalid: endpoint "x" is not a URL like ...`. */
function endpointList(): ValueParser<readonly string[]> {
  return (text) => {
    try {
      return parseEndpoints([text]);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      throw new ValueDefect(`is invalid: ${error.message}`);
    }
  };
}

/** An IANA time zone, canonicalised (`europe/berlin` gives `Europe/Berlin`). */
function timeZone(): ValueParser<string> {
  return (text) => {
    try {
      return canonicalTimeZone(text);
    } catch (error) {
      if (!(error instanceof RebootWindowError)) throw error;
      throw new ValueDefect(error.defect);
    }
  };
}

/**
 * Every key locksmithd reads, in the order of `--help` and docs/configuration.md. A
 * value is read from the files, the environment or the flag (which wins),
 * trimmed (unless `secret`), and parsed when it is not empty; an unset or
 * empty key takes its default.
 */
export const DAEMON_KEYS: readonly DaemonKey[] = Object.freeze(
  [
    {
      key: "REBOOT_STRATEGY",
      flag: { name: "strategy", value: "NAME", example: "etcd-lock" },
      field: "strategy",
      parse: oneOf(REBOOT_STRATEGIES),
      default: DEFAULT_REBOOT_STRATEGY,
      shownDefault: "`best-effort`",
      description:
        "what to do once a reboot is needed: `etcd-lock` (take a slot, then reboot), `fleetlock` (take the slot from a FleetLock server, `LOCKSMITHD_FLEETLOCK_URL`, then reboot), `reboot` (at once, no slot), `best-effort` (`etcd-lock` when etcd answers, else `reboot`), `off` (log and exit 0)",
    },
    {
      key: "LOCKSMITHD_ENDPOINT",
      flag: {
        name: "endpoint",
        value: "URL",
        example: DEFAULT_ENDPOINT,
        repeatable: true,
      },
      field: "etcd.endpoints",
      parse: endpointList(),
      default: Object.freeze([DEFAULT_ENDPOINT]),
      shownDefault: `\`${DEFAULT_ENDPOINT}\``,
      description: "etcd URLs (`http://` or `https://`), comma separated",
    },
    {
      key: "LOCKSMITHD_ETCD_CAFILE",
      field: "etcd.caFile",
      parse: anyText(),
      default: undefined,
      description:
        "PEM CA certificate of the etcd servers, for `https://` endpoints (CA-only TLS needs just this)",
    },
    {
      key: "LOCKSMITHD_ETCD_CERTFILE",
      field: "etcd.certFile",
      parse: anyText(),
      default: undefined,
      description: "PEM client certificate, with `LOCKSMITHD_ETCD_KEYFILE`",
    },
    {
      key: "LOCKSMITHD_ETCD_KEYFILE",
      field: "etcd.keyFile",
      parse: anyText(),
      default: undefined,
      description: "PEM key of the client certificate",
    },
    {
      key: "LOCKSMITHD_ETCD_USERNAME",
      field: "etcd.username",
      parse: anyText(),
      default: undefined,
      description: "etcd user, with `LOCKSMITHD_ETCD_PASSWORD`",
    },
    {
      key: "LOCKSMITHD_ETCD_PASSWORD",
      field: "etcd.password",
      parse: anyText(),
      default: undefined,
      secret: true,
      description: "etcd password (spaces are kept; never shown in messages)",
    },
    {
      key: "LOCKSMITHD_ETCD_TIMEOUT",
      field: "etcd.timeoutMs",
      parse: duration({ example: "5s", positive: true }),
      default: DEFAULT_ETCD_TIMEOUT_MS,
      shownDefault: "`5s`",
      description: "deadline of each etcd request",
    },
    {
      key: "LOCKSMITHD_GROUP",
      flag: { name: "group", value: "NAME", example: "web" },
      field: "group",
      parse: holderId(),
      default: undefined,
      shownDefault: "the fleet-wide semaphore",
      description: "semaphore group: only machines of one group share slots",
    },
    {
      key: "LOCKSMITHD_REBOOT_WINDOW_START",
      fallback: "REBOOT_WINDOW_START",
      // Checked with the length by the window rule: a start with a day
      // allows a longer window.
      parse: anyText(),
      shownDefault: "none (reboot at any time)",
      description:
        "start of the reboot window, `[Day ]H:M` (24-hour clock), e.g. `Thu 04:00` (weekly) or `04:00` (daily); set start and length together or not at all",
    },
    {
      key: "LOCKSMITHD_REBOOT_WINDOW_LENGTH",
      fallback: "REBOOT_WINDOW_LENGTH",
      parse: anyText(),
      description:
        "length of the reboot window, e.g. `1h30m`: less than 24h for a daily window, less than 7d for a weekly one",
    },
    {
      key: "LOCKSMITHD_REBOOT_WINDOW_TZ",
      parse: timeZone(),
      shownDefault: "the system's zone",
      description:
        "IANA time zone of the reboot window, e.g. `Europe/Berlin` or `UTC`",
    },
    {
      key: "LOCKSMITHD_MACHINE_ID",
      flag: { name: "machine-id", value: "ID", example: "node-1" },
      field: "machineId",
      parse: holderId(),
      default: undefined,
      shownDefault: "the content of `/etc/machine-id`",
      description: "holder id of this machine (containers, tests)",
    },
    {
      key: "LOCKSMITHD_REBOOT_SENTINEL",
      field: "rebootSentinel",
      parse: absolutePath(),
      default: DEFAULT_REBOOT_SENTINEL,
      shownDefault: `\`${DEFAULT_REBOOT_SENTINEL}\``,
      description:
        "file whose appearance means a reboot is needed (hosts without update_engine)",
    },
    {
      key: "LOCKSMITHD_LOGIN_DELAY",
      field: "loginDelayMs",
      parse: duration({ example: "5m", zeroMeans: "disables the delay" }),
      default: DEFAULT_LOGIN_DELAY_MS,
      shownDefault: "`5m`",
      description:
        "how long to wait before rebooting while users are logged in; `0` disables the wait",
    },
    {
      key: "LOCKSMITHD_BEST_EFFORT_WAIT",
      field: "bestEffortWaitMs",
      parse: duration({ example: "30s", positive: true }),
      default: DEFAULT_BEST_EFFORT_WAIT_MS,
      shownDefault: "`30s`",
      description:
        "with `best-effort`, how long to keep trying etcd before rebooting without a slot, when no endpoint has answered since locksmithd started",
    },
    {
      key: "LOCKSMITHD_REBOOT_RETRY_LIMIT",
      field: "rebootRetryLimitMs",
      parse: duration({ example: "30m", positive: true }),
      default: DEFAULT_REBOOT_RETRY_LIMIT_MS,
      shownDefault: "`30m`",
      description:
        "how long a refused reboot is retried before the slot is given back (the machine queues again later)",
    },
    {
      key: "LOCKSMITHD_BOOT_ID",
      field: "bootId",
      parse: holderId(),
      default: undefined,
      shownDefault:
        "`/proc/sys/kernel/random/boot_id` when readable, else the boot time",
      description:
        "this boot's id, recorded with the slot; the systemd units set it from `%b`",
    },
    // Safe reboots: schedules, commands, metrics, notifications.
    ...SAFE_REBOOT_KEYS,
    {
      key: "LOCKSMITHD_SLOT_TTL",
      field: "slotTtlSeconds",
      parse: parseSlotTtl,
      default: 0,
      shownDefault:
        "none, unless one is stored with the semaphore (`locksmithctl set-ttl`), which wins",
      description:
        "slot TTL: the slot of a holder whose locksmithd has not renewed it for this long (a dead machine) is reclaimed by the first waiter; at least `1m`, and longer than the slowest reboot; `0` or `off` for none",
    },
    // The fleetlock strategy: server, id, TLS, token, timeout.
    ...FLEETLOCK_KEYS,
  ] satisfies readonly DaemonKey[],
);

/** Every config key locksmithd reads, from files, the environment or flags (fallbacks after their key). */
export const DAEMON_CONFIG_KEYS: readonly string[] = Object.freeze(
  DAEMON_KEYS.flatMap((k) =>
    k.fallback === undefined ? [k.key] : [k.key, k.fallback]
  ),
);

/** Command-line flags of locksmithd that override a config key, and that key. */
export const DAEMON_FLAG_KEYS: Readonly<Record<string, string>> = Object
  .freeze(
    Object.fromEntries(
      DAEMON_KEYS.flatMap((k) =>
        k.flag === undefined ? [] : [[k.flag.name, k.key]]
      ),
    ),
  );
