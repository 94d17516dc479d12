/**
 * The semaphore stored in etcd v3, changed only by compare-and-swap.
 *
 * Every change is one etcd Txn guarded by the key's `mod_revision` as last
 * seen (`0` for an absent key, which makes the first write create-if-absent).
 * When the guard fails the same Txn returns the current document, so a
 * conflict costs no extra read: the change is re-applied to it and retried
 * (bounded, with jitter). A document that does not parse is never written.
 * Waiting uses one long-lived watch of the key, which also keeps the cached
 * document fresh, so an uncontended change costs one request.
 *
 * Waiters queue under `<key>/waiters/<id>`: joining is one Txn that re-creates
 * the waiter's key, reads the document and counts the waiters (all of whom
 * joined earlier); the watch, with previous values, counts down those ahead
 * as they leave. Only a waiter with fewer waiters ahead than free slots
 * tries, so a freed slot costs one lock instead of a herd of lost ones.
 *
 * @module
 */

import type { Etcd3, IKeyValue, Watcher } from "etcd3";
import {
  ContentionError,
  CorruptDocumentError,
  EtcdUnavailableError,
  SemaphoreRefusedError,
} from "../common/errors.ts";
import {
  formatSemaphore,
  INITIAL_SEMAPHORE,
  parseSemaphore,
  type Semaphore,
} from "../semaphore/document.ts";
import {
  connectEtcd,
  describeEtcdError,
  type EtcdConnectionOptions,
} from "./grpc_client.ts";
import { queryEscape, semaphoreKey } from "../semaphore/keys.ts";
import { Buffer } from "node:buffer";
import { formatDuration } from "../common/duration.ts";
import type {
  Change,
  LockStore,
  Snapshot,
  UpdateOptions,
  UpdateOutcome,
  WaitResult,
} from "../semaphore/lock_store.ts";

/** Tuning of {@link EtcdLockStore}; defaults suit both the tools and the daemon. */
export interface EtcdLockStoreOptions {
  /** Endpoints, named in error messages. */
  readonly endpoints: readonly string[];
  /** Deadline of each whole operation (read, or update with its retries), in ms. */
  readonly timeoutMs: number;
  /** Compare-and-swap attempts before giving up with {@link ContentionError}. Default 64. */
  readonly maxAttempts?: number;
  /** Random source in [0, 1) for the retry jitter. Default `Math.random`. */
  readonly random?: () => number;
}

/** This store's place in the wait queue. */
interface Queued {
  readonly id: string;
  readonly key: string;
  /** Revision of the join: our key's create_revision. */
  readonly joinedAt: number;
  /** Waiters that joined before us and have not left, as last seen. */
  ahead: number;
  /** Our key was deleted by someone else (evicted): join again. */
  evicted: boolean;
}

interface Cached {
  raw: string | undefined;
  revision: number;
  /** The key's `version` (writes since creation); `0` when absent. */
  version: number;
  /** The stored bytes are not valid UTF-8 (`raw` is then a lossy rendering). */
  invalidUtf8?: boolean;
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true });
const lossyDecoder = new TextDecoder();

function cachedFrom(kv: IKeyValue | undefined): Cached {
  if (kv === undefined) return { raw: undefined, revision: 0, version: 0 };
  const revision = Number(kv.mod_revision);
  const version = Number(kv.version);
  try {
    return { raw: strictDecoder.decode(kv.value), revision, version };
  } catch {
    // Never parse a lossy rendering: U+FFFD in a holder id would be written
    // back as different bytes. The document is corrupt as stored.
    return {
      raw: lossyDecoder.decode(kv.value),
      revision,
      version,
      invalidUtf8: true,
    };
  }
}

/** The {@link LockStore} over an etcd v3 client. */
export class EtcdLockStore implements LockStore {
  /** The etcd key of the semaphore. */
  readonly key: string;
  readonly #client: Etcd3;
  readonly #options: EtcdLockStoreOptions;
  #cache: Cached | undefined;
  #watcher: Promise<Watcher> | undefined;
  #waiters = new Set<(event: "change" | "disconnected") => void>();
  #watchConnected = false;
  #queued: Queued | undefined;
  #queueRevision = 0;

  /**
   * Creates an `EtcdLockStore`.
   *
   * @param client an etcd client; closed by {@link EtcdLockStore.close}
   * @param key the semaphore key (see `semaphoreKey`)
   * @param options endpoints for messages, deadline, retry tuning
   */
  constructor(client: Etcd3, key: string, options: EtcdLockStoreOptions) {
    this.#client = client;
    this.key = key;
    this.#options = options;
  }

