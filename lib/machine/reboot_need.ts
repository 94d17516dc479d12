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

/** A {@link RebootNeed} that is needed as soon as any of `sources` is; it names the one that fired. */
export function anyRebootNeed(sources: readonly RebootNeed[]): RebootNeed {
  return {
    name: sources.map((s) => s.name).join(" or "),
    async neededBy(): Promise<string | undefined> {
      const answers = await Promise.allSettled(
        sources.map((s) => s.neededBy()),
      );
      for (const a of answers) {
        if (a.status === "fulfilled" && a.value !== undefined) return a.value;
      }
      if (answers.every((a) => a.status === "rejected")) {
        throw (answers[0] as PromiseRejectedResult).reason;
      }
      return undefined;
    },
    async waitUntilNeeded(
      signal: AbortSignal,
      onWatching?: () => void,
    ): Promise<string | undefined> {
      const done = new AbortController();
      const onAbort = () => done.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      let watching = 0;
      const oneWatching = () => {
        if (++watching === sources.length) onWatching?.();
      };
      try {
        return await Promise.any(
          sources.map(async (s) => {
            const name = await s.waitUntilNeeded(done.signal, oneWatching);
            if (name !== undefined) return name;
            throw new Error("stopped");
          }),
        ).catch(() => undefined);
      } finally {
        done.abort();
        signal.removeEventListener("abort", onAbort);
      }
    },
  };
}
