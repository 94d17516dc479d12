/**
 * The semaphore stored in etcd v3, changed only by compare-and-swap, over
 * the {@link EtcdPort} (the JSON gateway, or gRPC).
 *
 * Every change is one etcd Txn guarded by the key's `mod_revision` as last
 * seen (`0` for an absent key, which makes the first write
 * create-if-absent). When the guard fails the same Txn returns the current
 * document, so a conflict costs no extra read: the change is re-applied to
 * it and retried (bounded, with jitter). A document that does not parse is
 * never written. The store remembers the last document it saw (from reads,
 * writes, and the wait queue's watch), so an uncontended change costs one
 * request.
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

import { backoffDelay } from "../common/backoff.ts";
import { ContentionError, SemaphoreRefusedError } from "../common/errors.ts";
import { formatSemaphore, type Semaphore } from "../semaphore/document.ts";
import type {
  Change,
  LockStore,
  Snapshot,
  UpdateOptions,
  UpdateOutcome,
} from "../semaphore/lock_store.ts";
import { bytes, type EtcdPort, type KeyValue, rangeOf } from "./port.ts";
import { pausedKey } from "../semaphore/keys.ts";
import { waitForKeyChange } from "./key_change.ts";
import { withDeadline } from "./deadline.ts";
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
  /** Compare-and-swap attempts before giving up with {@link ContentionError}. Default 64. */
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
   * Records a document seen elsewhere (a watch event, a queue transaction);
   * an older one than already known is ignored. Returns the newest known.
   */
  observe(stored: StoredDocument): StoredDocument {
    if (this.#cache === undefined || stored.revision >= this.#cache.revision) {
      this.#cache = stored;
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

  async #fetch(deadline: number): Promise<StoredDocument> {
    if (this.#pauseRevision === 0) {
      const res = await this.port.range({ key: this.#keyBytes }, { deadline });
      return this.observe(storedFrom(res.kvs[0]));
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
    return this.observe(storedFrom(doc));
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
      const raw = formatSemaphore(doc);
      const res = await this.port.txn({
        compare: [{
          key: this.#keyBytes,
          target: "MOD",
          result: "EQUAL",
          value: revision,
        }],
        success: [{ put: { key: this.#keyBytes, value: bytes(raw) } }],
        failure: [],
      }, { deadline });
      // The key's version after this write is not known here: forget the
      // cache, so the next change starts from a fresh read.
      if (res.succeeded) this.#cache = undefined;
      return res.succeeded;
    });
  }

  /** Applies `change` with compare-and-swap; see {@link LockStore.update}. */
  update(change: Change, options: UpdateOptions = {}): Promise<UpdateOutcome> {
    return this.operation((deadline) =>
      this.#update(change, deadline, options)
    );
  }

  async #update(
    change: Change,
    deadline: number,
    options: UpdateOptions,
  ): Promise<UpdateOutcome> {
    const maxAttempts = options.maxAttempts ?? this.#options.maxAttempts ?? 64;
    const random = this.#options.random ?? Math.random;
    // A cached document may be stale: it may be used to write (the guard
    // catches staleness) but never to refuse or to skip a write.
    let state = this.#cache;
    let fresh = false;
    if (state === undefined) {
      state = await this.#fetch(deadline);
      fresh = true;
    }
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const before = this.parse(state);
      let after: Semaphore | undefined;
      try {
        after = change(before, { paused: this.#pauseRevision > 0 });
      } catch (error) {
        if (fresh || !(error instanceof SemaphoreRefusedError)) throw error;
        state = await this.#fetch(deadline);
        fresh = true;
        attempt--;
        continue;
      }
      if (after === undefined) {
        if (fresh) {
          return {
            before,
            after: before,
            written: false,
            attempts: attempt,
            revision: state.revision,
          };
        }
        state = await this.#fetch(deadline);
        fresh = true;
        attempt--;
        continue;
      }
      const raw = formatSemaphore(after);
      const pauseSeen = this.#pauseRevision;
      const res = await this.port.txn({
        compare: [{
          key: this.#keyBytes,
          target: "MOD",
          result: "EQUAL",
          value: state.revision,
        }, {
          key: this.#pausedKey,
          target: "MOD",
          result: "EQUAL",
          value: pauseSeen,
        }],
        success: [
          { put: { key: this.#keyBytes, value: bytes(raw) } },
          ...companionOps(options.companions?.(before, after) ?? []),
        ],
        failure: [
          { range: { key: this.#keyBytes } },
          { range: { key: this.#pausedKey } },
        ],
      }, { deadline });
      const written = { raw, version: state.version + 1 };
      if (res.succeeded) {
        this.observe({ ...written, revision: res.revision });
        return {
          before,
          after,
          written: true,
          attempts: attempt,
          revision: res.revision,
        };
      }
      const current = this.observe(
        storedFrom(rangeOf(res.responses[0])?.kvs[0]),
      );
      // A hedged or re-sent Txn may have committed on another member; this
      // copy's guard then fails on our own write. Exactly our bytes, exactly
      // one write after the version we read: that write was ours.
      if (current.raw === written.raw && current.version === written.version) {
        return {
          before,
          after,
          written: true,
          attempts: attempt,
          revision: current.revision,
        };
      }
      const pause = rangeOf(res.responses[1]);
      if (pause) this.#pauseRevision = pause.kvs[0]?.modRevision ?? 0;
      // Only the pause changed: apply the change again at once, uncounted.
      if (
        this.#pauseRevision !== pauseSeen && current.revision === state.revision
      ) {
        state = current;
        fresh = true;
        attempt--;
        continue;
      }
      state = current;
      fresh = true;
      // The failed guard returned the current document: the first retry goes
      // at once; later ones spread out with full jitter (4 ms doubling to
      // 250 ms), so that writers who lost together do not collide again.
      if (attempt > 1) {
        const delay = backoffDelay({
          attempt: attempt - 1,
          minMs: 4,
          maxMs: 250,
          jitter: "full",
          random,
        });
        await new Promise((r) => setTimeout(r, delay));
        const cached = this.#cache;
        if (cached !== undefined && cached.revision > state.revision) {
          state = cached;
        }
      }
    }
    throw new ContentionError(
      `gave up on ${this.key} after ${maxAttempts} conflicting writes`,
    );
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
