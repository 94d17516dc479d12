/**
 * How locksmithd stops within its bound: SIGTERM ends it with exit status
 * 0 within 1 s whatever it waits on. The loop gets {@link STOP_GRACE_MS}
 * to wind up by itself (its waits end on the stop signal); whatever it
 * still waits on then (a D-Bus call, an etcd request) is abandoned, and
 * what was opened is closed, in reverse order, until {@link STOP_BUDGET_MS}
 * after the signal. Abandoning is safe: every etcd write is one
 * transaction that applied or did not, and a D-Bus call that went out
 * (even logind's Reboot) was asked for in full.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import type { DaemonLog } from "../loop/ports.ts";

/** How long the loop may take to end by itself after a stop. */
export const STOP_GRACE_MS = 300;

/**
 * From the stop signal to the end of closing: leaves the runtime room to
 * exit within 1 s of SIGTERM.
 */
export const STOP_BUDGET_MS = 700;

/** What {@link untilStopped} resolves with when the work was abandoned. */
export const ABANDONED: unique symbol = Symbol("abandoned");

/**
 * Resolves with what `work` resolves to, or {@link ABANDONED} once `signal`
 * has been aborted for `graceMs` without `work` ending. A failure of the
 * abandoned work is logged (the daemon is stopping; it changes nothing).
 */
export async function untilStopped<T>(
  work: Promise<T>,
  signal: AbortSignal,
  graceMs: number,
  log: DaemonLog,
): Promise<T | typeof ABANDONED> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let arm = (): void => {};
  const abandoned = new Promise<typeof ABANDONED>((resolve) => {
    arm = () => {
      timer = setTimeout(() => resolve(ABANDONED), graceMs);
    };
  });
  if (signal.aborted) arm();
  else signal.addEventListener("abort", arm, { once: true });
  try {
    const result = await Promise.race([work, abandoned]);
    if (result === ABANDONED) {
      work.catch((error) =>
        log.warn(`while stopping, an abandoned step failed: ${oneLine(error)}`)
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", arm);
  }
}

/** Closes something opened; `budgetMs` is the time left to do it in. */
export type Close = (budgetMs: number) => Promise<void>;

/** What the daemon opened, closed in reverse order, within a deadline when stopping. */
export class Closers {
  readonly #log: DaemonLog;
  readonly #closers: { name: string; close: Close }[] = [];

  /**
   * Creates an empty list.
   *
   * @param log where failures to close and abandoned closes are logged
   */
  constructor(log: DaemonLog) {
    this.#log = log;
  }

  /** Adds something to close, named for the log. */
  add(name: string, close: Close): void {
    this.#closers.push({ name, close });
  }

  /**
   * Closes everything added, the last first, each after the one before
   * ended. With `deadline` (on `performance.now()`), what has not closed
   * by then is abandoned with one log line; without, each takes its time.
   */
  async closeAll(deadline?: number): Promise<void> {
    const abandoned: string[] = [];
    for (const { name, close } of this.#closers.splice(0).reverse()) {
      const left = deadline === undefined
        ? Infinity
        : deadline - performance.now();
      if (left <= 0) {
        abandoned.push(name);
        continue;
      }
      const closing = close(left).then(
        () => true,
        (error) => {
          this.#log.warn(`cannot close ${name}: ${oneLine(error)}`);
          return true;
        },
      );
      if (left === Infinity) {
        await closing;
        continue;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const inTime = await Promise.race([
        closing,
        new Promise<false>((r) => timer = setTimeout(() => r(false), left)),
      ]);
      clearTimeout(timer);
      if (!inTime) abandoned.push(name);
    }
    if (abandoned.length > 0) {
      this.#log.warn(
        `stopped without waiting for ${
          abandoned.join(", ")
        } to close (a stop takes at most ${formatDuration(STOP_BUDGET_MS)})`,
      );
    }
  }
}
