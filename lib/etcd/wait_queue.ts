/**
 * The FIFO wait queue under a semaphore in etcd, for one machine: the
 * {@link SlotQueue} that locksmithd uses.
 *
 * Entries are `<key>/waiters/<escaped id>`, attached to the machine's lease
 * (`LeaseSession`), ordered by their create revision. Joining is one Txn
 * that also reads the document and the front of the queue. A waiter is
 * woken only by what can change its turn:
 *
 * - the head (first in line) watches the document (and its companion keys);
 * - the second watches the document and the head's entry: when the head
 *   leaves, it is the head; when a slot stays free for the hand-over time
 *   while the head does nothing, it takes the slot and removes the head;
 * - every other waiter watches only the entry ahead of it, and reads the
 *   queue again when that entry leaves or announces that it became the head.
 *
 * So a grant wakes O(1) waiters, whatever the length of the queue. Every
 * watch starts right after the read it continues, is kept on two members
 * when possible (`HedgedWatch`), and a lost or compacted watch is replaced
 * after a fresh read.
 *
 * @module
 */

import { oneLine } from "../common/errors.ts";
import type { Semaphore } from "../semaphore/document.ts";
import {
  type HolderRecord,
  parseHolderRecord,
} from "../semaphore/holder_record.ts";
import {
  holderRecordKey,
  waiterKey,
  waitersPrefix,
} from "../semaphore/keys.ts";
import {
  type Companion,
  lockSlot,
  type UpdateOutcome,
} from "../semaphore/lock_store.ts";
import type {
  QueuePlace,
  QueueState,
  SlotQueue,
  TakeOptions,
  WaitResult,
} from "../semaphore/slot_queue.ts";
import { type EtcdLockStore, storedFrom } from "./etcd_lock_store.ts";
import { HedgedWatch } from "./hedged_watch.ts";
import type { LeaseSession } from "./lease_session.ts";
import {
  bytes,
  type KeyValue,
  type RangeRequest,
  textOf,
  type TxnOpResult,
  type WatchEvent,
} from "./port.ts";
import {
  describeJunk,
  formatWaiterValue,
  type Placement,
  placeOf,
  type QueueReading,
} from "./queue_place.ts";

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
}

function rangeOf(result: TxnOpResult | undefined) {
  return result !== undefined && "range" in result ? result.range : undefined;
}

