/**
 * Group commit of FleetLock calls on one semaphore: calls that arrive while
 * a change is in flight wait, and are then applied together, in arrival
 * order, by one {@link LockStore.update}. So a burst of calls costs one
 * compare-and-swap write (or one read when nothing changes), and calls of
 * one server never conflict with each other: only writers elsewhere
 * (locksmithd, locksmithctl, another server) can make the store retry.
 *
 * Verdicts are linearizable: a batch that writes was computed on the
 * document its compare-and-swap proved current; a batch that writes nothing
 * was computed on a fresh read (the store re-reads before "no change").
 *
 * @module
 */

import { backoffDelay } from "../common/backoff.ts";
import {
  ContentionError,
  DocumentLimitError,
  type SemaphoreRefusal,
  SemaphoreRefusedError,
} from "../common/errors.ts";
import {
  formatSemaphore,
  type Semaphore,
  setMax,
  unlock,
} from "../semaphore/document.ts";
import {
  type Change,
  type ChangeContext,
  type Companion,
  type LockStore,
  lockUnlessPaused,
  releaseCompanions,
  type UpdateOutcome,
} from "../semaphore/lock_store.ts";
import { type HistoryEvent, holderChanges } from "../semaphore/history.ts";

/** One FleetLock call on a semaphore: take (`lock`) or release (`unlock`) the slot of `id`. */
export interface SlotRequest {
  /** `lock` for pre-reboot, `unlock` for steady-state. */
  readonly op: "lock" | "unlock";
  /** The holder id. */
  readonly id: string;
}

/**
 * What became of a call: `locked` (took a slot), `already_held` (held one
 * before: success), `full` (no slot free), `paused` (the semaphore is
 * paused: no new slot), `released` (gave its slot back), `not_held` (held
 * none: success).
 */
export type SlotResult =
  | "locked"
  | "already_held"
  | "full"
  | "paused"
  | "released"
  | "not_held";

/** A call's result and the document it was decided on. */
export interface SlotVerdict {
  /** What became of the call. */
  readonly result: SlotResult;
  /** The document after the batch (as stored, or as freshly read when nothing was written). */
  readonly doc: Semaphore;
  /** Whether the batch wrote the document. */
  readonly written: boolean;
  /**
   * For a `full` call refused although a slot was free: why the stored
   * document could not list one more holder (one line naming the limit
   * every reader enforces, e.g. its size in bytes).
   */
  readonly limit?: string;
}

/** What one commit did, for metrics. */
export interface CommitReport {
  /** Calls in the batch. */
  readonly calls: number;
  /** Seconds the store took. */
  readonly seconds: number;
  /** Whether the store answered (false: it threw, every call got the error). */
  readonly ok: boolean;
  /** Whether a document was written. */
  readonly written: boolean;
  /** Compare-and-swap attempts that lost to another writer and were retried. */
  readonly conflicts: number;
}

/** Options of {@link SlotBatcher}. */
export interface SlotBatcherOptions {
  /** Most calls in one batch (default 256). */
  readonly maxBatch?: number;
  /** A slot count to apply with the first commit (see {@link SlotBatcher.applyMax}). */
  readonly pendingMax?: number;
  /** Called after each commit. */
  readonly onCommit?: (report: CommitReport) => void;
  /** Monotonic clock in ms, for {@link CommitReport.seconds}. Default `performance.now`. */
  readonly now?: () => number;
  /** Random source in [0, 1) for the pause between conflict rounds. Default `Math.random`. */
  readonly random?: () => number;
  /** Sleeps `ms`. Default `setTimeout`. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Conflict rounds before a batch fails with `ContentionError` (default 32). */
  readonly maxRounds?: number;
  /** Wall clock, for the history's event times. Default `new Date()`. */
  readonly clock?: () => Date;
}

