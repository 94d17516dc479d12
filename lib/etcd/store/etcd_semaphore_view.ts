/**
 * The whole state of one semaphore in one read-only transaction (the
 * document, holder records, alive keys, the pause, the settings and the
 * wait queue), and the reclaim of stale slots: one transaction that
 * removes holders whose lease expired, guarded by the document, each
 * record, and the absence of each alive key. So two reclaimers never both
 * reclaim, and a holder that renews (re-creating its alive key, rewriting
 * its record) before the reclaim commits is never reclaimed.
 *
 * @module
 */

import { storedText, unlock } from "../../semaphore/document.ts";
import {
  type HolderRecord,
  parseHolderRecord,
} from "../../semaphore/holder_record.ts";
import {
  aliveKey,
  alivePrefix,
  holderRecordKey,
  holdersPrefix,
  idOfCompanionKey,
  pausedKey,
  settingsKey,
  waitersPrefix,
} from "../../semaphore/keys.ts";
import {
  type HolderState,
  MAX_RECLAIMS_PER_TXN,
  type SemaphoreView,
  type WaiterState,
} from "../../semaphore/semaphore_view.ts";
import { parseSettings } from "../../semaphore/settings.ts";
import type { EtcdLockStore } from "./etcd_lock_store.ts";
import {
  bytes,
  type Compare,
  type KeyValue,
  prefixEnd,
  rangeOf,
  type RangeRequest,
  textOf,
  type TxnOp,
  type TxnOpResult,
} from "../client/port.ts";
import { waiterEntryFrom } from "./waiter_entry.ts";
import { ownWriteRevision } from "./own_write.ts";
import { companionOps, parseStored, storedFrom } from "./stored_document.ts";
import { type HistoryEvent, historySlotKey } from "../../semaphore/history.ts";

/** The history event of a slot reclaimed at `at` from the holder of `record`. */
function reclaimedEvent(
  id: string,
  at: string,
  record: HolderRecord | undefined,
): HistoryEvent {
  return {
    kind: "reclaimed",
    id,
    at,
    ...(record?.since === undefined ? {} : { since: record.since }),
    ...(record?.boot === undefined ? {} : { boot: record.boot }),
  };
}

/** Most waiters listed by a view (all of them are counted). */
export const MAX_LISTED_WAITERS = 1_000;

function prefixRange(prefix: string, extra: Partial<RangeRequest> = {}) {
  const key = bytes(prefix);
  return { range: { key, rangeEnd: prefixEnd(key), ...extra } };
}

/**
 * The read operations of a view of the semaphore at `key`, in the order
 * {@link viewFrom} takes; at most `listWaiters` waiters are listed (all
 * are counted).
 */
export function viewOps(
  key: string,
  listWaiters: number = MAX_LISTED_WAITERS,
): TxnOp[] {
  return [
    { range: { key: bytes(key) } },
    prefixRange(holdersPrefix(key)),
    prefixRange(alivePrefix(key), { keysOnly: true }),
    { range: { key: bytes(pausedKey(key)) } },
    { range: { key: bytes(settingsKey(key)) } },
    prefixRange(waitersPrefix(key), {
      sortTarget: "CREATE",
      sortOrder: "ASCEND",
      limit: listWaiters,
    }),
  ];
}

/** Number of operations of {@link viewOps}. */
export const VIEW_OPS = 6;

function idsUnder(
  prefix: string,
  kvs: readonly KeyValue[],
): Map<string, KeyValue> {
  const out = new Map<string, KeyValue>();
  for (const kv of kvs) {
    const key = textOf(kv.key);
    const id = key === undefined ? undefined : idOfCompanionKey(prefix, key);
    if (id !== undefined) out.set(id, kv);
  }
  return out;
}

/**
 * The view of the semaphore at `key` from the answers to {@link viewOps}
 * read at `revision`. Throws `CorruptDocumentError`, naming `key`, when the
 * document does not parse.
 */
