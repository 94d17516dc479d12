/**
 * The clock of the safe-reboot modules (notifications, health gate): "now"
 * and an abortable sleep, injected so that tests run without sleeping. The
 * daemon loop's `Clock` is this one too, so the loop can pass its own.
 *
 * @module
 */

/** "Now" and an abortable sleep. */
export interface SafetyClock {
  /** The current time. */
  now(): Date;
  /** Sleeps `ms`; resolves `false` early when `signal` aborts, `true` otherwise. */
  sleep(ms: number, signal: AbortSignal): Promise<boolean>;
}

/** A clock that only moves forward, for measuring how old something is. */
export interface MonotonicClock {
  /**
   * Milliseconds on a clock that never goes back and is not set by NTP or
   * an operator (`performance.now()`); only differences mean anything.
   */
  monotonicMs(): number;
}

/** Longest single timer: `setTimeout` fires at once beyond 2^31-1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock: `Date`, `performance.now()`, and `setTimeout` (long sleeps split into timers that fit). */
export const realClock: SafetyClock & MonotonicClock = Object.freeze({
  now: () => new Date(),
  monotonicMs: () => performance.now(),
  sleep: async (ms: number, signal: AbortSignal): Promise<boolean> => {
    let rest = Math.max(0, ms);
    do {
      const step = Math.min(rest, MAX_TIMER_MS);
      rest -= step;
      const slept = await new Promise<boolean>((resolve) => {
        if (signal.aborted) return resolve(false);
        const onAbort = () => {
          clearTimeout(timer);
          resolve(false);
        };
        const timer = setTimeout(() => {
          signal.removeEventListener("abort", onAbort);
          resolve(true);
        }, step);
        signal.addEventListener("abort", onAbort, { once: true });
      });
      if (!slept) return false;
    } while (rest > 0);
    return true;
  },
});
