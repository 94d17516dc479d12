/**
 * The FIFO wait queue under a semaphore in etcd, for one machine: the
 * {@link SlotQueue} that locksmithd uses.
 *
 * Entries are `<key>/waiters/<escaped id>`, attached to the machine's lease
 * (`LeaseSession`), ordered by their create revision. Joining is one Txn
 * that also reads the document and the entries just ahead. Entries that no
 * live locksmithd can own (no lease) are passed over at once and removed
 * after a grace period; entries that cannot be waiters at all are removed
 * at once. A waiter is woken only by what can change its turn:
 *
 * - the first {@link FRONT} waiters (the front) watch the document's whole
 *   range, the queue included, with one watcher: each knows the free slots
 *   and exactly who is ahead of it, and learns at once when it was removed
 *   from the queue (so that it joins again at once). Who takes a free slot
 *   when is decided by the daemon (`decideTurn`): the waiters ahead first,
 *   then, after the hand-over time per waiter ahead that leaves it
 *   untaken, this one, removing those ahead;
 * - every other waiter watches only the {@link FRONT} owned entries just
 *   ahead of it, and reads the queue again when any of them leaves (so it
 *   learns when it reaches the front).
 *
 * So a grant wakes O(1) waiters, whatever the length of the queue. Every
 * watch starts right after the read it continues, is kept on two members
 * when possible (`HedgedWatch`), and a lost or compacted watch is replaced
 * after a fresh read.
 *
 * @module
 */

import { oneLine } from "../../common/errors.ts";
import { parseHolderRecord } from "../../semaphore/holder_record.ts";
import {
  holderRecordKey,
  settingsKey,
  waiterKey,
  waitersPrefix,
} from "../../semaphore/keys.ts";
import {
  type Companion,
  lockSlot,
  type UpdateOutcome,
} from "../../semaphore/lock_store.ts";
import type {
  QueueState,
  SlotQueue,
  StartupReading,
  TakeOptions,
  WaitResult,
} from "../../semaphore/slot_queue.ts";
import type { EtcdLockStore } from "../store/etcd_lock_store.ts";
import { storedFrom } from "../store/stored_document.ts";
import { QueueWatches } from "./queue_watches.ts";
import { Wakeup } from "./wakeup.ts";
import { OWNERLESS_GRACE_MS, OwnerlessEntries } from "./queue_ownerless.ts";
import type { LeaseSession } from "./lease_session.ts";
import {
  bytes,
  lossyText,
  prefixEnd,
  sameBytes,
  textOf,
  type WatchEvent,
} from "../client/port.ts";
import { FRONT, frontAfter, type Placement, placeOf } from "./queue_place.ts";
import {
  describeJunk,
  formatWaiterValue,
  type WaiterEntry,
} from "../store/waiter_entry.ts";
import {
  existingEntry,
  joinedReading,
  joinRequest,
  leaveRequest,
  leftDocument,
  type QueueKeys,
  type QueueSnapshot,
  readReading,
  readRequest,
  removeRequest,
  startupReading,
  startupRequest,
} from "./queue_reads.ts";

/** Options of {@link EtcdWaitQueue}. */
export interface WaitQueueOptions {
  /** This machine's holder id. */
  readonly id: string;
  /** The process's lease, shared with nothing else; closed by {@link EtcdWaitQueue.close}. */
  readonly session: LeaseSession;
  /** The clock, for the entry's "since" (default: the system's). */
  readonly now?: () => Date;
  /** Where the queue reports what it did on its own (junk removed, watches lost), one line each. */
  readonly log?: (line: string) => void;
  /** How long an entry without a lease is passed over before it is removed (default {@link OWNERLESS_GRACE_MS}). */
  readonly ownerlessGraceMs?: number;
}

export { OWNERLESS_GRACE_MS };

