/**
 * Waiting until one key changes after a revision: a watch from the next
 * revision; when the watch is lost (etcd down, compaction, a member's
 * restart), a read says whether the key moved meanwhile, and the watch is
 * set up again a second later, until the timeout.
 *
 * @module
 */

import type { EtcdPort } from "./port.ts";

/** What {@link waitForKeyChange} watches, and for how long. */
export interface KeyChangeWait {
  /** The etcd port. */
  readonly port: EtcdPort;
  /** The key. */
  readonly key: Uint8Array;
  /** Wait for a change after this revision. */
  readonly revision: number;
  /** Give up after this long (ms). */
  readonly timeoutMs: number;
  /** Gives up when it aborts. */
  readonly signal?: AbortSignal | undefined;
  /** The key's current revision, read (used when the watch is lost). */
  revisionNow(): Promise<number>;
}

/** Resolves `"changed"`, `"timeout"` or `"aborted"`; never throws. */
export function waitForKeyChange(
  wait: KeyChangeWait,
): Promise<"changed" | "timeout" | "aborted"> {
  const { port, key, revision, timeoutMs, signal } = wait;
  if (signal?.aborted) return Promise.resolve("aborted");
  return new Promise((resolve) => {
    let stream: { cancel(): void } | undefined;
    let done = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const finish = (result: "changed" | "timeout" | "aborted") => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(retry);
      stream?.cancel();
      signal?.removeEventListener("abort", onAbort);
      resolve(result);
    };
    const onAbort = () => finish("aborted");
    const timer = setTimeout(() => finish("timeout"), timeoutMs);
    const watch = () => {
      stream = port.watch([{ key, startRevision: revision + 1 }], {
        onEvents: () => finish("changed"),
        onEnd: () => {
          // The watch was lost: look with a read, then watch again.
          wait.revisionNow().then(
            (now) => now > revision && finish("changed"),
            () => {},
          ).finally(() => {
            if (!done) retry = setTimeout(watch, 1_000);
          });
        },
      });
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    watch();
  });
}
