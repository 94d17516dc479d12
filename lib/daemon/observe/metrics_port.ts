/**
 * What locksmithd reports as metrics, without the Prometheus client: the
 * {@link DaemonMetrics} interface the daemon loop calls and a no-op for
 * when metrics are off. The implementation (`daemon_metrics.ts`, with npm:prom-client) is imported only when
 * metrics are on.
 *
 * @module
 */

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