const REFUSAL_RESULT: Record<SemaphoreRefusal, SlotResult> = {
  holder_exists: "already_held",
  holder_not_found: "not_held",
  semaphore_full: "full",
  paused: "paused",
};

interface Pending {
  readonly request: SlotRequest;
  readonly resolve: (verdict: SlotVerdict) => void;
  readonly reject: (error: unknown) => void;
}

/** Applies the calls of one semaphore in batches; see the module documentation. */
export class SlotBatcher {
  readonly #store: LockStore;
  readonly #maxBatch: number;
  readonly #onCommit: (report: CommitReport) => void;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #maxRounds: number;
  readonly #clock: () => Date;
  #queue: Pending[] = [];
  #running = false;
  #pendingMax: number | undefined;
  #maxWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  /**
   * Creates a batcher over `store` (which it does not close).
   *
   * @param store the semaphore's store
   * @param options batch size, a slot count to apply, a commit callback
   */
  constructor(store: LockStore, options: SlotBatcherOptions = {}) {
    this.#store = store;
    this.#maxBatch = options.maxBatch ?? 256;
    this.#pendingMax = options.pendingMax;
    this.#onCommit = options.onCommit ?? (() => {});
    this.#now = options.now ?? (() => performance.now());
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ??
      ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#maxRounds = options.maxRounds ?? 32;
    this.#clock = options.clock ?? (() => new Date());
  }

  /** The store the batches go to. */
  get store(): LockStore {
    return this.#store;
  }

  /** The slot count still to be applied, if any. */
  get pendingMax(): number | undefined {
    return this.#pendingMax;
  }

  /** Calls queued or in the batch in flight. */
  get busy(): boolean {
    return this.#running || this.#queue.length > 0;
  }

  /**
   * Queues a call; resolves with its verdict once its batch is stored.
   * Rejects with the store's error (`EtcdUnavailableError`,
   * `ContentionError`, `CorruptDocumentError`) when the batch failed: then
   * the call may or may not have been applied, as with any failed write.
   */
  submit(request: SlotRequest): Promise<SlotVerdict> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ request, resolve, reject });
      this.#kick();
    });
  }

  /**
   * Sets the number of slots to `max` in the next commit (one without calls
   * when none are queued), then never again: a later change by
   * `locksmithctl set-max` stands. Resolves once it is stored (or was
   * already `max`); rejects when that commit fails, and then the next
   * commit tries again.
   */
  applyMax(max: number): Promise<void> {
    this.#pendingMax = max;
    return new Promise((resolve, reject) => {
      this.#maxWaiters.push({ resolve, reject });
      this.#kick();
    });
  }

  #kick(): void {
    if (!this.#running) void this.#drain();
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0 || this.#maxWaiters.length > 0) {
        await this.#commit(this.#queue.splice(0, this.#maxBatch));
      }
    } finally {
      this.#running = false;
    }
  }

  /**
   * Applies `change` in rounds of two compare-and-swap attempts (the second
   * goes at once, on the document the failed first one returned). Between
   * rounds it pauses briefly with jitter, then reads, so that the next round
   * starts from a fresh document. (A store's own later retries start from
   * the document seen before their pause, which a busy writer elsewhere has
   * changed by then.) Fails with `ContentionError` after `maxRounds` rounds;
   * any other error ends it at once.
   */
  async #update(
    change: Change,
  ): Promise<{ outcome: UpdateOutcome; conflicts: number }> {
    let conflicts = 0;
    for (let round = 1;; round++) {
      try {
        const outcome = await this.#store.update(change, {
          maxAttempts: 2,
          companions: batchCompanions(this.#store.key, this.#clock),
        });
        return { outcome, conflicts: conflicts + outcome.attempts - 1 };
      } catch (error) {
        if (!(error instanceof ContentionError) || round >= this.#maxRounds) {
          throw error;
        }
        conflicts += 2;
      }
      await this.#sleep(backoffDelay({
        attempt: round,
        minMs: 2,
        maxMs: 50,
        jitter: "full",
        random: this.#random,
      }));
      await this.#store.read();
    }
  }

  async #commit(batch: Pending[]): Promise<void> {
    const max = this.#pendingMax;
    const maxWaiters = this.#maxWaiters;
    this.#maxWaiters = [];
    let results: SlotResult[] = [];
    let limits: (string | undefined)[] = [];
    const started = this.#now();
    const report = (ok: boolean, written: boolean, conflicts: number) =>
      this.#onCommit({
        calls: batch.length,
        seconds: (this.#now() - started) / 1000,
        ok,
        written,
        conflicts,
      });
    try {
      const { outcome, conflicts } = await this.#update((doc, context) => {
        const applied = applyBatch(this.#store.key, doc, batch, max, context);
        results = applied.results;
        limits = applied.limits;
        return applied.doc;
      });
      report(true, outcome.written, conflicts);
      if (max !== undefined && this.#pendingMax === max) {
        this.#pendingMax = undefined;
      }
      for (const waiter of maxWaiters) waiter.resolve();
      batch.forEach((entry, i) => {
        const limit = limits[i];
        entry.resolve({
          result: results[i] as SlotResult,
          doc: outcome.after,
          written: outcome.written,
          ...(limit === undefined ? {} : { limit }),
        });
      });
    } catch (error) {
      report(false, false, 0);
      for (const waiter of maxWaiters) waiter.reject(error);
      for (const entry of batch) entry.reject(error);
    }
  }
}