/** The etcd {@link SlotQueue}; see the module documentation. */
export class EtcdWaitQueue implements SlotQueue {
  readonly #store: EtcdLockStore;
  readonly #id: string;
  readonly #session: LeaseSession;
  readonly #now: () => Date;
  readonly #log: (line: string) => void;
  readonly #prefix: string;
  readonly #prefixBytes: Uint8Array;
  readonly #prefixEnd: Uint8Array;
  readonly #docKey: Uint8Array;
  readonly #myKey: Uint8Array;
  #joinedAt: number | undefined;
  #placement: Placement = { place: "out" };
  #ahead = 0;
  #watch: HedgedWatch | undefined;
  #watchKey = "";
  #lost = false;
  #announced = false;
  #version = 0;
  #seen = 0;
  #refreshing: Promise<QueueState> | undefined;
  readonly #wakers = new Set<(lost: boolean) => void>();
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
    this.#prefix = waitersPrefix(store.key);
    this.#prefixBytes = bytes(this.#prefix);
    // "0" follows "/": the end of every key under the prefix.
    this.#prefixEnd = bytes(`${store.key}/waiters0`);
    this.#docKey = bytes(store.key);
    this.#myKey = bytes(waiterKey(store.key, options.id));
    this.#unsubscribe = this.#session.onExpired(() => {
      this.#log(
        `this machine's queue entry expired with its lease; joining again`,
      );
      this.#out();
      this.#changed();
    });
  }

  /** The current state without I/O; see {@link SlotQueue.state}. */
  state(): QueueState {
    this.#seen = this.#version;
    const p = this.#placement;
    const place: QueuePlace = p.place === "junk" ? "behind" : p.place;
    return {
      place,
      doc: this.#store.peek(),
      headId: p.place === "second" ? p.head.id : undefined,
      ahead: place === "head" ? 0 : place === "second" ? 1 : this.#ahead,
    };
  }

  #frontRanges(): RangeRequest[] {
    return [
      {
        key: this.#prefixBytes,
        rangeEnd: this.#prefixEnd,
        sortTarget: "CREATE",
        sortOrder: "ASCEND",
        limit: 2,
      },
      { key: this.#prefixBytes, rangeEnd: this.#prefixEnd, countOnly: true },
    ];
  }

  /** Reads the document and this machine's record, clearing a stale entry; see {@link SlotQueue.startupRead}. */
  startupRead(): Promise<{ doc: Semaphore; record: HolderRecord | undefined }> {
    return this.#store.operation(async (deadline) => {
      const recordKey = bytes(holderRecordKey(this.#store.key, this.#id));
      const res = await this.#store.port.txn({
        compare: [],
        success: [
          { range: { key: this.#docKey } },
          { range: { key: recordKey } },
          ...(this.#joinedAt === undefined
            ? [{ deleteRange: { key: this.#myKey } }]
            : []),
        ],
        failure: [],
      }, { deadline });
      const [doc, record] = res.responses.map(rangeOf);
      const stored = this.#store.observe(storedFrom(doc?.kvs[0]));
      const raw = record?.kvs[0] && textOf(record.kvs[0].value);
      return {
        doc: this.#store.parse(stored),
        record: raw === undefined ? undefined : parseHolderRecord(raw),
      };
    });
  }

  /** Joins at the back; see {@link SlotQueue.join}. */
  join(): Promise<QueueState> {
    return this.#store.operation(async (deadline) => {
      const lease = await this.#session.id();
      for (let attempt = 1; attempt <= 3; attempt++) {
        const value = formatWaiterValue(this.#id, this.#now().toISOString());
        const res = await this.#store.port.txn({
          compare: [{
            key: this.#myKey,
            target: "VERSION",
            result: "EQUAL",
            value: 0,
          }],
          success: [
            { put: { key: this.#myKey, value: bytes(value), lease } },
            { range: { key: this.#docKey } },
            ...this.#frontRanges().map((range) => ({ range })),
            {
              range: {
                key: this.#prefixBytes,
                rangeEnd: this.#prefixEnd,
                sortTarget: "CREATE",
                sortOrder: "DESCEND",
                limit: 2,
              },
            },
          ],
          failure: [{ range: { key: this.#myKey } }],
        }, { deadline });
        if (res.succeeded) {
          const [, doc, first, count, last] = res.responses.map(rangeOf);
          this.#joinedAt = res.revision;
          this.#announced = false;
          const state = await this.#apply({
            doc: doc?.kvs[0],
            first: first?.kvs ?? [],
            predecessor: last?.kvs[1],
            mine: last?.kvs[0],
            count: count?.count ?? 1,
          }, res.revision);
          return state ?? await this.#refreshNow();
        }
        const existing = rangeOf(res.responses[0])?.kvs[0];
        if (existing === undefined) continue;
        if (existing.lease === lease) {
          // A hedged copy of our own join committed first: it is ours.
          this.#joinedAt = existing.createRevision;
          return await this.#refreshNow();
        }
        // An entry left by an earlier run of this machine: remove it (only
        // that one), then join at the back.
        await this.#store.port.txn({
          compare: [{
            key: this.#myKey,
            target: "MOD",
            result: "EQUAL",
            value: existing.modRevision,
          }],
          success: [{ deleteRange: { key: this.#myKey } }],
          failure: [],
        }, { deadline });
      }
      throw new Error(`could not join the wait queue of ${this.#store.key}`);
    });
  }

  /** Reads the document and the queue again; see {@link SlotQueue.refresh}. */
  refresh(): Promise<QueueState> {
    this.#refreshing ??= this.#store.operation(() => this.#refreshNow())
      .finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #refreshNow(): Promise<QueueState> {
    for (let round = 1;; round++) {
      const deadline = Date.now() + this.#store.timeoutMs;
      const joinedAt = this.#joinedAt;
      const res = await this.#store.port.txn({
        compare: [],
        success: [
          { range: { key: this.#docKey } },
          ...this.#frontRanges().map((range) => ({ range })),
          ...(joinedAt === undefined ? [] : [
            { range: { key: this.#myKey } },
            {
              range: {
                key: this.#prefixBytes,
                rangeEnd: this.#prefixEnd,
                sortTarget: "CREATE" as const,
                sortOrder: "DESCEND" as const,
                limit: 1,
                maxCreateRevision: joinedAt - 1,
              },
            },
          ]),
        ],
        failure: [],
      }, { deadline });
      const [doc, first, count, mine, predecessor] = res.responses.map(
        rangeOf,
      );
      const state = await this.#apply(
        {
          doc: doc?.kvs[0],
          first: first?.kvs ?? [],
          predecessor: predecessor?.kvs[0],
          mine: mine?.kvs[0],
          count: count?.count ?? 0,
        },
        res.revision,
        round,
      );
      if (state !== undefined) return state;
    }
  }

  /**
   * Takes in a consistent reading made at `revision`: remembers the
   * document, removes junk (then returns `undefined`: read again), places
   * this machine and sets up the watch for its place.
   */
  async #apply(
    reading: QueueReading & { doc: KeyValue | undefined },
    revision: number,
    round = 1,
  ): Promise<QueueState | undefined> {
    const before = this.#store.revision;
    this.#store.observe(storedFrom(reading.doc));
    const placement = this.#joinedAt === undefined
      ? { place: "out" as const }
      : placeOf(this.#prefix, reading, this.#joinedAt);
    if (placement.place === "junk") {
      await this.#removeJunk(placement.junk);
      if (round >= 5) {
        throw new Error(`the wait queue of ${this.#store.key} keeps changing`);
      }
      return undefined;
    }
    if (placement.place === "out") {
      this.#out();
    } else {
      this.#joinedAt ??= reading.mine?.createRevision;
      this.#placement = placement;
      this.#ahead = Math.max(
        placement.place === "behind" ? 2 : 0,
        reading.count - 1,
      );
      this.#ensureWatch(revision, this.#store.revision > before);
    }
    this.#lost = false;
    this.#changed();
    if (this.#placement.place === "head") await this.#announce();
    return this.state();
  }

  async #removeJunk(junk: readonly KeyValue[]): Promise<void> {
    for (const kv of junk) {
      this.#log(
        `removing an entry that cannot be a waiter from the queue: ${
          describeJunk(kv)
        }`,
      );
    }
    await this.#store.port.txn({
      compare: [],
      success: junk.map((kv) => ({
        txn: {
          compare: [{
            key: kv.key,
            target: "MOD" as const,
            result: "EQUAL" as const,
            value: kv.modRevision,
          }],
          success: [{ deleteRange: { key: kv.key } }],
          failure: [],
        },
      })),
      failure: [],
    }, { deadline: Date.now() + this.#store.timeoutMs });
  }

  /** As head with no free slot, tells the waiter behind (it then watches the document too). */
  async #announce(): Promise<void> {
    const doc = this.#store.peek();
    if (this.#announced || this.#joinedAt === undefined) return;
    if (doc !== undefined && doc.semaphore > 0) return; // about to take a slot
    this.#announced = true;
    try {
      const lease = await this.#session.id();
      await this.#store.port.txn({
        compare: [{
          key: this.#myKey,
          target: "CREATE",
          result: "EQUAL",
          value: this.#joinedAt,
        }],
        success: [{
          put: {
            key: this.#myKey,
            value: bytes(
              formatWaiterValue(this.#id, this.#now().toISOString(), true),
            ),
            lease,
          },
        }],
        failure: [],
      }, { deadline: Date.now() + this.#store.timeoutMs });
    } catch (error) {
      this.#announced = false;
      this.#log(`cannot announce this machine as head: ${oneLine(error)}`);
    }
  }

  /** Sets up the watch for the current place from `revision` on, unless the same one runs. */
  #ensureWatch(revision: number, docMoved: boolean): void {
    const p = this.#placement;
    const docRange = { key: this.#docKey, rangeEnd: this.#prefixBytes };
    const requests = p.place === "head"
      ? [docRange]
      : p.place === "second"
      ? [docRange, { key: p.head.key }]
      : p.place === "behind"
      ? [{ key: p.predecessor.key }]
      : [];
    const key = `${p.place}:${
      p.place === "second"
        ? p.head.createRevision
        : p.place === "behind"
        ? p.predecessor.createRevision
        : 0
    }`;
    // A head that just became head (its second-place watch covers the
    // document already) keeps its watch; so does an unchanged place, unless
    // the read showed a document the watch had not delivered.
    const same = key === this.#watchKey ||
      (p.place === "head" && this.#watchKey.startsWith("second:"));
    if (this.#watch?.live && same && !docMoved) return;
    this.#watch?.cancel();
    this.#watch = undefined;
    this.#watchKey = key;
    if (requests.length === 0) return;
    this.#watch = new HedgedWatch(
      this.#store.port,
      requests.map((r) => ({ ...r, startRevision: revision + 1 })),
      {
        onEvents: (index, events) => this.#onEvents(index, events),
        onLost: (reason) => {
          this.#watch = undefined;
          this.#watchKey = "";
          this.#lost = true;
          this.#log(`${reason}; reading the queue again`);
          for (const wake of this.#wakers) wake(true);
        },
      },
    );
  }

  #onEvents(index: number, events: readonly WatchEvent[]): void {
    const p = this.#placement;
    if ((p.place === "head" || p.place === "second") && index === 0) {
      for (const e of events) {
        if (e.kv.key.length !== this.#docKey.length) continue;
        if (e.kv.key.every((b, i) => b === this.#docKey[i])) {
          this.#store.observe(
            e.type === "PUT"
              ? storedFrom(e.kv)
              : { raw: undefined, revision: e.kv.modRevision, version: 0 },
          );
        }
      }
      this.#changed();
      if (p.place === "head") void this.#announce();
      return;
    }
    if (p.place === "second" && index === 1) {
      if (events.some((e) => e.type === "DELETE")) {
        // The head left: this machine is first in line now.
        this.#placement = { place: "head" };
        this.#watchKey = "head:0";
        this.#changed();
        void this.#announce();
      }
      return;
    }
    if (p.place === "behind") {
      // The waiter ahead left, or announced that it is the head.
      this.refresh().catch((error) => {
        this.#lost = true;
        this.#log(`cannot read the queue again: ${oneLine(error)}`);
        for (const wake of this.#wakers) wake(true);
      });
    }
  }

  #changed(): void {
    this.#version++;
    for (const wake of this.#wakers) wake(false);
  }

  #out(): void {
    this.#joinedAt = undefined;
    this.#placement = { place: "out" };
    this.#announced = false;
    this.#watch?.cancel();
    this.#watch = undefined;
    this.#watchKey = "";
  }

  #companions(options: TakeOptions): Companion[] {
    const p = this.#placement;
    const leave: Companion[] = this.#joinedAt === undefined ? [] : [{
      delete: waiterKey(this.#store.key, this.#id),
      ifCreatedAt: this.#joinedAt,
    }];
    const evict: Companion[] = options.evictHead && p.place === "second"
      ? [{
        delete: new TextDecoder().decode(p.head.key),
        ifCreatedAt: p.head.createRevision,
      }]
      : [];
    return [...leave, ...evict];
  }

  /** Takes a slot and leaves the queue; see {@link SlotQueue.take}. */
  async take(options: TakeOptions): Promise<UpdateOutcome> {
    const outcome = await lockSlot(this.#store, this.#id, {
      record: options.record,
      companions: this.#companions(options),
      maxAttempts: 1,
    });
    this.#out();
    return outcome;
  }

  /** Leaves the queue; see {@link SlotQueue.leave}. */
  leave(): Promise<void> {
    const joinedAt = this.#joinedAt;
    this.#out();
    if (joinedAt === undefined) return Promise.resolve();
    return this.#store.operation(async (deadline) => {
      const res = await this.#store.port.txn({
        compare: [],
        success: [
          {
            txn: {
              compare: [{
                key: this.#myKey,
                target: "CREATE",
                result: "EQUAL",
                value: joinedAt,
              }],
              success: [{ deleteRange: { key: this.#myKey } }],
              failure: [],
            },
          },
          { range: { key: this.#docKey } },
        ],
        failure: [],
      }, { deadline });
      this.#store.observe(storedFrom(rangeOf(res.responses[1])?.kvs[0]));
      this.#changed();
    });
  }

  /** Waits for a change that matters; see {@link SlotQueue.waitForChange}. */
  waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<WaitResult> {
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

  /** Stops watching and revokes the lease (deleting the entry at once). */
  async close(): Promise<void> {
    this.#unsubscribe();
    this.#out();
    for (const wake of this.#wakers) wake(false);
    await this.#session.close();
  }
}
