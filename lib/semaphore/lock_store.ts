/**
 * The semaphore storage interface that locksmithctl, locksmithd and the
 * FleetLock server use, and the operations on it. The etcd implementation
 * is `EtcdLockStore`.
 *
 * @module
 */

import { SemaphoreRefusedError } from "../common/errors.ts";
import { isHolder, lock, type Semaphore, setMax, unlock } from "./document.ts";
import { formatHolderRecord, type HolderRecord } from "./holder_record.ts";
import { aliveKey, holderRecordKey } from "./keys.ts";
import type { HistoryEvent } from "./history.ts";

/**
 * Another key written in the same compare-and-swap as the document, only
 * when the document's write applies (holder records, the wait queue), or
 * slot events for the history (`history.ts`): the store writes all the
 * events of one change to the history slot of the version it writes.
 */
export type Companion =
  | {
    /** Slot events of this change, appended to the history. */
    readonly history: readonly HistoryEvent[];
  }
  | {
    /** Key to write. */
    readonly put: string;
    /** Text to write. */
    readonly value: string;
    /** etcd lease to attach the key to (it is deleted when the lease expires). */
    readonly lease?: string | undefined;
  }
  | {
    /** Key to delete. */
    readonly delete: string;
    /** Delete only the key created at this revision (not a newer key of the same name). */
    readonly ifCreatedAt?: number | undefined;
  };

/** Options of {@link LockStore.update}. */
export interface UpdateOptions {
  /** Compare-and-swap attempts before `ContentionError` (default: the store's, 64). */
  readonly maxAttempts?: number;
  /** Companion writes for a change from `before` to `after`, applied in the same transaction. */
  readonly companions?: (
    before: Semaphore,
    after: Semaphore,
  ) => readonly Companion[];
}

/** What an {@link LockStore.update} did. */
export interface UpdateOutcome {
  /** The document the change was applied to. */
  readonly before: Semaphore;
  /** The document now stored (equal to `before` when nothing was written). */
  readonly after: Semaphore;
  /** Whether a new document was written. */
  readonly written: boolean;
  /** Compare-and-swap attempts made (1 when there was no conflict). */
  readonly attempts: number;
  /** The revision of the write, or of the read that showed nothing was to be written. */
  readonly revision: number;
}

/** A document as read, with the raw text and revision it was read at. */
export interface Snapshot {
  /** The parsed document; the initial document when the key is absent. */
  readonly doc: Semaphore;
  /** The stored text, or `undefined` when the key is absent. */
  readonly raw: string | undefined;
  /** The key's `mod_revision`; `0` when absent. */
  readonly revision: number;
}

/** What a store knows beside the document, at the revision a change is computed on. */
export interface ChangeContext {
  /**
   * Whether the semaphore is paused (`<key>/paused` exists): no new slot
   * may be taken. A store that passes it guards its write with it, so a
   * change computed as "not paused" is never stored after a pause.
   */
  readonly paused: boolean;
}

/**
 * A change to the semaphore: returns the new document, `undefined` for "no
 * change needed" (nothing is written), or throws `SemaphoreRefusedError`.
 * `context` is absent with a store that knows nothing beside the document
 * (then nothing is paused).
 */
export type Change = (
  doc: Semaphore,
  context?: ChangeContext,
) => Semaphore | undefined;

