/**
 * Waking whoever waits for a change: a version counter that moves on every
 * change, the version the waiter last looked at, and whether the watch that
 * brings changes is lost. Used by the wait queue.
 *
 * @module
 */

import type { WaitResult } from "../../semaphore/slot_queue.ts";

/** See the module documentation. */
export class Wakeup {
  #version = 0;
  #seen = 0;
  #lost = false;
  readonly #wakers = new Set<(lost: boolean) => void>();

  /** Records that the waiter has looked at the current state. */
  seen(): void {
    this.#seen = this.#version;
  }

  /** Something changed: wake every waiter. */
  changed(): void {
    this.#version++;
    for (const wake of this.#wakers) wake(false);
  }

  /** The watch is lost (or back, with `false`); a loss wakes every waiter. */
  lost(lost: boolean): void {
    this.#lost = lost;
    if (lost) { for (const wake of this.#wakers) wake(true); }
  }

  /** Wakes every waiter as if something changed (on close). */
  release(): void {
    for (const wake of this.#wakers) wake(false);
  }

  /**
   * Resolves `"changed"` at once when something changed since {@link seen},
   * `"disconnected"` while the watch is lost, else on the next change or
   * loss, after `timeoutMs` (`"timeout"`), or when `signal` aborts.
   */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<WaitResult> {
    if (signal?.aborted) return Promise.resolve("aborted");
    if (this.#version !== this.#seen) return Promise.resolve("changed");
    if (this.#lost) return Promise.resolve("disconnected");
    return new Promise<WaitResult>((resolve) => {
      const finish = (result: WaitResult) => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        signal?.removeEventListener("abort", onAbort);
        resolve(result);
      };
      const wake = (lost: boolean) => finish(lost ? "disconnected" : "changed");
      const onAbort = () => finish("aborted");
      const timer = setTimeout(() => finish("timeout"), timeoutMs);
      this.#wakers.add(wake);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}
