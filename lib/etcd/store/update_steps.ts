/**
 * The pieces of one compare-and-swap update of `EtcdLockStore`: its retry
 * accounting (which retries count against its attempts and which are
 * free), and what each of its steps yields.
 *
 * @module
 */

import { ContentionError } from "../../common/errors.ts";
import type { Semaphore } from "../../semaphore/document.ts";
import type { UpdateOutcome } from "../../semaphore/lock_store.ts";
import type { Compare } from "../client/port.ts";
import type { StoredDocument } from "./stored_document.ts";

/**
 * The retry accounting of one update. Counted: each compare-and-swap write
 * lost to another writer, up to `maxAttempts` writes in all, then
 * {@link ContentionError}. Free: a fresh read that replaces a cached copy
 * (see `EtcdLockStore.update`), and the immediate re-apply of a
 * write whose guard failed only on the pause key. Free retries cannot
 * loop: each needs a cached copy (there is at most one per lost write and
 * one at the start) or a change of the pause by someone else; they are
 * capped all the same, at {@link FREE_RETRIES_PER_ATTEMPT} per counted
 * attempt.
 */
export class RetryBudget {
  readonly #key: string;
  readonly #maxAttempts: number;
  #attempts = 1;
  #free = 0;

  /**
   * Creates the budget of one update.
   *
   * @param key the semaphore key, for the error
   * @param maxAttempts writes allowed in all
   */
  constructor(key: string, maxAttempts: number) {
    this.#key = key;
    this.#maxAttempts = maxAttempts;
  }

  /** Writes attempted so far, the one in progress included. */
  get attempts(): number {
    return this.#attempts;
  }

  /** Counts a lost write; throws {@link ContentionError} when no attempt is left. */
  lost(): void {
    if (this.#attempts >= this.#maxAttempts) {
      throw new ContentionError(
        `gave up on ${this.#key} after ${this.#maxAttempts} conflicting writes`,
      );
    }
    this.#attempts++;
  }

  /** Takes a free retry (`why`, for the error when they ran out). */
  free(why: string): void {
    if (++this.#free > FREE_RETRIES_PER_ATTEMPT * this.#attempts) {
      throw new ContentionError(
        `gave up on ${this.#key} after ${
          this.#free - 1
        } retries without a conflicting write (the last: ${why})`,
      );
    }
  }
}

/** Free retries (see {@link RetryBudget}) allowed per counted attempt. */
export const FREE_RETRIES_PER_ATTEMPT = 4;

/** A document an update works on, and whether this update read it (else: the cache). */
export interface Seen {
  /** The document. */
  readonly stored: StoredDocument;
  /** Whether this update read it (else it is the store's cached copy). */
  readonly fresh: boolean;
}

/** A change computed on a document: `raw` is the checked text to write, `undefined` for no change. */
export type Computed =
  | {
    /** The document the change was applied to. */
    readonly before: Semaphore;
    /** The changed document. */
    readonly after: Semaphore;
    /** Its text, checked against every limit a reader enforces. */
    readonly raw: string;
  }
  | {
    /** The document the change was applied to. */
    readonly before: Semaphore;
    /** The same document: nothing to change. */
    readonly after: Semaphore;
    /** Nothing to write. */
    readonly raw: undefined;
  };

/** What one guarded write did. */
export type Sent =
  | {
    /** The write applied. */
    readonly written: true;
    /** Its revision. */
    readonly revision: number;
  }
  | {
    /** The guard failed. */
    readonly written: false;
    /** The document the failed guard read. */
    readonly current: StoredDocument;
    /** Only the pause key changed since the write was computed. */
    readonly onlyPause: boolean;
  };

/** The guard "`key`'s `mod_revision` is still `revision`" (`0`: absent). */
export function guard(key: Uint8Array, revision: number): Compare {
  return { key, target: "MOD", result: "EQUAL", value: revision };
}

/** What an update did, with the attempts `budget` counted. */
export function outcome(
  before: Semaphore,
  after: Semaphore,
  budget: RetryBudget,
  revision: number,
  written: boolean,
): UpdateOutcome {
  return { before, after, written, attempts: budget.attempts, revision };
}
