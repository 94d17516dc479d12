/**
 * Notifications: locksmithd POSTs one JSON object per event to
 * `LOCKSMITHD_NOTIFY_URL`, e.g.
 *
 * ```json
 * {"event":"slot-taken","machine":"69d27b356a94476da859461d3a3bc6fd","group":"prod",
 *  "time":"2024-06-03T02:00:04.512Z","details":{"available":0,"max":1}}
 * ```
 *
 * Notifying never blocks or fails the caller: {@link Notifier.notify} only
 * queues (a bounded queue; when full, the oldest event is dropped with a
 * warning). One worker sends the events in order, each with a request
 * timeout, retrying with exponential backoff and jitter until a 2xx answer
 * or until the event is older than its give-up time; then it logs one line
 * and goes on with the next. A 4xx answer other than 408, 425 and 429 means
 * the receiver refuses the event: it is not retried. Log lines name only the
 * URL's origin, never its path or query (which may carry a token).
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import { VERSION } from "../../common/version.ts";
import { realClock, type SafetyClock } from "../../host/clock.ts";
import { backoffMs } from "../../common/backoff.ts";
import type { NotificationResult } from "./metrics_port.ts";

/** The events locksmithd notifies. */
export const NOTIFY_EVENTS = [
  "reboot-needed",
  "slot-taken",
  "reboot-requested",
  "reboot-failed",
  "slot-released",
  "health-check-passed",
  "health-check-failed",
  "pre-reboot-check-vetoed",
] as const;

/**
 * An event: `reboot-needed` (an update asks for a reboot), `slot-taken`,
 * `reboot-requested` (logind or the reboot command is asked now),
 * `reboot-failed` (it refused or failed), `slot-released` (after boot),
 * `health-check-passed`, `health-check-failed` (gave up: the slot is kept),
 * `pre-reboot-check-vetoed` (the check said "not now").
 */
export type NotifyEvent = typeof NOTIFY_EVENTS[number];

/** The JSON body of a notification. */
export interface Notification {
  /** What happened. */
  readonly event: NotifyEvent;
  /** The holder id of this machine. */
  readonly machine: string;
  /** The semaphore group, or `null` for the default semaphore. */
  readonly group: string | null;
  /** When it happened, ISO 8601 in UTC. */
  readonly time: string;
  /** Event-specific facts (e.g. exit status and output of a failed health check). */
  readonly details: Readonly<Record<string, unknown>>;
}

/** Where a {@link Notifier} logs: one line per given-up or dropped event. */
export interface NotifyLog {
  /** Something was not delivered. */
  warn(message: string): void;
}

/** Settings of a {@link Notifier}. */
export interface NotifierOptions {
  /** Where to POST (http or https). */
  readonly url: string | URL;
  /** The holder id of this machine. */
  readonly machine: string;
  /** The semaphore group; `""` or `undefined` for the default semaphore. */
  readonly group?: string | undefined;
  /** Where failures are logged. */
  readonly log: NotifyLog;
  /** Clock for event times and backoff sleeps (default: the real one). */
  readonly clock?: SafetyClock;
  /** Random source in [0, 1) for the jitter (default `Math.random`). */
  readonly random?: () => number;
  /** Most events waiting to be sent (default 100). */
  readonly queueLimit?: number;
  /** Timeout of one POST (default 5 s). */
  readonly requestTimeoutMs?: number;
  /** An event not delivered this long after {@link Notifier.notify} is given up (default 10 min). */
  readonly giveUpAfterMs?: number;
  /** First retry delay (default 1 s), doubling per attempt. */
  readonly backoffBaseMs?: number;
  /** Longest retry delay (default 1 min). */
  readonly backoffMaxMs?: number;
  /** Told the fate of each event (for `locksmithd_notifications_total`). */
  readonly onResult?: (result: NotificationResult) => void;
}

interface Queued {
  readonly event: NotifyEvent;
  readonly time: string;
  readonly body: string;
  readonly queuedAtMs: number;
}

type Failure = { readonly permanent: boolean; readonly reason: string };

/** Sends notifications in order, in the background (see the module documentation). */
export class Notifier {
  readonly #url: URL;
  readonly #machine: string;
  readonly #group: string | null;
  readonly #log: NotifyLog;
  readonly #clock: SafetyClock;
  readonly #random: () => number;
  readonly #queueLimit: number;
  readonly #requestTimeoutMs: number;
  readonly #giveUpAfterMs: number;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #onResult: (result: NotificationResult) => void;
  readonly #queue: Queued[] = [];
  readonly #stop = new AbortController();
  #worker: Promise<void> | undefined;
  #inFlight = 0;
  #closed = false;
  #idleWaiters: (() => void)[] = [];

  /** Creates a notifier; nothing is sent before the first {@link Notifier.notify}. */
  constructor(options: NotifierOptions) {
    this.#url = new URL(options.url);
    this.#machine = options.machine;
    this.#group = options.group ? options.group : null;
    this.#log = options.log;
    this.#clock = options.clock ?? realClock;
    this.#random = options.random ?? Math.random;
    this.#queueLimit = Math.max(1, options.queueLimit ?? 100);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 5_000;
    this.#giveUpAfterMs = options.giveUpAfterMs ?? 600_000;
    this.#backoffBaseMs = options.backoffBaseMs ?? 1_000;
    this.#backoffMaxMs = options.backoffMaxMs ?? 60_000;
    this.#onResult = options.onResult ?? (() => {});
  }

