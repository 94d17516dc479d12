/**
 * Reading the reboot history of one or several semaphores: per semaphore,
 * its document (for the current holders) and its history keys, many
 * semaphores per read-only transaction. An entry that does not parse is
 * skipped and named in the result, never an error.
 *
 * @module
 */

import { groupOfKey } from "../../semaphore/keys.ts";
import {
  type GroupHistory,
  type HistoryEntry,
  type HistoryEvent,
  historyPrefix,
  parseHistoryEntry,
} from "../../semaphore/history.ts";
import { parseSemaphore } from "../../semaphore/document.ts";
import {
  bytes,
  type KeyValue,
  prefixEnd,
  rangeOf,
  textOf,
} from "../client/port.ts";
import type { EtcdLockStore } from "./etcd_lock_store.ts";

/** Semaphores read per transaction (two operations each; etcd allows 128). */
const PER_TXN = 50;

/** Entries parsed before, by key-value (a watch keeps the same objects until they change). */
const PARSED = new WeakMap<KeyValue, HistoryEvent[] | null>();

function eventsOf(kv: KeyValue): HistoryEvent[] | undefined {
  let events = PARSED.get(kv);
  if (events === undefined) {
    const text = textOf(kv.value);
    events = (text === undefined ? undefined : parseHistoryEntry(text)) ?? null;
    PARSED.set(kv, events);
  }
  return events ?? undefined;
}

/** The history of the semaphore at `key` from its document's and its history's key-values. */
export function groupHistoryFrom(
  key: string,
  doc: KeyValue | undefined,
  history: readonly KeyValue[],
): GroupHistory {
  const entries: HistoryEntry[] = [];
  const skipped: string[] = [];
  for (const kv of history) {
    const events = eventsOf(kv);
    if (events === undefined) {
      skipped.push(textOf(kv.key) ?? "(a key that is not UTF-8)");
    } else entries.push({ events, revision: kv.modRevision });
  }
  let holders: readonly string[] | undefined;
  try {
    const raw = doc === undefined ? undefined : textOf(doc.value);
    holders = doc === undefined
      ? []
      : raw === undefined
      ? undefined
      : parseSemaphore(raw, key).holders;
  } catch {
    holders = undefined; // a corrupt document: status says so
  }
  return {
    group: groupOfKey(key) ?? key,
    key,
    events: entries.sort((a, b) => a.revision - b.revision)
      .flatMap((e) => e.events),
    holders,
    skipped,
  };
}

/** Reads the histories of the semaphores at `keys`, in that order. */
export function readHistories(
  store: EtcdLockStore,
  keys: readonly string[],
): Promise<GroupHistory[]> {
  return store.operation(async (deadline) => {
    const out: GroupHistory[] = [];
    for (let i = 0; i < keys.length; i += PER_TXN) {
      const chunk = keys.slice(i, i + PER_TXN);
      const res = await store.port.txn({
        compare: [],
        success: chunk.flatMap((key) => {
          const prefix = bytes(historyPrefix(key));
          return [
            { range: { key: bytes(key) } },
            { range: { key: prefix, rangeEnd: prefixEnd(prefix) } },
          ];
        }),
        failure: [],
      }, { deadline });
      chunk.forEach((key, j) => {
        const doc = rangeOf(res.responses[2 * j])?.kvs[0];
        const history = rangeOf(res.responses[2 * j + 1])?.kvs ?? [];
        out.push(groupHistoryFrom(key, doc, history));
      });
    }
    return out;
  });
}
