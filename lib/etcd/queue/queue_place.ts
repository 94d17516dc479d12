/**
 * Where a waiter stands in the wait queue, computed from one consistent
 * read of the queue (entries: `../store/waiter_entry.ts`). Pure.
 *
 * @module
 */

import { type KeyValue, sameBytes, type WatchEvent } from "../client/port.ts";
import { type WaiterEntry, waiterEntryFrom } from "../store/waiter_entry.ts";

/**
 * Waiters at the front of the queue: this many (the head and the three
 * behind it) watch the document, so that a free slot left by dead waiters
 * ahead is taken after the hand-over time per dead waiter, by the first
 * live one among them.
 */
export const FRONT = 4;

/** How many of the entries just ahead a waiter reads: enough to find {@link FRONT} owned ones past a few ownerless. */
export const PREDECESSORS_READ = 2 * FRONT;

/** One consistent read of the queue, as a waiter sees it. */
export interface QueueReading {
  /** Other entries read (keys under the prefix, any kind): checked for junk only. */
  readonly first: readonly KeyValue[];
  /** The (up to {@link PREDECESSORS_READ}) entries that joined last before this waiter, nearest first. */
  readonly predecessors: readonly KeyValue[];
  /** This waiter's entry as stored now, if any. */
  readonly mine: KeyValue | undefined;
  /** Entries in the queue (all of them, this waiter's included). */
  readonly count: number;
  /** Entries created before this waiter's (keys only), when read. */
  readonly before?: readonly KeyValue[] | undefined;
}

/** What a queued waiter knows about the entries ahead of it. */
export interface Queued {
  /**
   * Front waiters (fewer than {@link FRONT} owned entries ahead): every
   * owned entry ahead; the others: the {@link FRONT} nearest owned entries
   * ahead (when any of them leaves, the place may change). Nearest first.
   */
  readonly ahead: readonly WaiterEntry[];
  /** Whether this waiter is among the first {@link FRONT}: it watches the document and the whole queue. */
  readonly front: boolean;
  /** Owned entries ahead, when known (exact at the front). */
  readonly position: number | undefined;
  /** Entries seen ahead that no locksmithd owns (no lease): passed over. */
  readonly ownerless: readonly WaiterEntry[];
}

/** Where a waiter stands, or what must be cleaned first. */
export type Placement =
  | { readonly place: "out" }
  | ({ readonly place: "head" } & Queued)
  | ({ readonly place: "second"; readonly head: WaiterEntry } & Queued)
  | ({ readonly place: "behind" } & Queued)
  | { readonly place: "junk"; readonly junk: readonly KeyValue[] };

/** A queued placement with `ahead` and the place that follows from it (front waiters). */
export function frontPlacement(
  ahead: readonly WaiterEntry[],
  ownerless: readonly WaiterEntry[],
): Placement {
  const common = { ahead, front: true, position: ahead.length, ownerless };
  if (ahead.length === 0) return { place: "head", ...common };
  if (ahead.length === 1) {
    return { place: "second", head: ahead[0]!, ...common };
  }
  return { place: "behind", ...common };
}

/** Whether `entry` is owned by a live lease as far as a read can tell (it has one). */
export function owned(entry: WaiterEntry): boolean {
  return entry.lease !== "0" && entry.lease !== "";
}

/**
 * Where the waiter whose entry was created at `joinedAt` stands in
 * `reading` of the queue under `prefix`. Junk (entries that cannot be
 * waiters) among the entries read comes first: it must be removed and the
 * queue read again. Entries without a lease are passed over: they never
 * count as ahead.
 */
export function placeOf(
  prefix: string,
  reading: QueueReading,
  joinedAt: number,
): Placement {
  const mine = reading.mine;
  if (mine === undefined || mine.createRevision !== joinedAt) {
    return { place: "out" };
  }
  const seen = [...reading.first, ...reading.predecessors];
  const junk = seen.filter((kv) => waiterEntryFrom(prefix, kv) === undefined);
  if (junk.length > 0) return { place: "junk", junk: dedupe(junk) };
  const ahead = reading.predecessors
    .map((kv) => waiterEntryFrom(prefix, kv)!)
    .filter((e) => e.createRevision < joinedAt)
    .toSorted((a, b) => b.createRevision - a.createRevision);
  // The whole queue ahead is known when the read was not cut short.
  const whole = reading.predecessors.length < PREDECESSORS_READ;
  const ownerless = ahead.filter((e) => !owned(e));
  const live = ahead.filter(owned);
  const counted = reading.before?.filter((kv) => kv.lease !== "0").length;
  if (whole && live.length < FRONT) return frontPlacement(live, ownerless);
  return {
    place: "behind",
    ahead: live.slice(0, FRONT),
    front: false,
    position: counted,
    ownerless,
  };
}

/**
 * A front waiter's placement after `events` of its watch on the whole
 * queue (keys under `keys.prefix`): `"out"` when its own entry was deleted,
 * `"reread"` when an entry ahead was written (read the queue again), else
 * the placement with the entries deleted since gone.
 */
export function frontAfter(
  placement: Queued,
  events: readonly WatchEvent[],
  keys: { readonly prefix: Uint8Array; readonly mine: Uint8Array },
  joinedAt: number,
): Placement | "out" | "reread" {
  let { ahead, ownerless } = placement;
  let reread = false;
  for (const e of events) {
    const key = e.kv.key;
    if (!sameBytes(key.subarray(0, keys.prefix.length), keys.prefix)) continue;
    const isKey = (w: WaiterEntry) => sameBytes(w.key, key);
    if (e.type === "DELETE") {
      if (sameBytes(key, keys.mine)) return "out";
      ahead = ahead.filter((w) => !isKey(w));
      ownerless = ownerless.filter((w) => !isKey(w));
    } else if (
      ahead.some(isKey) || ownerless.some(isKey) ||
      e.kv.createRevision < joinedAt // an entry ahead it did not know of
    ) {
      reread = true;
    }
  }
  return reread ? "reread" : frontPlacement(ahead, ownerless);
}

function dedupe(kvs: readonly KeyValue[]): KeyValue[] {
  const out = new Map<number, KeyValue>();
  for (const kv of kvs) out.set(kv.createRevision, kv);
  return [...out.values()];
}
