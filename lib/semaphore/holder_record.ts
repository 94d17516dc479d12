/**
 * Holder records: what is known about each slot's holder, stored beside the
 * document at `<key>/holders/<id>` (the document keeps the original's
 * format). Written in the same transaction as the lock, deleted with the
 * unlock. A record with a `lease` says that its holder renews the slot: the
 * holder's alive key (`<key>/alive/<id>`) is attached to that etcd lease,
 * and a holder whose alive key is gone (its lease expired) is stale. Pure.
 *
 * @module
 */

import { idDefect } from "../common/machine_id.ts";
import { jsonObject } from "./document.ts";

/** Who took a slot, when, and on which boot. */
export interface HolderRecord {
  /** The holder id. */
  readonly id: string;
  /** When the slot was taken (ISO 8601). */
  readonly since: string;
  /** What took it: `locksmithd`, `locksmithctl`, `fleetlock`. */
  readonly by: string;
  /** The holder's boot id (`/proc/sys/kernel/random/boot_id`) when it took the slot, if known. */
  readonly boot?: string | undefined;
  /** The etcd lease (decimal id) of the holder's alive key, when the holder renews its slot. */
  readonly lease?: string | undefined;
  /** The lease's TTL in seconds, as granted (for the operator's view). */
  readonly ttl?: number | undefined;
}

/** The stored text of a record. */
export function formatHolderRecord(record: HolderRecord): string {
  return JSON.stringify({
    id: record.id,
    since: record.since,
    by: record.by,
    ...(record.boot === undefined ? {} : { boot: record.boot }),
    ...(record.lease === undefined ? {} : { lease: record.lease }),
    ...(record.ttl === undefined ? {} : { ttl: record.ttl }),
  });
}

/** Parses a stored record; `undefined` when it is not one (a record is advisory: never an error). */
export function parseHolderRecord(raw: string): HolderRecord | undefined {
  const r = jsonObject(raw);
  if (typeof r === "string") return undefined;
  if (idDefect(r.id) !== undefined) return undefined;
  if (typeof r.since !== "string" || Number.isNaN(Date.parse(r.since))) {
    return undefined;
  }
  if (typeof r.by !== "string") return undefined;
  if (r.boot !== undefined && typeof r.boot !== "string") return undefined;
  if (
    r.lease !== undefined &&
    (typeof r.lease !== "string" || !/^[1-9]\d{0,19}$/.test(r.lease))
  ) return undefined;
  if (
    r.ttl !== undefined &&
    (typeof r.ttl !== "number" || !Number.isSafeInteger(r.ttl) || r.ttl <= 0)
  ) return undefined;
  return {
    id: r.id as string,
    since: r.since,
    by: r.by,
    ...(typeof r.boot === "string" ? { boot: r.boot } : {}),
    ...(typeof r.lease === "string" ? { lease: r.lease } : {}),
    ...(typeof r.ttl === "number" ? { ttl: r.ttl } : {}),
  };
}
