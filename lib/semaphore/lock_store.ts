/**
 * The semaphore storage interface that locksmithctl and locksmithd use, and
 * the three operations on it. The etcd implementation is `EtcdLockStore`.
 *
 * @module
 */

import { lock, type Semaphore, setMax, unlock } from "./document.ts";

/** Options of {@link LockStore.update}. */
export interface UpdateOptions {
  /** Compare-and-swap attempts before `ContentionError` (default: the store's, 64). */
  readonly maxAttempts?: number;
  /** Leave the wait queue in the same write (for a queued lock). */
  readonly leaveQueue?: boolean;
  /** Remove these ids from the wait queue in the same write (waiters that did not act). */
  readonly evict?: readonly string[];
}

/** Why {@link LockStore.waitForChange} returned. */
export type WaitResult = "changed" | "timeout" | "disconnected" | "aborted";

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

/**
 * A change to the semaphore: returns the new document, `undefined` for "no
 * change needed" (nothing is written), or throws `SemaphoreRefusedError`.
 */
export type Change = (doc: Semaphore) => Semaphore | undefined;

/** The semaphore storage that locksmithctl and locksmithd use; sized to the calls they make. */
export interface LockStore {
  /** The etcd key of the semaphore. */
  readonly key: string;
  /** Reads the current document; never writes. */
  read(): Promise<Snapshot>;
  /** Applies `change` atomically, retrying on conflicts (see {@link UpdateOptions}). */
  update(change: Change, options?: UpdateOptions): Promise<UpdateOutcome>;
  /**
   * Joins the wait queue of the semaphore as `id`, at the back (joining again
   * moves it to the back), and reads the document, in one request. The queue
   * only decides who tries first; the semaphore alone decides who holds.
   */
  joinQueue(id: string): Promise<Snapshot>;
  /** Leaves the wait queue as `id` (if queued) and reads the document, in one request. */
  leaveQueue(id: string): Promise<Snapshot>;
  /**
   * How many waiters joined the queue before this store's id and still wait,
   * as last seen (no I/O); `undefined` when not queued, or when the queue
   * entry was removed by someone else (then join again).
   */
  waitersAhead(): number | undefined;
  /** Reads the ids of up to `limit` waiters ahead of this store's id, oldest first. */
  readWaitersAhead(limit: number): Promise<string[]>;
  /**
   * Waits until the key changes after `revision` (`"changed"`), `timeoutMs`
   * passes (`"timeout"`), the watch of the key is lost or cannot be set up
   * within the store's timeout, e.g. because etcd is down (`"disconnected"`:
   * waiting learns nothing then, so re-check with a request), or `signal`
   * aborts (`"aborted"`). Never throws.
   */
  waitForChange(
    revision: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<WaitResult>;
  /**
   * The latest revision at which this store saw the semaphore or the part of
   * the queue ahead of it change (`0` before any read): the baseline for
   * {@link LockStore.waitForChange}.
   */
  readonly revision: number;
  /**
   * The document as last seen by this store (from a read, a write or the
   * watch), without I/O; `undefined` before the first read or when the last
   * seen document does not parse. May be stale: use it to decide whether a
   * request is worth sending, never to refuse.
   */
  peek(): Semaphore | undefined;
  /** Reads the stored text without parsing it (`raw` undefined when absent); never writes. */
  readRaw(): Promise<{ raw: string | undefined; revision: number }>;
  /**
   * Writes `doc` only if the key is still at `revision` (compare-and-swap);
   * returns whether it was written. The one way to replace a corrupt document.
   */
  replace(revision: number, doc: Semaphore): Promise<boolean>;
  /** Releases the connection. */
  close(): Promise<void>;
}

/** Takes a slot for `id`; refuses when full or when `id` already holds one. */
export function lockSlot(store: LockStore, id: string): Promise<UpdateOutcome> {
  return store.update((doc) => lock(doc, id));
}

/** Releases the slot of `id`; refuses when `id` holds none. */
export function unlockSlot(
  store: LockStore,
  id: string,
): Promise<UpdateOutcome> {
  return store.update((doc) => unlock(doc, id));
}

/** Sets the number of slots; writes nothing when it is already `max`. */
export function setMaxSlots(
  store: LockStore,
  max: number,
): Promise<UpdateOutcome> {
  return store.update((doc) => doc.max === max ? undefined : setMax(doc, max));
}