export function viewFrom(
  key: string,
  results: readonly TxnOpResult[],
  revision: number,
): SemaphoreView {
  const [doc, records, alive, paused, settings, waiters] = results.map(
    rangeOf,
  );
  const stored = storedFrom(doc?.kvs[0]);
  const parsed = parseStored(stored, key);
  const recordKvs = idsUnder(holdersPrefix(key), records?.kvs ?? []);
  const aliveKvs = idsUnder(alivePrefix(key), alive?.kvs ?? []);
  const holders: HolderState[] = parsed.holders.map((id) => {
    const kv = recordKvs.get(id);
    const text = kv && textOf(kv.value);
    return {
      id,
      record: text === undefined ? undefined : parseHolderRecord(text),
      recordRevision: kv?.modRevision ?? 0,
      alive: aliveKvs.has(id),
    };
  });
  const pauseKv = paused?.kvs[0];
  let pausedSince: string | undefined;
  if (pauseKv) {
    try {
      const since = JSON.parse(textOf(pauseKv.value) ?? "").since;
      if (typeof since === "string") pausedSince = since;
    } catch {
      // A pause without a readable time is a pause all the same.
    }
  }
  const settingsKv = settings?.kvs[0];
  const prefix = waitersPrefix(key);
  const list: WaiterState[] = [];
  for (const kv of waiters?.kvs ?? []) {
    const entry = waiterEntryFrom(prefix, kv);
    if (entry) list.push({ id: entry.id, since: entry.since });
  }
  return {
    key,
    doc: parsed,
    raw: stored.raw,
    docRevision: stored.revision,
    docVersion: stored.version,
    revision,
    holders,
    paused: pauseKv !== undefined,
    pausedSince,
    settings: settingsKv !== undefined && textOf(settingsKv.value) === undefined
      ? { kind: "corrupt", defect: "not valid UTF-8" }
      : parseSettings(settingsKv && textOf(settingsKv.value)),
    waiters: list,
    waiting: waiters?.count ?? list.length,
  };
}

/** Reads the whole state of `store`'s semaphore in one read-only transaction. */
export function readSemaphoreView(
  store: EtcdLockStore,
): Promise<SemaphoreView> {
  return store.operation(async (deadline) => {
    const res = await store.port.txn({
      compare: [],
      success: viewOps(store.key),
      failure: [],
    }, { deadline });
    const view = viewFrom(store.key, res.responses, res.revision);
    store.observe(storedFrom(rangeOf(res.responses[0])?.kvs[0]), res.revision);
    return view;
  });
}

/**
 * Removes the holders `ids` of `view` (each one stale in it) in one
 * transaction, guarded by the document's and each record's revision and
 * by the absence of each alive key; deletes their records. Returns
 * whether it applied (`false`: something changed since `view`: read again).
 * At most {@link MAX_RECLAIMS_PER_TXN} ids.
 */
export function reclaimHolders(
  store: EtcdLockStore,
  view: SemaphoreView,
  ids: readonly string[],
  clock: () => Date = () => new Date(),
): Promise<boolean> {
  if (ids.length > MAX_RECLAIMS_PER_TXN) {
    return Promise.reject(
      new RangeError(
        `at most ${MAX_RECLAIMS_PER_TXN} holders are reclaimed at once, not ${ids.length}`,
      ),
    );
  }
  return store.operation(async (deadline) => {
    const key = store.key;
    let doc = view.doc;
    const compare: Compare[] = [{
      key: bytes(key),
      target: "MOD",
      result: "EQUAL",
      value: view.docRevision,
    }];
    const success: TxnOp[] = [];
    const events: HistoryEvent[] = [];
    const at = clock().toISOString();
    for (const id of ids) {
      const holder = view.holders.find((h) => h.id === id);
      if (holder === undefined) return false;
      doc = unlock(doc, id);
      events.push(reclaimedEvent(id, at, holder.record));
      compare.push({
        key: bytes(holderRecordKey(key, id)),
        target: "MOD",
        result: "EQUAL",
        value: holder.recordRevision,
      }, {
        key: bytes(aliveKey(key, id)),
        target: "VERSION",
        result: "EQUAL",
        value: 0,
      });
      success.push({ deleteRange: { key: bytes(holderRecordKey(key, id)) } });
    }
    const raw = storedText(doc, key);
    const res = await store.port.txn({
      compare,
      success: [
        { put: { key: bytes(key), value: bytes(raw) } },
        ...success,
        ...companionOps(
          [{ history: events }],
          historySlotKey(key, view.docVersion + 1),
        ),
      ],
      failure: [{ range: { key: bytes(key) } }],
    }, { deadline });
    const written = { raw, version: view.docVersion + 1 };
    if (res.succeeded) {
      store.observe({ ...written, revision: res.revision }, res.revision);
      return true;
    }
    // A copy of this Txn sent to another member may have committed first.
    // Racing reclaimers write the same bytes, so only a request that went
    // out more than once counts exactly our bytes, exactly one write after
    // the version read, as its own (even when later writes hide it).
    const now = storedFrom(rangeOf(res.responses[0])?.kvs[0]);
    store.observe(now, res.revision);
    return res.resent === true &&
      await ownWriteRevision(store.port, written, {
          key: bytes(key),
          name: key,
          guardRevision: view.docRevision,
          current: now,
          deadline,
        }) !== undefined;
  });
}