/** The etcd {@link SlotQueue}; see the module documentation. */
export class EtcdWaitQueue implements SlotQueue {
  readonly #store: EtcdLockStore;
  readonly #id: string;
  readonly #session: LeaseSession;
  readonly #now: () => Date;
  readonly #log: (line: string) => void;
  readonly #prefix: string;
  readonly #keys: QueueKeys;
  #joinedAt: number | undefined;
  #placement: Placement = { place: "out" };
  #ahead = 0;
  /** Whether this machine's take is under way (its entry goes with it). */
  #taking = false;
  readonly #ownerless: OwnerlessEntries;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #watches: QueueWatches;
  #refreshing: Promise<QueueState> | undefined;
  readonly #wakeup = new Wakeup();
  readonly #unsubscribe: () => void;

  /**
   * Creates the queue of `store`'s semaphore for one machine.
   *
   * @param store the semaphore's store (its port is used for the queue)
   * @param options id, lease session, clock, log
   */
  constructor(store: EtcdLockStore, options: WaitQueueOptions) {
    this.#store = store;
    this.#id = options.id;
    this.#session = options.session;
    this.#now = options.now ?? (() => new Date());
    this.#log = options.log ?? (() => {});
    this.#ownerless = new OwnerlessEntries(
      options.ownerlessGraceMs ?? OWNERLESS_GRACE_MS,
      () => this.#now().getTime(),
    );
    this.#prefix = waitersPrefix(store.key);
    this.#keys = {
      doc: bytes(store.key),
      prefix: bytes(this.#prefix),
      prefixEnd: prefixEnd(bytes(this.#prefix)),
      mine: bytes(waiterKey(store.key, options.id)),
      settings: bytes(settingsKey(store.key)),
    };
    this.#watches = new QueueWatches(
      store.port,
      { key: this.#keys.doc, rangeEnd: this.#keys.prefixEnd },
      {
        onDocEvents: (events) => this.#onDocEvents(events),
        onEntryEvents: (events) => this.#onEntryEvents(events),
        onLost: (reason) => {
          this.#log(`${reason}; reading the queue again`);
          this.#wakeup.lost(true);
        },
      },
    );
    this.#unsubscribe = this.#session.onExpired(() => {
      this.#log(
        "this machine's queue entry expired with its lease; joining again",
      );
      this.#out();
      this.#wakeup.changed();
    });
  }

  /** The current state without I/O; see {@link SlotQueue.state}. */
  state(): QueueState {
    this.#wakeup.seen();
    const p = this.#placement;
    if (p.place === "out" || p.place === "junk") {
      return { place: "out", doc: this.#store.peek(), ahead: 0 };
    }
    return {
      place: p.place,
      doc: this.#store.peek(),
      headId: p.place === "second" ? p.head.id : undefined,
      ahead: p.front ? p.ahead.length : this.#ahead,
      front: p.front,
      aheadIds: p.front ? p.ahead.map((e) => e.id).reverse() : undefined,
    };
  }

  /** Reads the document and this machine's record, clearing a stale entry; see {@link SlotQueue.startupRead}. */
  startupRead(): Promise<StartupReading> {
    return this.#store.operation(async (deadline) => {
      const res = await this.#store.port.txn(
        startupRequest(
          this.#keys,
          bytes(holderRecordKey(this.#store.key, this.#id)),
          this.#joinedAt === undefined,
        ),
        { deadline },
      );
      const { doc, record } = startupReading(res);
      const stored = storedFrom(doc);
      this.#store.observe(stored, res.revision);
      const raw = record && textOf(record.value);
      const parsed = raw === undefined ? undefined : parseHolderRecord(raw);
      return {
        doc: this.#store.parse(stored),
        record: parsed,
        stored: { record: parsed, revision: record?.modRevision ?? 0 },
      };
    });
  }

  /** Joins at the back; see {@link SlotQueue.join}. */
  join(): Promise<QueueState> {
    return this.#store.operation(async (deadline) => {
      const lease = await this.#session.id();
      for (let attempt = 1; attempt <= 3; attempt++) {
        const value = formatWaiterValue(this.#id, this.#now().toISOString());
        const res = await this.#store.port.txn(
          joinRequest(this.#keys, bytes(value), lease),
          { deadline },
        );
        if (res.succeeded) {
          this.#joinedAt = res.revision;
          return await this.#apply(joinedReading(res), deadline) ??
            await this.#refreshNow(deadline);
        }
        const existing = existingEntry(res);
        if (existing === undefined) continue;
        if (existing.lease === lease) {
          // A hedged copy of our own join committed first: it is ours.
          this.#joinedAt = existing.createRevision;
          return await this.#refreshNow(deadline);
        }
        // An entry left by an earlier run of this machine: remove it (only
        // that one), then join at the back.
        await this.#store.port.txn(removeRequest([existing]), { deadline });
      }
      throw new Error(`could not join the wait queue of ${this.#store.key}`);
    });
  }

  /** Reads the document and the queue again; see {@link SlotQueue.refresh}. */
  refresh(): Promise<QueueState> {
    this.#refreshing ??= this.#store.operation((d) => this.#refreshNow(d))
      .finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #refreshNow(deadline: number): Promise<QueueState> {
    for (let round = 1;; round++) {
      const res = await this.#store.port.txn(
        readRequest(this.#keys, this.#joinedAt),
        { deadline },
      );
      const state = await this.#apply(readReading(res), deadline);
      if (state !== undefined) return state;
      if (round >= 5) {
        throw new Error(`the wait queue of ${this.#store.key} keeps changing`);
      }
    }
  }

  /**
   * Takes in a consistent reading: remembers the document, removes junk
   * (then returns `undefined`: read again), places this machine and sets up
   * the watch for its place. Requests go out by `deadline`, the operation's.
   */
  async #apply(
    reading: QueueSnapshot,
    deadline: number,
  ): Promise<QueueState | undefined> {
    const before = this.#store.revision;
    this.#store.observe(storedFrom(reading.doc), reading.revision);
    this.#store.observeSettings(reading.settings, reading.revision);
    const placement = this.#joinedAt === undefined
      ? { place: "out" as const }
      : placeOf(this.#prefix, reading, this.#joinedAt);
    if (placement.place === "junk") {
      for (const kv of placement.junk) {
        this.#log(
          `removing an entry that cannot be a waiter from the queue: ${
            describeJunk(kv)
          }`,
        );
      }
      await this.#store.port.txn(removeRequest(placement.junk), { deadline });
      return undefined;
    }
    if (placement.place === "out") {
      this.#out();
    } else {
      if (await this.#removeOwnerless(placement.ownerless, deadline)) {
        return undefined;
      }
      this.#placement = placement;
      this.#ahead = placement.position ??
        Math.max(FRONT, reading.count - 1);
      this.#watches.ensure(
        placement,
        reading.revision,
        this.#store.revision > before,
      );
    }
    this.#wakeup.lost(false);
    this.#wakeup.changed();
    return this.state();
  }

  /**
   * Entries without a lease ahead are passed over; those seen for the
   * grace period are removed (each only if unchanged since read). Returns
   * whether any was removed (read again), and arranges a re-read when the
   * next one is due.
   */
  async #removeOwnerless(
    ownerless: readonly WaiterEntry[],
    deadline: number,
  ): Promise<boolean> {
    const { due, nextInMs } = this.#ownerless.note(ownerless);
    clearTimeout(this.#graceTimer);
    if (nextInMs !== undefined) {
      this.#graceTimer = setTimeout(() => this.#rereadInBackground(), nextInMs);
      Deno.unrefTimer(this.#graceTimer);
    }
    if (due.length === 0) return false;
    const res = await this.#store.port.txn(removeRequest(due), { deadline });
    for (const line of this.#ownerless.removed(due, res)) this.#log(line);
    return true;
  }

  #onDocEvents(events: readonly WatchEvent[]): void {
    this.#onFrontEntries(events);
    for (const e of events) {
      if (sameBytes(e.kv.key, this.#keys.settings)) {
        this.#store.observeSettings(
          e.type === "PUT" ? e.kv : undefined,
          e.kv.modRevision,
        );
      }
      if (!sameBytes(e.kv.key, this.#keys.doc)) continue;
      // A deletion leaves the key absent (revision 0, what a guard compares
      // with), seen at the deletion's revision.
      this.#store.observe(
        e.type === "PUT" ? storedFrom(e.kv) : storedFrom(undefined),
        e.kv.modRevision,
      );
    }
    this.#wakeup.changed();
  }

  /**
   * At the front, the queue's own events: this machine's entry deleted
   * (removed from the queue: out, join again), an entry ahead deleted (one
   * fewer ahead), an entry ahead written again (read again).
   */
  #onFrontEntries(events: readonly WatchEvent[]): void {
    const p = this.#placement;
    if (p.place === "out" || p.place === "junk" || !p.front) return;
    const after = frontAfter(p, events, this.#keys, this.#joinedAt ?? 0);
    if (after === "out") {
      if (this.#taking) return; // the take deletes the entry: not news
      this.#log("this machine's entry was removed from the wait queue");
      this.#out();
      this.#wakeup.changed();
    } else if (after === "reread") {
      this.#rereadInBackground();
    } else {
      this.#placement = after;
    }
  }

  #onEntryEvents(events: readonly WatchEvent[]): void {
    const p = this.#placement;
    if (p.place === "out" || p.place === "junk" || p.front) return;
    if (events.some((e) => e.type === "DELETE")) {
      // A waiter ahead left: read the queue again (this one may be at the
      // front now).
      this.#rereadInBackground();
    }
  }

  #rereadInBackground(): void {
    this.refresh().catch((error) => {
      this.#log(`cannot read the queue again: ${oneLine(error)}`);
      this.#wakeup.lost(true);
    });
  }

  #out(): void {
    clearTimeout(this.#graceTimer);
    this.#joinedAt = undefined;
    this.#placement = { place: "out" };
    this.#watches.cancel();
  }

  /** Takes a slot and leaves the queue; see {@link SlotQueue.take}. */
  async take(options: TakeOptions): Promise<UpdateOutcome> {
    const p = this.#placement;
    const companions: Companion[] = [];
    if (this.#joinedAt !== undefined) {
      companions.push({
        delete: waiterKey(this.#store.key, this.#id),
        ifCreatedAt: this.#joinedAt,
      });
    }
    if (options.evictHead && (p.place === "second" || p.place === "behind")) {
      // The waiters ahead left a free slot untaken: remove each (only the
      // entry read, not one its machine wrote since).
      for (const w of p.front ? p.ahead : []) {
        companions.push({
          delete: lossyText(w.key),
          ifCreatedAt: w.createRevision,
        });
      }
    }
    // The take ends the waiting either way: its watches stop first, so
    // that etcd does not send this machine its own take (one watch message
    // fewer per grant). A take that fails reads the queue again.
    this.#watches.cancel();
    this.#taking = true;
    try {
      const outcome = await lockSlot(this.#store, this.#id, {
        record: options.record,
        companions,
        maxAttempts: 1,
      });
      this.#out();
      return outcome;
    } catch (error) {
      this.#wakeup.lost(true);
      throw error;
    } finally {
      this.#taking = false;
    }
  }

  /** Leaves the queue; see {@link SlotQueue.leave}. */
  leave(): Promise<void> {
    const joinedAt = this.#joinedAt;
    this.#out();
    if (joinedAt === undefined) return Promise.resolve();
    return this.#store.operation(async (deadline) => {
      const res = await this.#store.port.txn(
        leaveRequest(this.#keys, joinedAt),
        { deadline },
      );
      this.#store.observe(storedFrom(leftDocument(res)), res.revision);
      this.#wakeup.changed();
    });
  }

  /** Waits for a change that matters; see {@link SlotQueue.waitForChange}. */
  waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<WaitResult> {
    return this.#wakeup.wait(timeoutMs, signal);
  }

  /** Stops watching; when queued, revokes the lease (deleting the entry at once). */
  async close(): Promise<void> {
    this.#unsubscribe();
    // Queued: revoking the lease deletes the entry at once. Not queued (the
    // entry went with the take): nothing to delete, no request to send.
    const queued = this.#joinedAt !== undefined;
    this.#out();
    this.#wakeup.release();
    await this.#session.close(queued);
  }
}