  /** The latest revision of a seen change; see {@link LockStore.revision}. */
  get revision(): number {
    return Math.max(this.#cache?.revision ?? 0, this.#queueRevision);
  }

  get #waiterPrefix(): string {
    return `${this.key}/waiters/`;
  }

  #waiterKey(id: string): string {
    return `${this.#waiterPrefix}${queryEscape(id)}`;
  }

  /** Joins the wait queue at the back and reads the document; see {@link LockStore.joinQueue}. */
  joinQueue(id: string): Promise<Snapshot> {
    return this.#guard(async (deadline) => {
      const key = this.#waiterKey(id);
      const prefix = Buffer.from(this.#waiterPrefix);
      const end = Buffer.from(`${this.key}/waiters0`); // "0" follows "/": the prefix's end
      // A key left from before (a restart while waiting) is deleted first:
      // etcd allows no delete and put of one key in a single Txn.
      let res;
      for (let attempt = 1;; attempt++) {
        res = await this.#client.if(key, "Version", "==", 0)
          .then(
            this.#client.put(key).value(id),
            this.#client.get(this.key),
            {
              request_range: { key: prefix, range_end: end, count_only: true },
            },
          )
          .else(this.#client.delete().key(key))
          .options(this.#callOptions(deadline))
          .commit();
        if (res.succeeded) break;
        if (attempt === 3) {
          throw new ContentionError(
            `could not join the wait queue of ${this.key}`,
          );
        }
      }
      const joinedAt = Number(res.header.revision);
      const count = Number(res.responses[2]?.response_range?.count ?? 1);
      this.#queued = {
        id,
        key,
        joinedAt,
        ahead: Math.max(0, count - 1),
        evicted: false,
      };
      return this.#snapshot(
        this.#remember(cachedFrom(res.responses[1]?.response_range?.kvs[0])),
      );
    });
  }

  /** Leaves the wait queue and reads the document; see {@link LockStore.leaveQueue}. */
  leaveQueue(id: string): Promise<Snapshot> {
    return this.#guard(async (deadline) => {
      const res = await this.#client.if(this.key, "Mod", ">", -1)
        .then(
          this.#client.delete().key(this.#waiterKey(id)),
          this.#client.get(this.key),
        )
        .options(this.#callOptions(deadline))
        .commit();
      if (this.#queued?.id === id) this.#queued = undefined;
      return this.#snapshot(
        this.#remember(cachedFrom(res.responses[1]?.response_range?.kvs[0])),
      );
    });
  }

  /** Waiters ahead of this store's id; see {@link LockStore.waitersAhead}. */
  waitersAhead(): number | undefined {
    const q = this.#queued;
    return q === undefined || q.evicted ? undefined : q.ahead;
  }

  /** Ids of the oldest waiters ahead; see {@link LockStore.readWaitersAhead}. */
  readWaitersAhead(limit: number): Promise<string[]> {
    return this.#guard(async (deadline) => {
      const q = this.#queued;
      if (q === undefined || limit <= 0) return [];
      const res = await this.#client.getAll().prefix(this.#waiterPrefix)
        .sort("Create", "Ascend").limit(limit + 1)
        .options(this.#callOptions(deadline)).exec();
      return res.kvs
        .filter((kv) => Number(kv.create_revision) < q.joinedAt)
        .slice(0, limit)
        .map((kv) => lossyDecoder.decode(kv.value));
    });
  }

  /** Counts down the waiters ahead as they leave; notices our own eviction. */
  #waiterGone(
    key: string,
    revision: number,
    createdAt: number | undefined,
  ): void {
    const q = this.#queued;
    if (q === undefined || revision <= q.joinedAt) return;
    if (key === q.key) q.evicted = true;
    else if (createdAt !== undefined && createdAt < q.joinedAt && q.ahead > 0) {
      q.ahead--;
    } else return;
    this.#queueRevision = Math.max(this.#queueRevision, revision);
    this.#notify();
  }

  #snapshot(cached: Cached): Snapshot {
    if (cached.invalidUtf8) {
      throw new CorruptDocumentError(
        this.key,
        "not valid UTF-8",
        cached.raw ?? "",
      );
    }
    const doc = cached.raw === undefined
      ? INITIAL_SEMAPHORE
      : parseSemaphore(cached.raw, this.key);
    return { doc, raw: cached.raw, revision: cached.revision };
  }

  #remember(cached: Cached): Cached {
    if (this.#cache === undefined || cached.revision >= this.#cache.revision) {
      this.#cache = cached;
    }
    if (cached.revision > 0) this.#notify();
    return cached;
  }

  /**
   * Call options for one request of an operation that must be answered by
   * `deadline` (ms since the epoch); throws instead of sending a request
   * after it, so nothing is written once the caller was told "timed out".
   */
  #callOptions(deadline: number): { deadline: Date } {
    if (Date.now() >= deadline) throw this.#timeoutError();
    return { deadline: new Date(deadline) };
  }

  #timeoutError(): EtcdUnavailableError {
    const { timeoutMs, endpoints } = this.#options;
    return new EtcdUnavailableError(
      `etcd at ${endpoints.join(",")} did not answer within ${
        formatDuration(timeoutMs)
      }`,
    );
  }

  async #fetch(deadline: number): Promise<Cached> {
    const res = await this.#client.get(this.key).options(
      this.#callOptions(deadline),
    ).exec();
    return this.#remember(cachedFrom(res.kvs[0]));
  }

  /** Reads the current document (linearizable); never writes. */
  read(): Promise<Snapshot> {
    return this.#guard(async (deadline) =>
      this.#snapshot(await this.#fetch(deadline))
    );
  }

  /** The last seen document without I/O; see {@link LockStore.peek}. */
  peek(): Semaphore | undefined {
    if (this.#cache === undefined) return undefined;
    try {
      return this.#snapshot(this.#cache).doc;
    } catch {
      return undefined;
    }
  }

  /** Reads the stored text without parsing it; never writes. */
  readRaw(): Promise<{ raw: string | undefined; revision: number }> {
    return this.#guard((deadline) => this.#fetch(deadline));
  }

  /** Writes `doc` if the key is still at `revision`; see {@link LockStore.replace}. */
  replace(revision: number, doc: Semaphore): Promise<boolean> {
    return this.#guard(async (deadline) => {
      const raw = formatSemaphore(doc);
      const res = await this.#client.if(this.key, "Mod", "==", revision)
        .then(this.#client.put(this.key).value(raw))
        .options(this.#callOptions(deadline))
        .commit();
      // The key's version after this write is not known here: forget the
      // cache, so the next change starts from a fresh read.
      if (res.succeeded) this.#cache = undefined;
      return res.succeeded;
    });
  }

  /** Applies `change` with compare-and-swap; see {@link LockStore.update}. */
  update(change: Change, options: UpdateOptions = {}): Promise<UpdateOutcome> {
    return this.#guard((deadline) => this.#update(change, deadline, options));
  }

  async #update(
    change: Change,
    deadline: number,
    options: UpdateOptions,
  ): Promise<UpdateOutcome> {
    const maxAttempts = options.maxAttempts ?? this.#options.maxAttempts ?? 64;
    const queued = this.#queued;
    const dequeue = [
      ...(options.leaveQueue && queued ? [queued.key] : []),
      ...(options.evict ?? []).map((id) => this.#waiterKey(id)),
    ].map((key) => this.#client.delete().key(key));
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
      const before = this.#snapshot(state).doc;
      let after: Semaphore | undefined;
      try {
        after = change(before);
      } catch (error) {
        if (fresh || !(error instanceof SemaphoreRefusedError)) throw error;
        state = await this.#fetch(deadline);
        fresh = true;
        attempt--;
        continue;
      }
      if (after === undefined) {
        if (fresh) {
          return { before, after: before, written: false, attempts: attempt };
        }
        state = await this.#fetch(deadline);
        fresh = true;
        attempt--;
        continue;
      }
      const raw = formatSemaphore(after);
      const res = await this.#client
        .if(this.key, "Mod", "==", state.revision)
        .then(this.#client.put(this.key).value(raw), ...dequeue)
        .else(this.#client.get(this.key))
        .options(this.#callOptions(deadline))
        .commit();
      const written = { raw, version: state.version + 1 };
      if (res.succeeded) {
        if (options.leaveQueue && this.#queued === queued) {
          this.#queued = undefined;
        }
        this.#remember({ ...written, revision: Number(res.header.revision) });
        return { before, after, written: true, attempts: attempt };
      }
      const range = res.responses[0]?.response_range;
      const current = this.#remember(cachedFrom(range?.kvs[0]));
      // The client re-sends a Txn whose answer was lost; if the first one
      // committed, the re-sent guard fails on our own write. Exactly our
      // bytes, exactly one write after the version we read: that write was ours.
      if (current.raw === written.raw && current.version === written.version) {
        if (options.leaveQueue && this.#queued === queued) {
          this.#queued = undefined;
        }
        return { before, after, written: true, attempts: attempt };
      }
      state = current;
      fresh = true;
      // The failed guard returned the current document: the first retry goes
      // at once; later ones spread out with full jitter (4 ms doubling to
      // 250 ms), so that writers who lost together do not collide again.
      if (attempt > 1) {
        const cap = Math.min(250, 2 ** attempt);
        await new Promise((r) => setTimeout(r, random() * cap));
        // The watch may have seen newer writes while we slept: start from those.
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
   * that deadline at the latest. Requests carry the deadline and none is sent
   * after it, so an operation reported as timed out writes nothing later
   * (one already in flight may still have been applied: an unknown outcome,
   * as with any timed-out write).
   */
  async #guard<T>(operation: (deadline: number) => Promise<T>): Promise<T> {
    const { timeoutMs } = this.#options;
    const deadlineAt = Date.now() + timeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.#timeoutError()), timeoutMs);
    });
    const running = operation(deadlineAt);
    running.catch(() => {}); // a late failure after the deadline answered is expected
    try {
      return await Promise.race([running, deadline]);
    } catch (error) {
      if (
        error instanceof SemaphoreRefusedError ||
        error instanceof CorruptDocumentError ||
        error instanceof ContentionError ||
        error instanceof EtcdUnavailableError
      ) throw error;
      throw describeEtcdError(error, this.#options);
    } finally {
      clearTimeout(timer);
    }
  }

  #notify(event: "change" | "disconnected" = "change"): void {
    for (const wake of this.#waiters) wake(event);
  }

  #watch(fromRevision: number): Promise<Watcher> {
    this.#watcher ??= (async () => {
      // One watch for the document and its queue (`<key>/waiters/...`).
      const builder = this.#client.watch().prefix(this.key).withPreviousKV();
      if (fromRevision > 0) builder.startRevision(String(fromRevision + 1));
      const watcher = await builder.create();
      this.#watchConnected = true;
      watcher.on("connected", () => {
        this.#watchConnected = true;
      });
      watcher.on("disconnected", () => {
        this.#watchConnected = false;
        this.#notify("disconnected");
      });
      const keyOf = (kv: IKeyValue) => lossyDecoder.decode(kv.key);
      watcher.on("put", (kv) => {
        if (keyOf(kv) === this.key) this.#remember(cachedFrom(kv));
      });
      watcher.on("delete", (kv, previous) => {
        const key = keyOf(kv);
        const revision = Number(kv.mod_revision);
        if (key === this.key) {
          this.#remember({ raw: undefined, revision, version: 0 });
        } else if (key.startsWith(this.#waiterPrefix)) {
          this.#waiterGone(
            key,
            revision,
            previous ? Number(previous.create_revision) : undefined,
          );
        }
      });
      // The client reconnects watchers by itself; errors must not crash us.
      watcher.on("error", () => {});
      return watcher;
    })().catch((error) => {
      this.#watcher = undefined;
      throw error;
    });
    return this.#watcher;
  }

  /** Waits for a change after `revision`; see {@link LockStore.waitForChange}. */
  async waitForChange(
    revision: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<WaitResult> {
    if (this.revision > revision) return "changed";
    if (signal?.aborted) return "aborted";
    return await new Promise<WaitResult>((resolve) => {
      let done = false;
      const finish = (result: WaitResult) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearTimeout(connectTimer);
        this.#waiters.delete(wake);
        signal?.removeEventListener("abort", onAbort);
        resolve(result);
      };
      const wake = (event: "change" | "disconnected") => {
        if (this.revision > revision) finish("changed");
        else if (event === "disconnected") finish("disconnected");
      };
      const onAbort = () => finish("aborted");
      const timer = setTimeout(() => finish("timeout"), timeoutMs);
      // A watch that is not up within the store's timeout (etcd down) tells
      // nothing: say so, and let the caller check with a request.
      const connectTimer = setTimeout(() => {
        if (!this.#watchConnected) finish("disconnected");
      }, Math.min(timeoutMs, this.#options.timeoutMs));
      this.#waiters.add(wake);
      signal?.addEventListener("abort", onAbort);
      this.#watch(revision).catch(() => finish("disconnected"));
    });
  }

  /** Closes the watch and the etcd connection. */
  async close(): Promise<void> {
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher) await watcher.then((w) => w.cancel()).catch(() => {});
    this.#client.close();
  }
}

/**
 * Connects to etcd and returns the {@link LockStore} of `group`'s semaphore
 * (the fleet-wide one when `group` is empty or absent).
 *
 * @example
 * ```ts
 * import { lockSlot, openEtcdLockStore } from "../mod.ts";
 *
 * const store = await openEtcdLockStore({ endpoints: ["http://127.0.0.1:2379"], timeoutMs: 5_000 });
 * try {
 *   await lockSlot(store, "69d27b356a94476da859461d3a3bc6fd");
 * } finally {
 *   await store.close();
 * }
 * ```
 */
export async function openEtcdLockStore(
  options: EtcdConnectionOptions,
  group?: string,
): Promise<LockStore> {
  return new EtcdLockStore(
    await connectEtcd(options),
    semaphoreKey(group),
    options,
  );
}