  /** Events queued or being sent. */
  get pending(): number {
    return this.#queue.length + this.#inFlight;
  }

  /**
   * Queues `event` and returns at once; never throws. After
   * {@link Notifier.close}, events are ignored with a warning.
   */
  notify(
    event: NotifyEvent,
    details: Readonly<Record<string, unknown>> = {},
  ): void {
    const time = this.#clock.now();
    if (this.#closed) {
      this.#log.warn(
        `notification ${event} not sent: notifications are closed`,
      );
      return;
    }
    const notification: Notification = {
      event,
      machine: this.#machine,
      group: this.#group,
      time: time.toISOString(),
      details,
    };
    let body: string;
    try {
      body = JSON.stringify(notification);
    } catch (error) {
      this.#log.warn(`notification ${event} not sent: ${oneLine(error)}`);
      return;
    }
    if (this.#queue.length >= this.#queueLimit) {
      const dropped = this.#queue.shift() as Queued;
      this.#log.warn(
        `notifications to ${this.#url.origin}: queue full (${this.#queueLimit} waiting), dropped the oldest, ${dropped.event} of ${dropped.time}`,
      );
      this.#onResult("dropped");
    }
    this.#queue.push({
      event,
      time: notification.time,
      body,
      queuedAtMs: time.getTime(),
    });
    this.#start();
  }

  #start(): void {
    if (this.#worker !== undefined || this.#stop.signal.aborted) return;
    this.#worker = this.#drain().finally(() => {
      this.#worker = undefined;
      if (this.#queue.length > 0 && !this.#stop.signal.aborted) {
        this.#start();
        return;
      }
      for (const wake of this.#idleWaiters.splice(0)) wake();
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 && !this.#stop.signal.aborted) {
      const item = this.#queue.shift() as Queued;
      this.#inFlight = 1;
      try {
        await this.#deliver(item);
      } finally {
        this.#inFlight = 0;
      }
    }
  }

  async #deliver(item: Queued): Promise<void> {
    const where = `notification ${item.event} to ${this.#url.origin}`;
    for (let attempt = 1;; attempt++) {
      const failure = await this.#post(item.body);
      if (this.#stop.signal.aborted) return;
      if (failure === undefined) return this.#onResult("sent");
      if (failure.permanent) {
        this.#log.warn(`${where} refused (${failure.reason}); not retried`);
        return this.#onResult("given-up");
      }
      const delay = backoffMs(
        attempt,
        this.#random,
        this.#backoffBaseMs,
        this.#backoffMaxMs,
      );
      const now = this.#clock.now().getTime();
      if (now + delay > item.queuedAtMs + this.#giveUpAfterMs) {
        this.#log.warn(
          `${where} given up after ${attempt} attempt(s) in ${
            formatDuration(now - item.queuedAtMs)
          }: ${failure.reason}`,
        );
        return this.#onResult("given-up");
      }
      if (!await this.#clock.sleep(delay, this.#stop.signal)) return;
    }
  }

  /** POSTs once; `undefined` on a 2xx answer. */
  async #post(body: string): Promise<Failure | undefined> {
    const request = new AbortController();
    const onStop = () => request.abort();
    this.#stop.signal.addEventListener("abort", onStop, { once: true });
    const timer = setTimeout(() => request.abort(), this.#requestTimeoutMs);
    try {
      const response = await fetch(this.#url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": `locksmithd/${VERSION}`,
        },
        body,
        signal: request.signal,
      });
      await response.body?.cancel();
      if (response.ok) return undefined;
      const s = response.status;
      return {
        permanent: s >= 400 && s < 500 && ![408, 425, 429].includes(s),
        reason: `HTTP ${s}`,
      };
    } catch (error) {
      const timedOut = request.signal.aborted && !this.#stop.signal.aborted;
      return {
        permanent: false,
        reason: timedOut
          ? `no answer within ${formatDuration(this.#requestTimeoutMs)}`
          : oneLine(error),
      };
    } finally {
      clearTimeout(timer);
      this.#stop.signal.removeEventListener("abort", onStop);
    }
  }

  /**
   * Waits until every queued event has been delivered or given up, at most
   * `timeoutMs`; resolves whether that happened in time. Sends nothing itself.
   */
  async flush(timeoutMs: number): Promise<boolean> {
    if (this.#worker === undefined && this.#queue.length === 0) return true;
    const timeout = new AbortController();
    const idle = new Promise<boolean>((resolve) => {
      this.#idleWaiters.push(() => resolve(true));
    });
    const late = this.#clock.sleep(timeoutMs, timeout.signal).then(() => false);
    try {
      return await Promise.race([idle, late]);
    } finally {
      timeout.abort();
    }
  }

  /**
   * Stops accepting events, waits up to `timeoutMs` for the queued ones (as
   * {@link Notifier.flush}), then abandons the rest with one log line and
   * stops the worker. Safe to call more than once.
   */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    if (this.#stop.signal.aborted) return;
    const done = await this.flush(timeoutMs);
    const lost = this.pending;
    this.#stop.abort();
    this.#queue.length = 0;
    await this.#worker;
    if (!done && lost > 0) {
      this.#log.warn(
        `notifications to ${this.#url.origin}: ${lost} not sent before closing (waited ${
          formatDuration(timeoutMs)
        })`,
      );
      for (let i = 0; i < lost; i++) this.#onResult("given-up");
    }
  }
}
