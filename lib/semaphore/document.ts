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
  DocumentLimitError,
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

/**
 * Number of UTF-8 bytes of `text` (a lone surrogate counts as the 3 bytes
 * of its replacement character, as `TextEncoder` writes it), without
 * encoding it.
 */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      bytes += 1;
    } else if (c < 0x800) {
      bytes += 2;
    } else if (c >= 0xd800 && c <= 0xdbff && isLowSurrogate(text, i + 1)) {
      bytes += 4;
      i++;
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

function isLowSurrogate(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return c >= 0xdc00 && c <= 0xdfff;
}

/**
 * What breaks a capacity limit of the stored document with `holders`
 * holders in `bytes` bytes (`"holders" has ... entries` or `document is
 * ... bytes`), or `undefined`: the part of {@link documentDefect} that
 * {@link lock} checks for each new holder.
 */
export function capacityDefect(
  holders: number,
  bytes: number,
): string | undefined {
  if (holders > MAX_HOLDERS) {
    return `"holders" has ${holders} entries, more than ${MAX_HOLDERS}`;
  }
  if (bytes > MAX_DOCUMENT_BYTES) {
    return `document is ${bytes} bytes, more than ${MAX_DOCUMENT_BYTES}`;
  }
  return undefined;
}

/**
 * Every limit of a stored document, checked by every reader
 * ({@link parseSemaphore}) and before every write ({@link storedText}), so
 * that the two cannot drift: `semaphore` and `max` safe integers, `max` in
 * `0..`{@link MAX_SLOTS}, at most {@link MAX_HOLDERS} holders, each a
 * valid id (see `idDefect`: at most 256 bytes), sorted and unique,
 * `semaphore` equal to `max` minus the holders, and at most
 * {@link MAX_DOCUMENT_BYTES} when stored as `bytes` bytes. Returns what is
 * wrong, one line, or `undefined`. `doc` may come from untrusted JSON: its
 * fields' types are checked too.
 */
export function documentDefect(
  doc: Semaphore,
  bytes: number,
): string | undefined {
  const size = capacityDefect(0, bytes);
  if (size !== undefined) return size;
  for (const field of ["semaphore", "max"] as const) {
    const n: unknown = doc[field];
    if (typeof n !== "number" || !Number.isSafeInteger(n)) {
      return `"${field}" is not an integer: ${show(n)}`;
    }
  }
  const { semaphore, max, holders } = doc;
  if (max < 0 || max > MAX_SLOTS) {
    return `"max" is ${max}, outside 0..${MAX_SLOTS}`;
  }
  if (!Array.isArray(holders)) return `"holders" is not a list`;
  const count = capacityDefect(holders.length, 0);
  if (count !== undefined) return count;
  for (let i = 0; i < holders.length; i++) {
    const id: unknown = holders[i];
    const defect = idDefect(id);
    if (defect !== undefined) return `holder #${i + 1} ${defect}`;
    const prev = holders[i - 1];
    if (prev === id) return `holder ${quote(id as string)} appears twice`;
    if (prev !== undefined && prev > (id as string)) {
      return `"holders" is not sorted`;
    }
  }
  if (semaphore !== max - holders.length) {
    return `"semaphore" is ${semaphore} but max ${max} minus ${holders.length} holder(s) is ${
      max - holders.length
    }`;
  }
  return undefined;
}

/**
 * Parses and validates a stored document. Throws {@link CorruptDocumentError}
 * naming `key` and the defect when the text is not a well-formed semaphore
 * within every limit of {@link documentDefect}.
 * Accepts `"holders": null` (written by the original locksmith) as no holders.
 */
export function parseSemaphore(raw: string, key: string): Semaphore {
  const corrupt = (defect: string) =>
    new CorruptDocumentError(key, defect, raw);
  // The size first: a huge text is never parsed.
  const bytes = utf8Bytes(raw);
  const size = capacityDefect(0, bytes);
  if (size !== undefined) throw corrupt(size);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw corrupt("not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw corrupt("not a JSON object");
  }
  const fields = value as Record<string, unknown>;
  for (const field of Object.keys(fields)) {
    if (!KNOWN_FIELDS.has(field)) {
      throw corrupt(`unknown field ${quote(field, 40)}`);
    }
  }
  for (const field of ["semaphore", "max"] as const) {
    if (!(field in fields)) throw corrupt(`missing field "${field}"`);
  }
  const doc = {
    semaphore: fields.semaphore,
    max: fields.max,
    holders: fields.holders ?? [],
  } as Semaphore;
  const defect = documentDefect(doc, bytes);
  if (defect !== undefined) throw corrupt(defect);
  return doc;
}

/**
 * The text to store for `doc`, checked against every limit a reader
 * enforces ({@link documentDefect}), so that nothing is written that
 * readers would reject as corrupt. Throws {@link DocumentLimitError}
 * (`semaphore_full`) when the document would be too large or list too many
 * holders, and a {@link UsageError} naming the defect for any other
 * (a bad holder id or slot count).
 */
export function storedText(doc: Semaphore, key: string): string {
  const raw = formatSemaphore(doc);
  const bytes = utf8Bytes(raw);
  const defect = documentDefect(doc, bytes);
  if (defect === undefined) {
    sizes.set(doc, bytes);
    return raw;
  }
  const what = `refusing to write the semaphore document at ${key}`;
  if (capacityDefect(doc.holders.length, bytes) !== undefined) {
    throw new DocumentLimitError(
      defect,
      `${what}: ${defect} (the limit every reader enforces); a holder must release first`,
    );
  }
  throw new UsageError(`${what}: ${defect}`);
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

/** Stored size of documents whose size is known (the result of {@link lock} and {@link unlock}, a checked write). */
const sizes = new WeakMap<Semaphore, number>();

/**
 * The number of bytes {@link formatSemaphore} gives for `doc` (remembered
 * per document: each operation returns a new one, and a batch of locks
 * counts each holder's bytes once).
 */
export function documentBytes(doc: Semaphore): number {
  let bytes = sizes.get(doc);
  if (bytes === undefined) {
    bytes = utf8Bytes(formatSemaphore(doc));
    sizes.set(doc, bytes);
  }
  return bytes;
}

/** The bytes `id` takes in the stored holder list, with its separating comma when not alone. */
function listedBytes(id: string, holders: number): number {
  return utf8Bytes(JSON.stringify(id)) + (holders > 1 ? 1 : 0);
}

/** The change of the stored size when `semaphore` becomes `next`. */
function digitsDelta(semaphore: number, next: number): number {
  return String(next).length - String(semaphore).length;
}

/**
 * Takes a slot for `id`. Refuses with `holder_exists` when `id` already holds one
 * (checked first, so re-locking is recognisable even when full), and with
 * `semaphore_full` when no slot is available, or ({@link DocumentLimitError})
 * when the document could not list one more holder within the limits every
 * reader enforces ({@link capacityDefect}: {@link MAX_HOLDERS} holders,
 * {@link MAX_DOCUMENT_BYTES} bytes). An id that no reader would accept is a
 * {@link UsageError}.
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
  const idProblem = idDefect(id);
  if (idProblem !== undefined) {
    throw new UsageError(`holder id ${quote(id)} ${idProblem}`);
  }
  const count = doc.holders.length + 1;
  const bytes = documentBytes(doc) + listedBytes(id, count) +
    digitsDelta(doc.semaphore, doc.semaphore - 1);
  const defect = capacityDefect(count, bytes);
  if (defect !== undefined) {
    throw new DocumentLimitError(
      defect,
      `no room for ${
        quote(id, 40)
      } in the semaphore document: with it, ${defect} (the limit every reader enforces); a holder must release first`,
    );
  }
  const holders = [...doc.holders, id].sort(compareIds);
  const next = { semaphore: doc.semaphore - 1, max: doc.max, holders };
  sizes.set(next, bytes);
  return next;
}

/** Releases the slot of `id`. Refuses with `holder_not_found` when `id` holds none. */
export function unlock(doc: Semaphore, id: string): Semaphore {
  if (!isHolder(doc, id)) {
    throw new SemaphoreRefusedError(
      "holder_not_found",
      `holder does not exist: ${id}`,
    );
  }
  const next = {
    semaphore: doc.semaphore + 1,
    max: doc.max,
    holders: doc.holders.filter((h) => h !== id),
  };
  const known = sizes.get(doc);
  if (known !== undefined) {
    sizes.set(
      next,
      known - listedBytes(id, doc.holders.length) +
        digitsDelta(doc.semaphore, next.semaphore),
    );
  }
  return next;
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
