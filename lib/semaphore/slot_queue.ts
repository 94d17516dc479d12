/**
 * The wait queue in front of the semaphore, as locksmithd uses it: the port
 * that the etcd wait queue implements. The queue only decides who tries
 * first; the semaphore alone decides who holds.
 *
 * @module
 */

import type { Semaphore } from "./document.ts";
import type { HolderRecord } from "./holder_record.ts";
import type { UpdateOutcome } from "./lock_store.ts";

/**
 * Where this machine stands in the queue, as far as it knows for sure:
 * `head` (first in line), `second` (right behind the head), `behind`
 * (further back), `out` (not queued: never joined, left, or its entry was
 * removed). The first few waiters (the front, see {@link QueueState.front})
 * watch the document: they may take a free slot that those ahead of them
 * leave untaken.
 */
export type QueuePlace = "head" | "second" | "behind" | "out";

/** What the queue knows now, without I/O. */
export interface QueueState {
  /** This machine's place. */
  readonly place: QueuePlace;
  /** The document as last seen; fresh (watched) for `head` and `second`. */
  readonly doc: Semaphore | undefined;
  /** For `second`: the id of the head. */
  readonly headId?: string | undefined;
  /** Waiters ahead as last counted: only those that joined before this machine (exact at the front). */
  readonly ahead: number;
  /** Whether this machine is at the front: it watches the document, and knows exactly who is ahead. */
  readonly front?: boolean | undefined;
  /** At the front: the ids of the waiters ahead, first in line first. */
  readonly aheadIds?: readonly string[] | undefined;
}

/** Why {@link SlotQueue.waitForChange} returned. */
export type WaitResult = "changed" | "timeout" | "disconnected" | "aborted";

/** Options of {@link SlotQueue.take}. */
export interface TakeOptions {
  /**
   * Also remove the waiters ahead from the queue (hand-over: they left a
   * free slot untaken for the hand-over time each): the head, and at the
   * front any others ahead of this machine.
   */
  readonly evictHead?: boolean;
  /** The holder record written with the slot. */
  readonly record?: HolderRecord | undefined;
}

/** This machine's holder record as stored, with the revision of its last write. */
export interface StoredHolderRecord {
  /** The record, if the key exists and holds one. */
  readonly record: HolderRecord | undefined;
  /** The key's mod revision (0 when there is no key). */
  readonly revision: number;
}

/** What {@link SlotQueue.startupRead} finds. */
export interface StartupReading {
  /** The semaphore document. */
  readonly doc: Semaphore;
  /** This machine's holder record, if any. */
  readonly record: HolderRecord | undefined;
  /** The same record with its revision, for the slot lease to resume from. */
  readonly stored: StoredHolderRecord;
}

/** The wait queue of one semaphore, for one machine. */
export interface SlotQueue {
  /**
   * At start: reads the document and this machine's holder record, and
   * removes a queue entry this machine left before a restart, in one request.
   */
  startupRead(): Promise<StartupReading>;
  /** Joins at the back (or finds this machine's live entry) and learns its place. */
  join(): Promise<QueueState>;
  /** The current state, without I/O. */
  state(): QueueState;
  /** Reads the document and the queue again (after a lost watch, or as a safety re-check). */
  refresh(): Promise<QueueState>;
  /**
   * Takes a slot and leaves the queue in one transaction (one attempt).
   * Throws `SemaphoreRefusedError` (full, or already a holder) or
   * `ContentionError` (the document changed meanwhile: look again).
   */
  take(options: TakeOptions): Promise<UpdateOutcome>;
  /** Leaves the queue (if queued). */
  leave(): Promise<void>;
  /**
   * Waits until something that can change this machine's turn happens
   * (`"changed"`), `timeoutMs` passes, the watch is lost (`"disconnected"`:
   * call {@link SlotQueue.refresh}), or `signal` aborts. Never throws.
   */
  waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<WaitResult>;
  /** Leaves the queue at once (revoking its lease) and stops watching. */
  close(): Promise<void>;
}