/**
 * Companion deletes of the records and alive keys of the holders a change
 * released, and the history events of the change: `taken` by `fleetlock`
 * for each new holder, `released` (a steady-state: the machine is back)
 * for each one gone.
 */
function batchCompanions(
  key: string,
  clock: () => Date,
): (before: Semaphore, after: Semaphore) => Companion[] {
  return (before, after) => {
    const { taken, ended } = holderChanges(before.holders, after.holders);
    const at = clock().toISOString();
    const events: HistoryEvent[] = [
      ...ended.map((id): HistoryEvent => ({ kind: "released", id, at })),
      ...taken.map((id): HistoryEvent => ({
        kind: "taken",
        id,
        at,
        by: "fleetlock",
      })),
    ];
    return [
      ...ended.flatMap((id) => releaseCompanions(key, id)),
      ...(events.length > 0 ? [{ history: events }] : []),
    ];
  };
}

/**
 * Applies a slot count and then the calls, in order, to `doc`; returns the
 * new document (`undefined` when it would store the same text) and each
 * call's result. A lock with no room is `full`: no free slot, or one more
 * holder would break a limit every reader enforces (`lock` refuses both;
 * the latter with the limit, in `limits`). While `context` says paused, a
 * lock by a non-holder is `paused`.
 */
function applyBatch(
  key: string,
  doc: Semaphore,
  batch: readonly Pending[],
  max: number | undefined,
  context: ChangeContext | undefined,
): {
  doc: Semaphore | undefined;
  results: SlotResult[];
  limits: (string | undefined)[];
} {
  const results: SlotResult[] = [];
  const limits: (string | undefined)[] = [];
  let next = max !== undefined && doc.max !== max ? setMax(doc, max) : doc;
  for (const [i, { request }] of batch.entries()) {
    try {
      if (request.op === "lock") {
        next = lockUnlessPaused(key, next, request.id, context);
        results.push("locked");
      } else {
        next = unlock(next, request.id);
        results.push("released");
      }
    } catch (error) {
      if (!(error instanceof SemaphoreRefusedError)) throw error;
      results.push(REFUSAL_RESULT[error.reason]);
      if (error instanceof DocumentLimitError) limits[i] = error.limit;
    }
  }
  const changed = next !== doc &&
    formatSemaphore(next) !== formatSemaphore(doc);
  return { doc: changed ? next : undefined, results, limits };
}
