/**
 * Everything known about one semaphore at one revision: the document, each
 * holder's record and liveness, the pause, the settings and the wait
 * queue, as read in one transaction. Which holders are stale follows from
 * it. Pure.
 *
 * A holder is stale when its record says that it renews its slot (it
 * names a lease) and its alive key is gone: etcd deleted it when the
 * lease was not renewed within its TTL. Time is measured by etcd alone,
 * never by comparing clocks of machines. Holders without a record, or
 * whose record names no lease (`locksmithctl lock`, the FleetLock server,
 * older versions, a group without TTL), are never stale.
 *
 * @module
 */

import type { Semaphore } from "./document.ts";
import type { HolderRecord } from "./holder_record.ts";
import type { StoredSettings } from "./settings.ts";

/** What is known about one holder listed in the document. */
export interface HolderState {
  /** The holder id. */
  readonly id: string;
  /** Its record, when there is one that parses. */
  readonly record?: HolderRecord | undefined;
  /** The record's `mod_revision` (`0` when absent), for a guarded reclaim. */
  readonly recordRevision: number;
  /** Whether its alive key exists. */
  readonly alive: boolean;
}

/**
 * `alive` (renews, and its lease is live), `expired` (renews, but its
 * lease expired: stale), `untracked` (does not renew: never stale).
 */
export type Liveness = "alive" | "expired" | "untracked";

/** The liveness of a holder; see {@link Liveness}. */
export function livenessOf(holder: HolderState): Liveness {
  if (holder.record?.lease === undefined) return "untracked";
  return holder.alive ? "alive" : "expired";
}

/** A waiter of the queue, in queue order. */
export interface WaiterState {
  /** The waiter's id. */
  readonly id: string;
  /** When it joined, as it wrote (ISO 8601), if known. */
  readonly since?: string | undefined;
}

/** One consistent reading of a semaphore and its companion keys. */
export interface SemaphoreView {
  /** The semaphore key. */
  readonly key: string;
  /** The document. */
  readonly doc: Semaphore;
  /** The document's text as stored (`undefined` when absent). */
  readonly raw: string | undefined;
  /** The document's `mod_revision` (`0` when absent). */
  readonly docRevision: number;
  /** The document's `version` (`0` when absent). */
  readonly docVersion: number;
  /** The revision the reading was made at. */
  readonly revision: number;
  /** The holders, in the document's order. */
  readonly holders: readonly HolderState[];
  /** Whether new slots are refused (`locksmithctl pause`). */
  readonly paused: boolean;
  /** When the pause was set, if it says. */
  readonly pausedSince?: string | undefined;
  /** The stored settings. */
  readonly settings: StoredSettings;
  /** The waiters, oldest first (the first thousand). */
  readonly waiters: readonly WaiterState[];
  /** How many machines wait (all of them, also those not listed). */
  readonly waiting: number;
}

/**
 * Most holders one reclaim removes: each costs two comparisons, and etcd
 * allows 128 per transaction by default. More stale holders take more rounds.
 */
export const MAX_RECLAIMS_PER_TXN = 50;

/** The holders of `view` whose lease expired: what a slot TTL reclaims. */
export function staleHolders(view: SemaphoreView): HolderState[] {
  return view.holders.filter((h) => livenessOf(h) === "expired");
}

/** Whether `view` says more than the seed's status did: records, a queue, a pause, settings. */
export function hasDetails(view: SemaphoreView): boolean {
  return view.paused || view.waiters.length > 0 ||
    view.settings.kind !== "absent" ||
    view.holders.some((h) => h.record !== undefined);
}
