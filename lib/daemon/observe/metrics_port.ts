/**
 * What locksmithd reports as metrics, without the Prometheus client: the
 * {@link DaemonMetrics} interface the daemon loop calls, a no-op for when
 * metrics are off, and the parsing of `LOCKSMITHD_METRICS_ADDR`. The
 * implementation (`metrics.ts`, with npm:prom-client) is imported only when
 * metrics are on.
 *
 * @module
 */

import { splitHostPort } from "../../common/value_parsers.ts";
import { ConfigValueError } from "../../common/value_error.ts";

/** Results of a lock attempt, the values of label `result` of `locksmithd_lock_attempts_total`. */
export const LOCK_ATTEMPT_RESULTS = [
  "taken",
  "held",
  "full",
  "conflict",
  "error",
] as const;

/**
 * How a lock attempt ended: `taken` (a slot was taken), `held` (this machine
 * already held one), `full` (no free slot), `conflict` (compare-and-swap
 * contention exhausted the retries), `error` (etcd failed or the document is
 * corrupt).
 */
export type LockAttemptResult = typeof LOCK_ATTEMPT_RESULTS[number];

/** The commands locksmithd runs, the values of label `command` of `locksmithd_commands_total`. */
export const COMMAND_KINDS = [
  "health-check",
  "pre-reboot-check",
  "reboot-command",
] as const;

/** Which configured command ran. */
export type CommandKind = typeof COMMAND_KINDS[number];

/** How runs of commands end, the values of label `result` of `locksmithd_commands_total`. */
export const COMMAND_RESULTS = [
  "success",
  "failure",
  "timeout",
  "error",
] as const;

/**
 * How a command run ended: `success` (exit 0), `failure` (another exit
 * status or a signal), `timeout`, `error` (it could not be started).
 */
export type CommandRunResult = typeof COMMAND_RESULTS[number];

/** What happened to notifications, the values of label `result` of `locksmithd_notifications_total`. */
export const NOTIFICATION_RESULTS = ["sent", "given-up", "dropped"] as const;

/** `sent` (a 2xx answer), `given-up` (retries exhausted or refused), `dropped` (the queue was full). */
export type NotificationResult = typeof NOTIFICATION_RESULTS[number];

/** The state and counters locksmithd reports; every method is cheap and never throws. */
export interface DaemonMetrics {
  /** Whether this machine needs a reboot (`locksmithd_reboot_needed`). */
  setRebootNeeded(needed: boolean): void;
  /** Since when this machine waits to reboot, or `null` when it does not (`locksmithd_waiting_since_timestamp_seconds`). */
  setWaitingSince(since: Date | null): void;
  /** Whether this machine holds a slot (`locksmithd_slot_held`). */
  setSlotHeld(held: boolean): void;
  /** Whether the reboot window or schedule is open; `true` without one (`locksmithd_window_open`). */
  setWindowOpen(open: boolean): void;
  /** Waiters ahead of this machine in the wait queue, or `null` when not queued (`locksmithd_queue_position`). */
  setQueuePosition(ahead: number | null): void;
  /** When this daemon last asked for a reboot (`locksmithd_last_reboot_request_timestamp_seconds`). */
  setLastRebootRequest(at: Date): void;
  /** Counts a lock attempt (`locksmithd_lock_attempts_total{result}`). */
  countLockAttempt(result: LockAttemptResult): void;
  /** Records how long an etcd request took (`locksmithd_etcd_request_duration_seconds{op}`); `op` is a short fixed name such as `lock`. */
  observeEtcdRequest(op: string, durationMs: number): void;
  /** Counts a run of a configured command (`locksmithd_commands_total{command,result}`). */
  countCommand(command: CommandKind, result: CommandRunResult): void;
  /** Counts a notification's fate (`locksmithd_notifications_total{result}`). */
  countNotification(result: NotificationResult): void;
}

/** A {@link DaemonMetrics} that records nothing, for when metrics are off. */
export const NO_METRICS: DaemonMetrics = Object.freeze({
  setRebootNeeded() {},
  setWaitingSince() {},
  setSlotHeld() {},
  setWindowOpen() {},
  setQueuePosition() {},
  setLastRebootRequest() {},
  countLockAttempt() {},
  observeEtcdRequest() {},
  countCommand() {},
  countNotification() {},
});

/**
 * Runs `request` and records its duration under `op`, whether it succeeds or
 * throws. `now` is a monotonic clock in milliseconds (default `performance.now`).
 */
export async function timeEtcdRequest<T>(
  metrics: DaemonMetrics,
  op: string,
  request: () => Promise<T>,
  now: () => number = () => performance.now(),
): Promise<T> {
  const started = now();
  try {
    return await request();
  } finally {
    metrics.observeEtcdRequest(op, now() - started);
  }
}

/** Where the metrics server listens. */
export interface ListenAddress {
  /** Host name or IP address to bind (`0.0.0.0` for all IPv4 interfaces, `::` for all). */
  readonly hostname: string;
  /** TCP port; `0` picks a free one (tests). */
  readonly port: number;
}

/**
 * Parses a listen address for `key` (e.g. `LOCKSMITHD_METRICS_ADDR`):
 * `HOST:PORT` (`127.0.0.1:9101`, `localhost:9101`), `[IPv6]:PORT`
 * (`[::1]:9101`) or `:PORT` for every interface. Throws a
 * {@link ConfigValueError} naming the key. Pure.
 */
export function parseListenAddress(key: string, text: string): ListenAddress {
  const address = splitHostPort(text.trim(), "0.0.0.0");
  if (address === undefined || !(address.port >= 1 && address.port <= 65535)) {
    throw new ConfigValueError(
      key,
      text,
      "is not HOST:PORT with a port 1-65535, e.g. 127.0.0.1:9101, [::1]:9101 or :9101 (every interface)",
    );
  }
  return address;
}

/** Formats a listen address as `HOST:PORT`, with brackets around an IPv6 address. */
export function formatListenAddress(address: ListenAddress): string {
  const host = address.hostname.includes(":")
    ? `[${address.hostname}]`
    : address.hostname;
  return `${host}:${address.port}`;
}
