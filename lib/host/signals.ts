/**
 * Stopping on SIGTERM or SIGINT, the same way in every program: an
 * `AbortSignal` that the first of them aborts. A program that loads the
 * rest of its code after start (locksmithd) listens first and says later
 * what to do on a signal ({@link StopOnSignals.handle}).
 *
 * @module
 */

/** The signals that ask a program to stop. */
export type StopSignalName = "SIGTERM" | "SIGINT";

/** What {@link stopOnSignals} returns. */
export interface StopOnSignals {
  /** Aborted by the first SIGTERM or SIGINT; its `reason` is the signal's name. */
  readonly signal: AbortSignal;
  /** Resolves with the name of the first SIGTERM or SIGINT. */
  readonly stopped: Promise<StopSignalName>;
  /**
   * Replaces the handlers from now on. A stop that came before is reported
   * to the new `onStop` at once (as the first); a SIGHUP that came before
   * is not.
   */
  handle(options: StopOnSignalsOptions): void;
  /** Removes the handlers. */
  dispose(): void;
}

/** Handlers of {@link stopOnSignals}. */
export interface StopOnSignalsOptions {
  /** Called on each SIGTERM or SIGINT (the first aborts the signal). */
  readonly onStop?: (name: StopSignalName, first: boolean) => void;
  /**
   * When given to {@link stopOnSignals}, SIGHUP calls it instead of ending
   * the program (later {@link StopOnSignals.handle} calls may replace it).
   */
  readonly onHangup?: () => void;
}

/**
 * Listens for SIGTERM and SIGINT (and SIGHUP with `onHangup`) until
 * disposed: the first stop signal aborts the returned signal.
 */
export function stopOnSignals(
  options: StopOnSignalsOptions = {},
): StopOnSignals {
  const stop = new AbortController();
  let current = options;
  let resolve: (name: StopSignalName) => void = () => {};
  const stopped = new Promise<StopSignalName>((r) => resolve = r);
  const handlers: [Deno.Signal, () => void][] = (
    ["SIGTERM", "SIGINT"] as const
  ).map((name) => [name, () => {
    const first = !stop.signal.aborted;
    current.onStop?.(name, first);
    stop.abort(name);
    resolve(name);
  }]);
  if (options.onHangup) {
    handlers.push(["SIGHUP", () => current.onHangup?.()]);
  }
  for (const [name, handler] of handlers) {
    Deno.addSignalListener(name, handler);
  }
  return {
    signal: stop.signal,
    stopped,
    handle: (next) => {
      current = next;
      if (stop.signal.aborted) {
        next.onStop?.(stop.signal.reason as StopSignalName, true);
      }
    },
    dispose: () => {
      for (const [name, handler] of handlers) {
        Deno.removeSignalListener(name, handler);
      }
    },
  };
}
