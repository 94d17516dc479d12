/**
 * Where locksmithd learns that a reboot is needed: update_engine on the bus
 * and a sentinel file are both an {@link UpdateStatusSource}; each becomes a
 * {@link RebootNeed}, and {@link anyRebootNeed} combines them: either one
 * saying "reboot needed" is enough, so a host where update_engine appears
 * (or disappears) later is still served. The answer names the source that
 * fired, for the log.
 *
 * @module
 */

import { oneLine } from "../common/errors.ts";

/** update_engine's operation that means "an update is installed and waits for a reboot". */
export const NEED_REBOOT = "UPDATE_STATUS_UPDATED_NEED_REBOOT";

/** update_engine's operation with nothing to do (a sentinel source reports it while its file is absent). */
export const IDLE = "UPDATE_STATUS_IDLE";

/** Whether a reboot is needed, in the shape locksmithd's loop asks for. */
export interface RebootNeed {
  /** For log lines: the sources, e.g. `update_engine or sentinel file /run/reboot-required`. */
  readonly name: string;
  /** The name of a source that says a reboot is needed now, or `undefined`. */
  neededBy(): Promise<string | undefined>;
  /**
   * Resolves with the name of the source that says a reboot is needed (at
   * once if one already does), or `undefined` when `signal` aborts.
   * `onWatching` is called once every source listens, so that nothing
   * that happens afterwards is missed.
   */
  waitUntilNeeded(
    signal: AbortSignal,
    onWatching?: () => void,
  ): Promise<string | undefined>;
}

/** Called with update_engine's current operation on every status change. */
export type StatusListener = (currentOperation: string) => void;

/** Stops a subscription; resolves once no more calls will be made. */
export type Unsubscribe = () => Promise<void>;

/** Where locksmithd learns that a reboot is needed. */
export interface UpdateStatusSource {
  /** For log lines, e.g. `update_engine` or `sentinel file /run/reboot-required`. */
  readonly name: string;
  /**
   * The current operation (e.g. `UPDATE_STATUS_UPDATED_NEED_REBOOT`), or `undefined` when the
   * source is not there at all (update_engine not on the bus), so that the
   * caller can fall back to another source.
   */
  currentOperation(): Promise<string | undefined>;
  /**
   * Calls `listener` on every status change from now on; resolves once the
   * subscription is active, so a change right after it is not missed.
   * Subscribe first, then read {@link currentOperation}, to miss nothing.
   */
  subscribe(listener: StatusListener): Promise<Unsubscribe>;
}

/** Adapts an {@link UpdateStatusSource} to a {@link RebootNeed}: needed means {@link NEED_REBOOT}. */
export function rebootNeedFrom(source: UpdateStatusSource): RebootNeed {
  return {
    name: source.name,
    async neededBy(): Promise<string | undefined> {
      return (await source.currentOperation()) === NEED_REBOOT
        ? source.name
        : undefined;
    },
    async waitUntilNeeded(
      signal: AbortSignal,
      onWatching?: () => void,
    ): Promise<string | undefined> {
      if (signal.aborted) return undefined;
      let resolveNeeded = (_needed: boolean): void => {};
      const needed = new Promise<boolean>((resolve) => {
        resolveNeeded = resolve;
      });
      const onAbort = (): void => resolveNeeded(false);
      signal.addEventListener("abort", onAbort, { once: true });
      let unsubscribe: Unsubscribe | undefined;
      try {
        unsubscribe = await source.subscribe((operation) => {
          if (operation === NEED_REBOOT) resolveNeeded(true);
        });
        onWatching?.();
        if ((await source.currentOperation()) === NEED_REBOOT) {
          resolveNeeded(true);
        }
        return (await needed) ? source.name : undefined;
      } finally {
        signal.removeEventListener("abort", onAbort);
        await unsubscribe?.();
      }
    },
  };
}

/**
 * A {@link RebootNeed} that is needed as soon as any of `sources` is; it
 * names the one that fired. A source that fails while another still
 * answers is logged through `log` (once per wait) and the others are
 * relied on; when every source fails, the failure is thrown, naming each,
 * so that the daemon never stops silently.
 */
export function anyRebootNeed(
  sources: readonly RebootNeed[],
  log: (line: string) => void = () => {},
): RebootNeed {
  const failed = (name: string, error: unknown): string =>
    `${name}: ${oneLine(error)}`;
  return {
    name: sources.map((s) => s.name).join(" or "),
    async neededBy(): Promise<string | undefined> {
      const answers = await Promise.allSettled(
        sources.map((s) => s.neededBy()),
      );
      for (const a of answers) {
        if (a.status === "fulfilled" && a.value !== undefined) return a.value;
      }
      const failures = answers.flatMap((a, i) =>
        a.status === "rejected" ? [failed(sources[i]!.name, a.reason)] : []
      );
      if (failures.length === sources.length) {
        throw new Error(
          `no source can tell whether a reboot is needed (${
            failures.join("; ")
          })`,
        );
      }
      for (const f of failures) log(`cannot ask ${f}`);
      return undefined;
    },
    async waitUntilNeeded(
      signal: AbortSignal,
      onWatching?: () => void,
    ): Promise<string | undefined> {
      // AbortSignal.any is aborted at once when `signal` already is.
      const done = new AbortController();
      const stop = AbortSignal.any([signal, done.signal]);
      let watching = 0;
      const oneWatching = () => {
        if (++watching === sources.length) onWatching?.();
      };
      const failures: string[] = [];
      try {
        const fired = await Promise.allSettled(
          sources.map(async (s, i) => {
            try {
              const name = await s.waitUntilNeeded(stop, oneWatching);
              if (name !== undefined) done.abort();
              return name;
            } catch (error) {
              failures[i] = failed(s.name, error); // in the sources' order
              if (failures.filter(Boolean).length < sources.length) {
                log(`cannot watch ${failed(s.name, error)}`);
              }
              throw error;
            }
          }),
        );
        for (const f of fired) {
          if (f.status === "fulfilled" && f.value !== undefined) return f.value;
        }
        if (signal.aborted) return undefined;
        throw new Error(
          `no source can tell whether a reboot is needed (${
            failures.join("; ")
          }): stopping so that systemd restarts locksmithd`,
        );
      } finally {
        done.abort();
      }
    },
  };
}
