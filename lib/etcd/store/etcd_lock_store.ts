/**
 * The semaphore stored in etcd v3, changed only by compare-and-swap, over
 * the {@link EtcdPort} (the JSON gateway, or gRPC).
 *
 * Every change is one etcd Txn guarded by the key's `mod_revision` as last
 * seen (`0` for an absent key, which makes the first write
 * create-if-absent). When the guard fails the same Txn returns the current
 * document, so a conflict costs no extra read: the change is re-applied to
 * it and retried (bounded, with jitter). A document that does not parse is
 * never written over, and nothing is written that a reader would reject:
 * every text is checked against the reader's limits first (`storedText`).
 * The store remembers the last document it saw (from reads, writes, and
 * the wait queue's watch), so an uncontended change costs one request. That
 * copy is never trusted to refuse, to skip a write, or to fail on a
 * document that does not parse: each is confirmed on a fresh read first.
 *
 * The guard also compares the pause key (`<key>/paused`, `locksmithctl
 * pause`) with the revision last seen (`0`: absent), and the change is told
 * whether it exists; so a lock computed as "not paused" is never stored
 * after a pause. While no pause was ever seen this costs nothing more: a
 * failed guard's answer carries the pause key too, and reads fetch it
 * only while it is known to exist.
 *
 * @module
 */

import { backoffDelay } from "../../common/backoff.ts";
import {
  CorruptDocumentError,
  SemaphoreRefusedError,
} from "../../common/errors.ts";
import { type Semaphore, storedText } from "../../semaphore/document.ts";
import type {
  Change,
  LockStore,
  Snapshot,
  UpdateOptions,
  UpdateOutcome,
} from "../../semaphore/lock_store.ts";
import {
  bytes,
  type EtcdPort,
  type KeyValue,
  rangeOf,
} from "../client/port.ts";
import { pausedKey } from "../../semaphore/keys.ts";
import { historySlotKey } from "../../semaphore/history.ts";
import { waitForKeyChange } from "../client/key_change.ts";
import { withDeadline } from "../client/deadline.ts";
import {
  type Computed,
  guard,
  outcome,
  RetryBudget,
  type Seen,
  type Sent,
} from "./update_steps.ts";
import { ownWriteRevision } from "./own_write.ts";
import {
  companionOps,
  parseStored,
  settingsText,
  type StoredDocument,
  storedFrom,
} from "./stored_document.ts";

/** Tuning of {@link EtcdLockStore}; defaults suit both the tools and the daemon. */
export interface EtcdLockStoreOptions {
  /** Deadline of each whole operation (read, or update with its retries), in ms. */
  readonly timeoutMs: number;
  /** Compare-and-swap attempts before giving up with `ContentionError`. Default 64. */
  readonly maxAttempts?: number;
  /** Random source in [0, 1) for the retry jitter. Default `Math.random`. */
  readonly random?: () => number;
  /** Whether {@link EtcdLockStore.close} closes the port too (default true). */
  readonly ownsPort?: boolean;
}

/** The {@link LockStore} over an {@link EtcdPort}; see the module documentation. */
export class EtcdLockStore implements LockStore {
  /** The etcd key of the semaphore. */
  readonly key: string;
  /** The etcd port, shared with the wait queue. */
  readonly port: EtcdPort;
  readonly #keyBytes: Uint8Array;
  readonly #pausedKey: Uint8Array;
  /** `mod_revision` of the pause key as last seen; `0`: absent (or never seen). */
  #pauseRevision = 0;
  readonly #options: EtcdLockStoreOptions;
  #cache: StoredDocument | undefined;
  /** The etcd revision at which {@link #cache} was known current. */
  #cacheSeenAt = 0;
  #settings: { raw: string | undefined; revision: number } | undefined;

  /**
   * Creates an `EtcdLockStore`.
   *
   * @param port the etcd port; closed by {@link EtcdLockStore.close} unless `ownsPort` is false
   * @param key the semaphore key (see `semaphoreKey`)
   * @param options deadline and retry tuning
   */
  constructor(port: EtcdPort, key: string, options: EtcdLockStoreOptions) {
    this.port = port;
    this.key = key;
    this.#keyBytes = bytes(key);
    this.#pausedKey = bytes(pausedKey(key));
    this.#options = options;
  }

  /** The deadline of each whole operation, in ms. */
  get timeoutMs(): number {
    return this.#options.timeoutMs;
  }

  /** The revision of the last document seen; `0` before any. */
  get revision(): number {
    return this.#cache?.revision ?? 0;
  }

  /**
   * Records a document seen elsewhere (a watch event, a queue transaction),
   * known to be current at etcd revision `seenAt`: a read's or a
   * transaction's revision, or for a watch event (the default) its own. A
   * sighting older than the one known is ignored; an absent key read at a
   * later revision replaces a document seen before (it was deleted).
   * Returns the newest known.
   */
  observe(
    stored: StoredDocument,
    seenAt: number = stored.revision,
  ): StoredDocument {
    if (this.#cache === undefined || seenAt >= this.#cacheSeenAt) {
      this.#cache = stored;
      this.#cacheSeenAt = seenAt;
    }
    return this.#cache;
  }

