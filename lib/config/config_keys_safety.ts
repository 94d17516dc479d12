/**
 * The rows of locksmithd's key table for safe reboots: the reboot
 * schedule, the three commands (pre-reboot check, reboot command, health
 * check) and their timings, metrics and notifications. They are part of
 * `DAEMON_KEYS` (`config_keys.ts`), after the core keys, and follow the
 * same rules: one row per key, `deno task docs` for docs/configuration.md.
 *
 * @module
 */

import { parseCommand, type ParsedCommand } from "../host/command.ts";
import { DEFAULT_COMMAND_TIMEOUT_MS } from "../host/command_run.ts";
import type { DaemonKey } from "./config_keys.ts";
import { parseListenAddress } from "../common/listen_address.ts";
import { parseSchedule, ScheduleError } from "../schedule/schedule.ts";
import {
  duration,
  keyed,
  url,
  ValueDefect,
  type ValueParser,
} from "../common/value_parsers.ts";

/** Proposed default of `LOCKSMITHD_HEALTH_CHECK_INTERVAL`: 30 s between attempts. */
export const DEFAULT_HEALTH_CHECK_INTERVAL_MS = 30_000;

/** Proposed default of `LOCKSMITHD_HEALTH_CHECK_TIMEOUT`: give up after 15 minutes. */
export const DEFAULT_HEALTH_CHECK_TIMEOUT_MS = 900_000;

/** The schedule's syntax, checked on its own (the rule builds it in its zone). */
function scheduleSyntax(): ValueParser<string> {
  return (text) => {
    try {
      parseSchedule(text, "UTC");
      return text;
    } catch (error) {
      if (!(error instanceof ScheduleError)) throw error;
      throw new ValueDefect(error.defect);
    }
  };
}

/** A command row: run without a shell, split and checked by `parseCommand`. */
function command(key: string): ValueParser<ParsedCommand> {
  return keyed(key, parseCommand);
}

/** The safe-reboot keys, in the order of `--help` and docs/configuration.md. */
export const SAFE_REBOOT_KEYS: readonly DaemonKey[] = Object.freeze(
  [
    {
      key: "LOCKSMITHD_REBOOT_SCHEDULE",
      parse: scheduleSyntax(),
      shownDefault: "none: the reboot window, if any",
      description:
        "reboot windows instead of `LOCKSMITHD_REBOOT_WINDOW_START`/`_LENGTH` (not both), comma separated `[DAYS ]H:M LENGTH`, e.g. `Mon-Fri 02:00 2h, Sat 04:00 4h`, in the zone of `LOCKSMITHD_REBOOT_WINDOW_TZ`",
    },
    {
      key: "LOCKSMITHD_PRE_REBOOT_CHECK",
      flag: {
        name: "pre-reboot-check",
        value: "COMMAND",
        example: "/usr/local/bin/may-reboot",
      },
      field: "preRebootCheck",
      parse: command("LOCKSMITHD_PRE_REBOOT_CHECK"),
      default: undefined,
      shownDefault: "none",
      description:
        "command run (without a shell) before taking a slot and again right before rebooting: exit status 0 means go, anything else means not now (no slot is held meanwhile)",
    },
    {
      key: "LOCKSMITHD_REBOOT_COMMAND",
      flag: {
        name: "reboot-command",
        value: "COMMAND",
        example: "/usr/local/sbin/drain-and-reboot",
      },
      field: "rebootCommand",
      parse: command("LOCKSMITHD_REBOOT_COMMAND"),
      default: undefined,
      shownDefault: "logind `Reboot(false)`",
      description:
        "command run (without a shell) instead of logind's `Reboot`, e.g. to drain first; a failure is retried like a refused reboot",
    },
    {
      key: "LOCKSMITHD_HEALTH_CHECK",
      flag: {
        name: "health-check",
        value: "COMMAND",
        example: "/usr/local/bin/healthy",
      },
      field: "healthCheck",
      parse: command("LOCKSMITHD_HEALTH_CHECK"),
      default: undefined,
      shownDefault: "none: the slot is released at once after boot",
      description:
        "command run (without a shell) after boot: the slot is released only once it exits 0",
    },
    {
      key: "LOCKSMITHD_HEALTH_CHECK_INTERVAL",
      field: "healthCheckIntervalMs",
      parse: duration({ example: "30s", positive: true }),
      default: DEFAULT_HEALTH_CHECK_INTERVAL_MS,
      shownDefault: "`30s`",
      description: "time between a failed health check and the next",
    },
    {
      key: "LOCKSMITHD_HEALTH_CHECK_TIMEOUT",
      field: "healthCheckTimeoutMs",
      parse: duration({ example: "15m", positive: true }),
      default: DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
      shownDefault: "`15m`",
      description:
        "after this long without a pass, an error is logged and notified and the slot is kept (the rollout stops); the check goes on at the interval, and a pass releases the slot",
    },
    {
      key: "LOCKSMITHD_COMMAND_TIMEOUT",
      field: "commandTimeoutMs",
      parse: duration({ example: "5m", positive: true }),
      default: DEFAULT_COMMAND_TIMEOUT_MS,
      shownDefault: "`5m`",
      description:
        "limit of each run of any of the commands: then SIGTERM, and SIGKILL 5s later",
    },
    {
      key: "LOCKSMITHD_METRICS_ADDR",
      flag: {
        name: "metrics-addr",
        value: "HOST:PORT",
        example: "127.0.0.1:9101",
      },
      field: "metricsAddress",
      parse: keyed("LOCKSMITHD_METRICS_ADDR", parseListenAddress),
      default: undefined,
      shownDefault: "none: no metrics",
      description:
        "where to serve Prometheus metrics on `GET /metrics`, e.g. `127.0.0.1:9101`, `[::1]:9101`, or `:9101` for every interface",
    },
    {
      key: "LOCKSMITHD_NOTIFY_URL",
      flag: {
        name: "notify-url",
        value: "URL",
        example: "https://hooks.example.com/locksmith",
      },
      field: "notifyUrl",
      parse: url({
        protocols: ["http:", "https:"],
        example: "https://hooks.example.com/locksmith",
      }),
      default: undefined,
      shownDefault: "none: no notifications",
      description:
        "`http://` or `https://` URL that receives one JSON POST per event (slot taken, reboot requested, slot released, health check failed, ...)",
    },
  ] satisfies readonly DaemonKey[],
);
