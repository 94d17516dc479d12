/**
 * The wait queue's entries as stored: `<key>/waiters/<escaped id>` with the
 * value `{"id": <id>, "since": <ISO time>}`; the bare id, as older versions
 * wrote, is accepted too. Anything else under the prefix cannot be a
 * waiter: it is junk, and is removed by its own key. Pure.
 *
 * @module
 */

import { idOfCompanionKey } from "../../semaphore/keys.ts";
import { type KeyValue, lossyText, textOf } from "../client/port.ts";

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
  /** The lease it is attached to; `"0"` for none. */
  readonly lease: string;
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
    lease: kv.lease,
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

/** A one-line description of a junk entry, for the log. */
export function describeJunk(kv: KeyValue): string {
  const key = lossyText(kv.key);
  const value = lossyText(kv.value);
  return `${JSON.stringify(key)} = ${JSON.stringify(value.slice(0, 80))}`;
}