  /**
   * Records the settings key (slot TTL) as seen by a read or a watch at
   * `revision` (`undefined` for an absent key); an older sighting is ignored.
   */
  observeSettings(kv: KeyValue | undefined, revision: number): void {
    if (this.#settings !== undefined && revision < this.#settings.revision) {
      return;
    }
    this.#settings = { raw: settingsText(kv), revision };
  }

  /** The settings text as last seen (`undefined`: absent), or `null` when never seen. */
  seenSettings(): string | undefined | null {
    return this.#settings === undefined ? null : this.#settings.raw;
  }

  /** Parses a stored document; throws {@link CorruptDocumentError} naming the key. */
  parse(stored: StoredDocument): Semaphore {
    return parseStored(stored, this.key);
  }

  #snapshot(stored: StoredDocument): Snapshot {
    return {
      doc: this.parse(stored),
      raw: stored.raw,
      revision: stored.revision,
    };
  }

  /** Reads the document (linearizable), records it as the newest known and returns it. */
  async #fetch(deadline: number): Promise<StoredDocument> {
    if (this.#pauseRevision === 0) {
      const res = await this.port.range({ key: this.#keyBytes }, { deadline });
      const stored = storedFrom(res.kvs[0]);
      this.observe(stored, res.revision);
      return stored;
    }
    // Known paused: read whether it still is, with the document.
    const res = await this.port.txn({
      compare: [],
      success: [
        { range: { key: this.#keyBytes } },
        { range: { key: this.#pausedKey } },
      ],
      failure: [],
    }, { deadline });
    const [doc, pause] = res.responses.map((r) => rangeOf(r)?.kvs[0]);
    this.#pauseRevision = pause?.modRevision ?? 0;
    const stored = storedFrom(doc);
    this.observe(stored, res.revision);
    return stored;
  }

  /** Reads the current document (linearizable); never writes. */
  read(): Promise<Snapshot> {
    return this.operation(async (deadline) =>
      this.#snapshot(await this.#fetch(deadline))
    );
  }

  /** The last seen document without I/O; see {@link LockStore.peek}. */
  peek(): Semaphore | undefined {
    if (this.#cache === undefined) return undefined;
    try {
      return this.parse(this.#cache);
    } catch {
      return undefined;
    }
  }

  /** Reads the stored text without parsing it; never writes. */
  readRaw(): Promise<{ raw: string | undefined; revision: number }> {
    return this.operation((deadline) => this.#fetch(deadline));
  }

  /** Writes `doc` if the key is still at `revision`; see {@link LockStore.replace}. */
  replace(revision: number, doc: Semaphore): Promise<boolean> {
    return this.operation(async (deadline) => {
      const raw = storedText(doc, this.key);
      const res = await this.port.txn({
        compare: [guard(this.#keyBytes, revision)],
        success: [{ put: { key: this.#keyBytes, value: bytes(raw) } }],
        failure: [],
      }, { deadline });
      // The key's version after this write is not known here: forget the
      // cache, so the next change starts from a fresh read.
      if (res.succeeded) {
        this.#cache = undefined;
        this.#cacheSeenAt = 0;
      }
      return res.succeeded;
    });
  }

  /** Applies `change` with compare-and-swap; see {@link LockStore.update}. */
  update(change: Change, options: UpdateOptions = {}): Promise<UpdateOutcome> {
    return this.operation((deadline) =>
      this.#update(change, deadline, options)
    );
  }

  /**
   * The compare-and-swap loop. A cached document may be used to compute a
   * write (the guard catches staleness), never to refuse, to skip a write,
   * or to fail on a document that does not parse: each of those is first
   * confirmed on a fresh read. What each retry costs is in {@link RetryBudget}.
   */
  async #update(
    change: Change,
    deadline: number,
    options: UpdateOptions,
  ): Promise<UpdateOutcome> {
    const budget = new RetryBudget(
      this.key,
      options.maxAttempts ?? this.#options.maxAttempts ?? 64,
    );
    let seen: Seen = this.#cache === undefined
      ? { stored: await this.#fetch(deadline), fresh: true }
      : { stored: this.#cache, fresh: false };
    for (;;) {
      const step = this.#compute(seen, change);
      if (step === "stale") {
        budget.free("a fresh read instead of a cached copy");
        seen = { stored: await this.#fetch(deadline), fresh: true };
        continue;
      }
      const { before, after } = step;
      if (step.raw === undefined) {
        return outcome(before, before, budget, seen.stored.revision, false);
      }
      const sent = await this.#send(seen.stored, step, options, deadline);
      if (sent.written) {
        return outcome(before, after, budget, sent.revision, true);
      }
      seen = { stored: sent.current, fresh: true };
      if (sent.onlyPause) {
        budget.free("the pause changed, not the document");
        continue;
      }
      budget.lost();
      seen = await this.#spread(seen, budget.attempts - 1);
    }
  }

  /**
   * Applies `change` to `seen`. Returns `"stale"` when `seen` is a cached
   * copy that would refuse, skip the write, or not parse: only a fresh read
   * may say so. The text to write is checked against every limit a reader
   * enforces (`storedText`).
   */
  #compute(seen: Seen, change: Change): "stale" | Computed {
    try {
      const before = this.parse(seen.stored);
      const after = change(before, { paused: this.#pauseRevision > 0 });
      if (after === undefined) {
        return seen.fresh ? { before, after: before, raw: undefined } : "stale";
      }
      return { before, after, raw: storedText(after, this.key) };
    } catch (error) {
      const confirmable = error instanceof CorruptDocumentError ||
        error instanceof SemaphoreRefusedError;
      if (confirmable && !seen.fresh) return "stale";
      throw error;
    }
  }

  /** Sends one guarded write of `step` over `state`; see the module documentation. */
  async #send(
    state: StoredDocument,
    step: Computed & { readonly raw: string },
    options: UpdateOptions,
    deadline: number,
  ): Promise<Sent> {
    const { before, after, raw } = step;
    const pauseSeen = this.#pauseRevision;
    const res = await this.port.txn({
      compare: [
        guard(this.#keyBytes, state.revision),
        guard(this.#pausedKey, pauseSeen),
      ],
      success: [
        { put: { key: this.#keyBytes, value: bytes(raw) } },
        ...companionOps(
          options.companions?.(before, after) ?? [],
          historySlotKey(this.key, state.version + 1),
        ),
      ],
      failure: [
        { range: { key: this.#keyBytes } },
        { range: { key: this.#pausedKey } },
      ],
    }, { deadline });
    const written = { raw, version: state.version + 1 };
    if (res.succeeded) {
      this.observe({ ...written, revision: res.revision }, res.revision);
      return { written: true, revision: res.revision };
    }
    const current = storedFrom(rangeOf(res.responses[0])?.kvs[0]);
    this.observe(current, res.revision);
    // A hedged or re-sent Txn may have committed on another member; this
    // copy's guard then fails on our own write. Exactly our bytes, exactly
    // one write after the version we read: that write was ours, even when
    // later writes hide it (then the key's history tells).
    const ours = res.resent === true
      ? await ownWriteRevision(this.port, written, {
        key: this.#keyBytes,
        name: this.key,
        guardRevision: state.revision,
        current,
        deadline,
      })
      : current.raw === written.raw && current.version === written.version
      ? current.revision
      : undefined;
    if (ours !== undefined) return { written: true, revision: ours };
    const pause = rangeOf(res.responses[1]);
    if (pause) this.#pauseRevision = pause.kvs[0]?.modRevision ?? 0;
    const onlyPause = this.#pauseRevision !== pauseSeen &&
      current.revision === state.revision;
    return { written: false, current, onlyPause };
  }

  /**
   * After the `lost`-th lost write: the failed guard returned the current
   * document, so the first retry goes at once; later ones spread out with
   * full jitter (4 ms doubling to 250 ms), so that writers who lost
   * together do not collide again. A newer document seen meanwhile (a
   * watch) is used then, as a cached copy.
   */
  async #spread(seen: Seen, lost: number): Promise<Seen> {
    if (lost <= 1) return seen;
    const random = this.#options.random ?? Math.random;
    const delay = backoffDelay({
      attempt: lost - 1,
      minMs: 4,
      maxMs: 250,
      jitter: "full",
      random,
    });
    await new Promise((r) => setTimeout(r, delay));
    const cached = this.#cache;
    return cached !== undefined && cached.revision > seen.stored.revision
      ? { stored: cached, fresh: false }
      : seen;
  }

  /**
   * Runs `operation` with one deadline for all its requests, and answers by
   * that deadline at the latest. No request is sent after it, so an
   * operation reported as timed out writes nothing later (one already in
   * flight may still have been applied: an unknown outcome, as with any
   * timed-out write).
   */
  operation<T>(operation: (deadline: number) => Promise<T>): Promise<T> {
    return withDeadline(
      this.#options.timeoutMs,
      this.port.endpoints,
      operation,
    );
  }

  /** Waits for a change of the document; see {@link LockStore.waitForChange}. */
  waitForChange(
    revision: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<"changed" | "timeout" | "aborted"> {
    return waitForKeyChange({
      port: this.port,
      key: this.#keyBytes,
      revision,
      timeoutMs,
      signal,
      revisionNow: async () => (await this.readRaw()).revision,
    });
  }

  /** Closes the port (when owned). */
  async close(): Promise<void> {
    if (this.#options.ownsPort ?? true) await this.port.close();
  }
}
