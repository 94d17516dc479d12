/**
 * A stored document as etcd returns it, the stored settings' text, and the
 * transaction operations of companion writes: the pieces that the
 * compare-and-swap store, the wait queue, the slot lease, the admin and the
 * semaphore view share.
 *
 * @module
 */

import { CorruptDocumentError } from "../../common/errors.ts";
import {
  INITIAL_SEMAPHORE,
  parseSemaphore,
  type Semaphore,
} from "../../semaphore/document.ts";
import type { Companion } from "../../semaphore/lock_store.ts";
import { formatHistoryEntry } from "../../semaphore/history.ts";
import {
  bytes,
  type KeyValue,
  lossyText,
  textOf,
  type TxnOp,
} from "../client/port.ts";

/** The document as stored at one revision. */
export interface StoredDocument {
  /** The stored text; `undefined` when absent. */
  readonly raw: string | undefined;
  /** The key's `mod_revision`; `0` when absent. */
  readonly revision: number;
  /** The key's `version` (writes since creation); `0` when absent. */
  readonly version: number;
  /** The stored bytes are not valid UTF-8 (`raw` is then a lossy rendering). */
  readonly invalidUtf8?: boolean;
}

/** The stored document in a key-value (`undefined` for an absent key). */
export function storedFrom(kv: KeyValue | undefined): StoredDocument {
  if (kv === undefined) return { raw: undefined, revision: 0, version: 0 };
  const raw = textOf(kv.value);
  // Never parse a lossy rendering: U+FFFD in a holder id would be written
  // back as different bytes. The document is corrupt as stored.
  return raw === undefined
    ? {
      raw: lossyText(kv.value),
      revision: kv.modRevision,
      version: kv.version,
      invalidUtf8: true,
    }
    : { raw, revision: kv.modRevision, version: kv.version };
}

/**
 * The stored text of the settings key (`<key>/settings`), `undefined` when
 * absent. Bytes that are not valid UTF-8 read as `"\0"`, which does not
 * parse: such settings are corrupt, never a lossy rendering.
 */
export function settingsText(kv: KeyValue | undefined): string | undefined {
  return kv === undefined ? undefined : textOf(kv.value) ?? "\0";
}

/**
 * The transaction operations of companion writes. With `historyKey` (the
 * history slot of the version the change writes, see `historySlotKey`),
 * every history event of the change goes to that key in one put, and a
 * change without events clears it: the ring keeps the events of the last
 * changes only.
 */
export function companionOps(
  companions: readonly Companion[],
  historyKey?: string,
): TxnOp[] {
  const events = companions.flatMap((c) => "history" in c ? c.history : []);
  const history: TxnOp[] = historyKey === undefined ? [] : [
    events.length > 0
      ? {
        put: {
          key: bytes(historyKey),
          value: bytes(formatHistoryEntry(events)),
        },
      }
      : { deleteRange: { key: bytes(historyKey) } },
  ];
  return [
    ...companions.flatMap((c) => "history" in c ? [] : [c]).map((c): TxnOp => {
      if ("put" in c) {
        return {
          put: {
            key: bytes(c.put),
            value: bytes(c.value),
            ...(c.lease ? { lease: c.lease } : {}),
          },
        };
      }
      const del: TxnOp = { deleteRange: { key: bytes(c.delete) } };
      if (c.ifCreatedAt === undefined) return del;
      return {
        txn: {
          compare: [{
            key: bytes(c.delete),
            target: "CREATE",
            result: "EQUAL",
            value: c.ifCreatedAt,
          }],
          success: [del],
          failure: [],
        },
      };
    }),
    ...history,
  ];
}

/**
 * Parses the document stored at `key`: the initial document when absent;
 * throws {@link CorruptDocumentError} naming `key` when it does not parse.
 */
export function parseStored(stored: StoredDocument, key: string): Semaphore {
  if (stored.invalidUtf8) {
    throw new CorruptDocumentError(key, "not valid UTF-8", stored.raw ?? "");
  }
  return stored.raw === undefined
    ? INITIAL_SEMAPHORE
    : parseSemaphore(stored.raw, key);
}