/** The semaphore storage that locksmithctl and locksmithd use; sized to the calls they make. */
export interface LockStore {
  /** The etcd key of the semaphore. */
  readonly key: string;
  /** Reads the current document; never writes. */
  read(): Promise<Snapshot>;
  /**
   * Applies `change` atomically, retrying on conflicts. A cached document
   * may be used to compute a write (the revision guard catches staleness),
   * never to refuse or to skip one: those are confirmed by a fresh read.
   */
  update(change: Change, options?: UpdateOptions): Promise<UpdateOutcome>;
  /**
   * The document as last seen by this store (from a read, a write or a
   * watch), without I/O; `undefined` before the first read or when it does
   * not parse. May be stale: use it to decide whether a request is worth
   * sending, never to refuse.
   */
  peek(): Semaphore | undefined;
  /** Reads the stored text without parsing it (`raw` undefined when absent); never writes. */
  readRaw(): Promise<{ raw: string | undefined; revision: number }>;
  /**
   * Writes `doc` only if the key is still at `revision` (compare-and-swap);
   * returns whether it was written. The one way to replace a corrupt document.
   */
  replace(revision: number, doc: Semaphore): Promise<boolean>;
  /**
   * Waits until the document changes after `revision` (e.g. a
   * {@link Snapshot}'s), at most `timeoutMs`: `"changed"` (read it again),
   * `"timeout"`, or `"aborted"` when `signal` aborts. Never throws: when
   * etcd cannot be watched it checks with reads until the timeout.
   */
  waitForChange(
    revision: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<"changed" | "timeout" | "aborted">;
  /** Releases the connection. */
  close(): Promise<void>;
}

/** Options of {@link lockSlot}. */
export interface LockSlotOptions {
  /** The holder record to store beside the document (when taken, by what, which boot). */
  readonly record?: HolderRecord | undefined;
  /** More companion writes (e.g. leaving the wait queue). */
  readonly companions?: readonly Companion[] | undefined;
  /** Whether to record the `taken` event (default: when there is a record). */
  readonly recordEvent?: boolean | undefined;
  /** Compare-and-swap attempts (default: the store's). */
  readonly maxAttempts?: number | undefined;
}

/** The refusal of a new slot while the semaphore at `key` is paused. */
export function pausedRefusal(key: string): SemaphoreRefusedError {
  return new SemaphoreRefusedError(
    "paused",
    `the semaphore ${key} is paused: no slot is given until 'locksmithctl resume'`,
  );
}

/**
 * {@link lock}, refused with `paused` while `context` says so (a holder
 * re-locking is still `holder_exists`: it takes nothing new).
 */
export function lockUnlessPaused(
  key: string,
  doc: Semaphore,
  id: string,
  context?: ChangeContext,
): Semaphore {
  if (context?.paused && !isHolder(doc, id)) throw pausedRefusal(key);
  return lock(doc, id);
}

/**
 * Takes a slot for `id`; refuses when full, when paused, or when `id`
 * already holds one. With a record, the holder record is written in the
 * same transaction; a record that names a lease also writes the holder's
 * alive key, attached to that lease (see `semaphore_view.ts`).
 */
export function lockSlot(
  store: LockStore,
  id: string,
  options: LockSlotOptions = {},
): Promise<UpdateOutcome> {
  const { record, companions = [], maxAttempts } = options;
  const event = record && (options.recordEvent ?? true)
    ? [{ history: [takenEvent(record)] }]
    : [];
  const all: Companion[] = [
    ...event,
    ...(record
      ? [{
        put: holderRecordKey(store.key, id),
        value: formatHolderRecord(record),
      }]
      : []),
    ...(record?.lease
      ? [{ put: aliveKey(store.key, id), value: id, lease: record.lease }]
      : []),
    ...companions,
  ];
  return store.update(
    (doc, context) => lockUnlessPaused(store.key, doc, id, context),
    {
      ...(maxAttempts === undefined ? {} : { maxAttempts }),
      ...(all.length > 0 ? { companions: () => all } : {}),
    },
  );
}

/** The `taken` event of a slot taken with `record`. */
export function takenEvent(record: HolderRecord): HistoryEvent {
  return {
    kind: "taken",
    id: record.id,
    at: record.since,
    by: record.by,
    ...(record.boot === undefined ? {} : { boot: record.boot }),
  };
}

/** How a slot given back with {@link unlockSlot} ends, for the history. */
export interface SlotEnding {
  /** `released` after the machine's boot, `returned` unused, `unlocked` by an operator. */
  readonly kind: "released" | "returned" | "unlocked";
  /** When (ISO 8601). */
  readonly at: string;
  /** When the slot was taken, if known. */
  readonly since?: string | undefined;
  /** The holder's boot id when it took the slot, if known. */
  readonly boot?: string | undefined;
}

/** The companion deletes of a holder that gives its slot back: its record and alive key. */
export function releaseCompanions(key: string, id: string): Companion[] {
  return [{ delete: holderRecordKey(key, id) }, { delete: aliveKey(key, id) }];
}

/**
 * Releases the slot of `id` and deletes its holder record and alive key;
 * refuses when `id` holds none. With `ending`, its event is added to the
 * history in the same transaction.
 */
export function unlockSlot(
  store: LockStore,
  id: string,
  ending?: SlotEnding,
): Promise<UpdateOutcome> {
  const history: Companion[] = ending === undefined ? [] : [{
    history: [{
      kind: ending.kind,
      id,
      at: ending.at,
      ...(ending.since === undefined ? {} : { since: ending.since }),
      ...(ending.boot === undefined ? {} : { boot: ending.boot }),
    }],
  }];
  return store.update((doc) => unlock(doc, id), {
    companions: () => [...releaseCompanions(store.key, id), ...history],
  });
}

/** Sets the number of slots; writes nothing when it is already `max`. */
export function setMaxSlots(
  store: LockStore,
  max: number,
): Promise<UpdateOutcome> {
  return store.update((doc) => doc.max === max ? undefined : setMax(doc, max));
}
