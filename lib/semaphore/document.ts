/**
 * The reboot semaphore: its document format and its pure operations.
 *
 * The document is stored as JSON: `{"semaphore": <available>, "max": <max>,
 * "holders": [<sorted ids>]}`. Every operation returns a new document and
 * never mutates its input; refusals throw {@link SemaphoreRefusedError}.
 *
 * @module
 */

import {
  CorruptDocumentError,
  quote,
  SemaphoreRefusedError,
  UsageError,
} from "../common/errors.ts";
import { idDefect } from "../common/machine_id.ts";

/** A counting semaphore: `semaphore` slots free out of `max`, taken by `holders`. */
export interface Semaphore {
  /** Slots still available; `max - holders.length`, negative after set-max below the holder count. */
  readonly semaphore: number;
  /** Total number of slots. */
  readonly max: number;
  /** Ids holding a slot, sorted, unique. */
  readonly holders: readonly string[];
}

/** The document of a semaphore that was never written: one slot, no holders. */
export const INITIAL_SEMAPHORE: Semaphore = Object.freeze({
  semaphore: 1,
  max: 1,
  holders: Object.freeze([]) as readonly string[],
});

/** Largest stored document accepted, in bytes; a larger one is treated as corrupt. */
export const MAX_DOCUMENT_BYTES = 256 * 1024;

/** Largest holder list accepted; a longer one is treated as corrupt. */
export const MAX_HOLDERS = 4096;

/** Largest `max` accepted by set-max and in stored documents. */
export const MAX_SLOTS = 1_000_000;

const KNOWN_FIELDS = new Set(["semaphore", "max", "holders"]);

/** A stored value for a defect message: short, one line, never the whole (possibly huge) value. */
function show(value: unknown): string {
  if (typeof value === "string") return quote(value, 40);
  if (Array.isArray(value)) return "a list";
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  // Numbers as JavaScript reads them: 1e309 is Infinity, not JSON's "null".
  return String(value);
}

const encoder = new TextEncoder();

/**
 * Parses and validates a stored document. Throws {@link CorruptDocumentError}
 * naming `key` and the defect when the text is not a well-formed semaphore.
 * Accepts `"holders": null` (written by the original locksmith) as no holders.
 */
export function parseSemaphore(raw: string, key: string): Semaphore {
  const corrupt = (defect: string) =>
    new CorruptDocumentError(key, defect, raw);
  // Each UTF-16 unit is at most 3 UTF-8 bytes: count only when it may matter.
  if (raw.length * 3 > MAX_DOCUMENT_BYTES) {
    const bytes = encoder.encode(raw).length;
    if (bytes > MAX_DOCUMENT_BYTES) {
      throw corrupt(
        `document is ${bytes} bytes, more than ${MAX_DOCUMENT_BYTES}`,
      );
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw corrupt("not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw corrupt("not a JSON object");
  }
  const doc = value as Record<string, unknown>;
  for (const field of Object.keys(doc)) {
    if (!KNOWN_FIELDS.has(field)) {
      throw corrupt(`unknown field ${quote(field, 40)}`);
    }
  }
  for (const field of ["semaphore", "max"] as const) {
    if (!(field in doc)) throw corrupt(`missing field "${field}"`);
    const n = doc[field];
    if (typeof n !== "number" || !Number.isSafeInteger(n)) {
      throw corrupt(`"${field}" is not an integer: ${show(n)}`);
    }
  }
  const max = doc.max as number;
  const semaphore = doc.semaphore as number;
  if (max < 0 || max > MAX_SLOTS) {
    throw corrupt(`"max" is ${max}, outside 0..${MAX_SLOTS}`);
  }
  const holdersValue = doc.holders ?? [];
  if (!Array.isArray(holdersValue)) throw corrupt(`"holders" is not a list`);
  if (holdersValue.length > MAX_HOLDERS) {
    throw corrupt(
      `"holders" has ${holdersValue.length} entries, more than ${MAX_HOLDERS}`,
    );
  }
  holdersValue.forEach((id: unknown, i: number) => {
    const defect = idDefect(id);
    if (defect !== undefined) throw corrupt(`holder #${i + 1} ${defect}`);
    if (i > 0) {
      const prev = holdersValue[i - 1] as string;
      if (prev === id) {
        throw corrupt(`holder ${quote(id as string)} appears twice`);
      }
      if (prev > (id as string)) throw corrupt(`"holders" is not sorted`);
    }
  });
  const holders = holdersValue as string[];
  if (semaphore !== max - holders.length) {
    throw corrupt(
      `"semaphore" is ${semaphore} but max ${max} minus ${holders.length} holder(s) is ${
        max - holders.length
      }`,
    );
  }
  return { semaphore, max, holders };
}

/** Serializes a document exactly as stored: compact JSON, holders as a list (never null). */
export function formatSemaphore(doc: Semaphore): string {
  return JSON.stringify({
    semaphore: doc.semaphore,
    max: doc.max,
    holders: doc.holders,
  });
}

/** Whether `id` holds a slot in `doc`. */
export function isHolder(doc: Semaphore, id: string): boolean {
  return doc.holders.includes(id);
}

/**
 * Takes a slot for `id`. Refuses with `holder_exists` when `id` already holds one
 * (checked first, so re-locking is recognisable even when full), and with
 * `semaphore_full` when no slot is available or the document already lists
 * {@link MAX_HOLDERS} holders (one more would make it unreadable as corrupt).
 */
export function lock(doc: Semaphore, id: string): Semaphore {
  if (isHolder(doc, id)) {
    throw new SemaphoreRefusedError("holder_exists", `holder exists: ${id}`);
  }
  if (doc.semaphore <= 0) {
    throw new SemaphoreRefusedError(
      "semaphore_full",
      `semaphore is at ${doc.semaphore}: all ${doc.max} slot(s) are held`,
    );
  }
  if (doc.holders.length >= MAX_HOLDERS) {
    throw new SemaphoreRefusedError(
      "semaphore_full",
      `the semaphore has ${doc.holders.length} holders, the most a document may list`,
    );
  }
  const holders = [...doc.holders, id].sort(compareIds);
  return { semaphore: doc.semaphore - 1, max: doc.max, holders };
}

/** Releases the slot of `id`. Refuses with `holder_not_found` when `id` holds none. */
export function unlock(doc: Semaphore, id: string): Semaphore {
  if (!isHolder(doc, id)) {
    throw new SemaphoreRefusedError(
      "holder_not_found",
      `holder does not exist: ${id}`,
    );
  }
  return {
    semaphore: doc.semaphore + 1,
    max: doc.max,
    holders: doc.holders.filter((h) => h !== id),
  };
}

/**
 * Sets the number of slots to `max`. Holders are kept even when there are more
 * than `max`; `semaphore` then goes negative and no lock succeeds until enough
 * unlock. `0` pauses all reboots.
 */
export function setMax(doc: Semaphore, max: number): Semaphore {
  if (!Number.isSafeInteger(max) || max < 0 || max > MAX_SLOTS) {
    throw new UsageError(
      `max must be an integer from 0 to ${MAX_SLOTS}, got ${max}`,
    );
  }
  return {
    semaphore: doc.semaphore - (doc.max - max),
    max,
    holders: doc.holders,
  };
}

/** Orders ids by UTF-16 code units, the same order as Go's `sort.Strings` for ASCII ids. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
