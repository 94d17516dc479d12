/**
 * Queue entries that no live locksmithd owns (no lease): a waiter passes
 * them over at once, and removes each once it has seen it for a grace
 * period, with one warning naming the key (only the waiter whose delete
 * applied logs it). The grace lets a writer that is not locksmith (an
 * operator's `etcdctl put`, a key mirror) be noticed before its key goes.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import type { WaiterEntry } from "../store/waiter_entry.ts";
import { type KeyValue, lossyText, type TxnResult } from "../client/port.ts";

/** How long an entry without a lease is passed over before a waiter removes it: 1 minute. */
export const OWNERLESS_GRACE_MS = 60_000;

/** The entries without a lease one waiter has seen, and since when. */
export class OwnerlessEntries {
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #since = new Map<string, number>();

  /**
   * Creates the record.
   *
   * @param graceMs how long an entry is passed over before it is removed
   * @param now the clock, in ms
   */
  constructor(graceMs: number, now: () => number) {
    this.#graceMs = graceMs;
    this.#now = now;
  }

  /**
   * Notes the entries without a lease seen ahead in the latest read;
   * returns those due for removal (as read, for a guarded delete) and, when
   * none is due yet, in how many ms the next one is (if any).
   */
  note(
    ownerless: readonly WaiterEntry[],
  ): { due: KeyValue[]; nextInMs: number | undefined } {
    const now = this.#now();
    const keys = new Set(ownerless.map((e) => lossyText(e.key)));
    for (const key of this.#since.keys()) {
      if (!keys.has(key)) this.#since.delete(key);
    }
    for (const key of keys) {
      if (!this.#since.has(key)) this.#since.set(key, now);
    }
    const due = ownerless.filter((e) =>
      now - this.#since.get(lossyText(e.key))! >= this.#graceMs
    );
    for (const e of due) this.#since.delete(lossyText(e.key));
    const nextInMs = due.length === 0 && this.#since.size > 0
      ? Math.max(0, Math.min(...this.#since.values()) + this.#graceMs - now)
      : undefined;
    return {
      due: due.map((e) => ({
        key: e.key,
        value: new Uint8Array(),
        createRevision: e.createRevision,
        modRevision: e.modRevision,
        version: 1,
        lease: e.lease,
      })),
      nextInMs,
    };
  }

  /** The warning for each entry of `due` whose guarded delete applied in `res`. */
  removed(due: readonly KeyValue[], res: TxnResult): string[] {
    return due.flatMap((kv, i) => {
      const r = res.responses[i];
      // A guard that failed on a request sent twice may have failed on
      // this waiter's own copy, which removed the entry: counted as removed.
      const applied = r !== undefined && "txn" in r &&
        (r.txn.succeeded || res.resent === true);
      if (!applied) return [];
      return [
        `removed ${
          JSON.stringify(lossyText(kv.key))
        } from the wait queue: it has no lease, so no live locksmithd owns it (passed over for ${
          formatDuration(this.#graceMs)
        })`,
      ];
    });
  }
}
