/**
 * The wait queue's entries and where a waiter stands, computed from one
 * consistent read of the queue. Pure.
 *
 * An entry is `<key>/waiters/<escaped id>` with the value
 * `{"id": <id>, "since": <ISO time>}`; the bare id, as older versions
 * wrote, is accepted too. Anything else under the prefix cannot be a
 * waiter: it is junk, and is removed by its own key.
 *
 * @module
 */

import { idOfCompanionKey } from "../semaphore/keys.ts";
import { type KeyValue, lossyText, textOf } from "./port.ts";

/** A valid wait-queue entry. */
export interface WaiterEntry {
  /** The entry's key. */
  readonly key: Uint8Array;
  /** The waiter's id. */
  readonly id: string;
  /** When the waiter joined (from the value), if known. */
  readonly since: string | undefined;
  /** Revision of the join: the queue's order. */
  readonly createRevision: number;
  /** Revision of the last write. */
  readonly modRevision: number;
}

/** The value of an entry. */
export function formatWaiterValue(id: string, since: string): string {
  return JSON.stringify({ id, since });
}

/** The entry in `kv` under `prefix`, or `undefined` when it cannot be a waiter (junk). */
export function waiterEntryFrom(
  prefix: string,
  kv: KeyValue,
): WaiterEntry | undefined {
  const key = textOf(kv.key);
  if (key === undefined) return undefined;
  const id = idOfCompanionKey(prefix, key);
  if (id === undefined) return undefined;
  const value = textOf(kv.value);
  if (value === undefined) return undefined;
  const base = {
    key: kv.key,
    id,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
  };
  if (value === id) return { ...base, since: undefined };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const v = parsed as Record<string, unknown>;
  if (v.id !== id) return undefined;
  return { ...base, since: typeof v.since === "string" ? v.since : undefined };
}

/** One consistent read of the queue, as a waiter sees it. */
export interface QueueReading {
  /** The first two entries by join order (keys under the prefix, any kind). */
  readonly first: readonly KeyValue[];
  /** The (up to) two entries that joined last before this waiter, nearest first. */
  readonly predecessors: readonly KeyValue[];
  /** This waiter's entry as stored now, if any. */
  readonly mine: KeyValue | undefined;
  /** Entries in the queue (all of them, this waiter's included). */
  readonly count: number;
}

/** Where a waiter stands, or what must be cleaned first. */
export type Placement =
  | { readonly place: "out" }
  | { readonly place: "head" }
  | { readonly place: "second"; readonly head: WaiterEntry }
  | {
    readonly place: "behind";
    /** The entry just ahead, and the one ahead of it: when either leaves, the place may change. */
    readonly ahead: readonly WaiterEntry[];
  }
  | { readonly place: "junk"; readonly junk: readonly KeyValue[] };

/**
 * Where the waiter whose entry was created at `joinedAt` stands in
 * `reading` of the queue under `prefix`. Junk among the entries read comes
 * first: it must be removed and the queue read again.
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
  const [first, second] = reading.first.map((kv) =>
    waiterEntryFrom(prefix, kv)!
  );
  if (first === undefined || first.createRevision === joinedAt) {
    return { place: "head" };
  }
  if (second === undefined || second.createRevision === joinedAt) {
    return { place: "second", head: first };
  }
  const ahead = reading.predecessors.map((kv) => waiterEntryFrom(prefix, kv)!);
  if (ahead.length === 0) return { place: "second", head: first };
  return { place: "behind", ahead };
}

function dedupe(kvs: readonly KeyValue[]): KeyValue[] {
  const out = new Map<number, KeyValue>();
  for (const kv of kvs) out.set(kv.createRevision, kv);
  return [...out.values()];
}

/** A one-line description of a junk entry, for the log. */
export function describeJunk(kv: KeyValue): string {
  const key = lossyText(kv.key);
  const value = lossyText(kv.value);
  return `${JSON.stringify(key)} = ${JSON.stringify(value.slice(0, 80))}`;
}
