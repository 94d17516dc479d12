/**
 * The requests of the wait queue: joining (one guarded Txn that writes the
 * entry and reads the document and the front of the queue), reading it
 * again, and reading at start; and their answers as a {@link QueueReading}.
 *
 * @module
 */

import { PREDECESSORS_READ, type QueueReading } from "./queue_place.ts";
import {
  type KeyValue,
  rangeOf,
  type RangeRequest,
  type TxnOp,
  type TxnRequest,
  type TxnResult,
} from "../client/port.ts";

/** The keys one machine's queue requests are about. */
export interface QueueKeys {
  /** The semaphore document's key. */
  readonly doc: Uint8Array;
  /** The queue's prefix (`<key>/waiters/`). */
  readonly prefix: Uint8Array;
  /** The end of the queue's range. */
  readonly prefixEnd: Uint8Array;
  /** This machine's entry. */
  readonly mine: Uint8Array;
  /** The settings stored with the semaphore (slot TTL). */
  readonly settings: Uint8Array;
}

/** A consistent reading, with the document and the revision it was made at. */
export interface QueueSnapshot extends QueueReading {
  /** The document's key-value, if the key exists. */
  readonly doc: KeyValue | undefined;
  /** The revision of the reading: watches continue right after it. */
  readonly revision: number;
  /** The settings key-value, if the key exists. */
  readonly settings: KeyValue | undefined;
}

function ranges(keys: QueueKeys, joinedAt: number | undefined): TxnOp[] {
  const queue = { key: keys.prefix, rangeEnd: keys.prefixEnd };
  const ops: RangeRequest[] = [{ key: keys.doc }, {
    ...queue,
    countOnly: true,
  }];
  if (joinedAt !== undefined) {
    const ahead = { ...queue, maxCreateRevision: joinedAt - 1 };
    ops.push(
      { key: keys.mine },
      {
        ...ahead,
        sortTarget: "CREATE",
        sortOrder: "DESCEND",
        limit: PREDECESSORS_READ,
      },
      // Every entry ahead, keys only: how many are ahead (etcd's count
      // ignores the revision filter, so it would count later joiners).
      { ...ahead, keysOnly: true },
    );
  }
  return ops.map((range) => ({ range }));
}

/**
 * Joining: writes this machine's entry (attached to `lease`) if it has
 * none, and reads in the same Txn; otherwise reads the entry there.
 */
export function joinRequest(
  keys: QueueKeys,
  value: Uint8Array,
  lease: string,
): TxnRequest {
  const queue = { key: keys.prefix, rangeEnd: keys.prefixEnd };
  return {
    compare: [{ key: keys.mine, target: "VERSION", result: "EQUAL", value: 0 }],
    success: [
      { put: { key: keys.mine, value, lease } },
      ...ranges(keys, undefined),
      // The newest entries: this one, and those that joined just before it.
      {
        range: {
          ...queue,
          sortTarget: "CREATE",
          sortOrder: "DESCEND",
          limit: PREDECESSORS_READ + 1,
        },
      },
      { range: { key: keys.settings } },
    ],
    failure: [{ range: { key: keys.mine } }],
  };
}

/** The reading in a successful {@link joinRequest}'s answer. */
export function joinedReading(res: TxnResult): QueueSnapshot {
  const [, doc, count, newest, settings] = res.responses.map(rangeOf);
  return {
    doc: doc?.kvs[0],
    first: [],
    predecessors: newest?.kvs.slice(1) ?? [],
    mine: newest?.kvs[0],
    count: count?.count ?? 1,
    revision: res.revision,
    settings: settings?.kvs[0],
  };
}

/** The entry found by a failed {@link joinRequest}. */
export function existingEntry(res: TxnResult): KeyValue | undefined {
  return rangeOf(res.responses[0])?.kvs[0];
}

/** Reading the queue again, as the machine whose entry was created at `joinedAt` (if queued). */
export function readRequest(
  keys: QueueKeys,
  joinedAt: number | undefined,
): TxnRequest {
  return {
    compare: [],
    success: [...ranges(keys, joinedAt), { range: { key: keys.settings } }],
    failure: [],
  };
}

/** The reading in a {@link readRequest}'s answer. */
export function readReading(res: TxnResult): QueueSnapshot {
  const ranges = res.responses.map(rangeOf);
  const [doc, count] = ranges;
  const queued = ranges.length > 3;
  return {
    doc: doc?.kvs[0],
    first: [],
    predecessors: (queued ? ranges[3]?.kvs : undefined) ?? [],
    mine: queued ? ranges[2]?.kvs[0] : undefined,
    before: queued ? ranges[4]?.kvs ?? [] : undefined,
    count: count?.count ?? 0,
    revision: res.revision,
    settings: ranges.at(-1)?.kvs[0],
  };
}

/** Deletes each of `kvs` only if it is still at the revision read (junk removal). */
export function removeRequest(kvs: readonly KeyValue[]): TxnRequest {
  return {
    compare: [],
    success: kvs.map((kv) => ({
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
  };
}

/** Leaving: deletes this machine's entry created at `joinedAt` (not a newer one), and reads the document. */
export function leaveRequest(keys: QueueKeys, joinedAt: number): TxnRequest {
  return {
    compare: [],
    success: [
      {
        txn: {
          compare: [{
            key: keys.mine,
            target: "CREATE",
            result: "EQUAL",
            value: joinedAt,
          }],
          success: [{ deleteRange: { key: keys.mine } }],
          failure: [],
        },
      },
      { range: { key: keys.doc } },
    ],
    failure: [],
  };
}

/** The document in a {@link leaveRequest}'s answer. */
export function leftDocument(res: TxnResult): KeyValue | undefined {
  return rangeOf(res.responses[1])?.kvs[0];
}

/**
 * At start: reads the document and this machine's holder record, and
 * deletes an entry this machine left in the queue before a restart.
 */
export function startupRequest(
  keys: QueueKeys,
  record: Uint8Array,
  clearStale: boolean,
): TxnRequest {
  return {
    compare: [],
    success: [
      { range: { key: keys.doc } },
      { range: { key: record } },
      ...(clearStale ? [{ deleteRange: { key: keys.mine } }] : []),
    ],
    failure: [],
  };
}

/** The document and the record in a {@link startupRequest}'s answer. */
export function startupReading(
  res: TxnResult,
): { doc: KeyValue | undefined; record: KeyValue | undefined } {
  const [doc, record] = res.responses.map(rangeOf);
  return { doc: doc?.kvs[0], record: record?.kvs[0] };
}
