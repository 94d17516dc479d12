/**
 * The operator's commands on a semaphore in etcd (the {@link SemaphoreAdmin}
 * that locksmithctl uses): the whole state in one read, pause and resume
 * (`<key>/paused`), the stored slot TTL (`<key>/settings`, changed by
 * compare-and-swap, never over settings that do not parse), the reclaim of
 * stale slots, a watch that re-reads after every change, and the table of
 * every group.
 *
 * @module
 */

import { backoffDelay } from "../../common/backoff.ts";
import {
  ContentionError,
  CorruptDocumentError,
  oneLine,
} from "../../common/errors.ts";
import { formatDuration } from "../../common/duration.ts";
import type {
  GroupSummary,
  SemaphoreAdmin,
  WatchHandlers,
} from "../../semaphore/admin.ts";
import {
  DEFAULT_SEMAPHORE_KEY,
  groupOfKey,
  pausedKey,
  semaphoreKeyOf,
  SEMAPHORES_PREFIX,
  settingsKey,
} from "../../semaphore/keys.ts";
import {
  type HolderState,
  MAX_RECLAIMS_PER_TXN,
  type SemaphoreView,
  staleHolders,
} from "../../semaphore/semaphore_view.ts";
import {
  parseSettings,
  type StoredSettings,
  withSlotTtl,
} from "../../semaphore/settings.ts";
import type { EtcdLockStore } from "./etcd_lock_store.ts";
import { HedgedWatch } from "../client/hedged_watch.ts";
import { bytes, prefixEnd, rangeOf, textOf } from "../client/port.ts";
import {
  readSemaphoreView,
  reclaimHolders,
  VIEW_OPS,
  viewFrom,
  viewOps,
} from "./etcd_semaphore_view.ts";
import { settingsText } from "./stored_document.ts";
import { readHistories } from "./history_read.ts";
import type { GroupHistory } from "../../semaphore/history.ts";

/** Rounds of read-then-write before a contended change gives up. */
const MAX_ROUNDS = 8;

/** Longest wait for a corrupt document to change before reading it again anyway. */
const REPAIR_WAIT_MS = 30_000;

/** Semaphores read per transaction by {@link EtcdSemaphoreAdmin.groups} (etcd allows 128 operations). */
const GROUPS_PER_TXN = 20;

/** The {@link SemaphoreAdmin} of one semaphore in etcd. */
export class EtcdSemaphoreAdmin implements SemaphoreAdmin {
  readonly #store: EtcdLockStore;
  readonly #now: () => Date;

  /**
   * Creates the admin of `store`'s semaphore.
   *
   * @param store the semaphore's store (closed by {@link EtcdSemaphoreAdmin.close})
   * @param now the clock, for the time recorded with a pause
   */
  constructor(store: EtcdLockStore, now: () => Date = () => new Date()) {
    this.#store = store;
    this.#now = now;
  }

  /** The semaphore key. */
  get key(): string {
    return this.#store.key;
  }

  /** Reads the whole state in one request; see {@link SemaphoreAdmin.view}. */
  view(): Promise<SemaphoreView> {
    return readSemaphoreView(this.#store);
  }

  /** Pauses or resumes; see {@link SemaphoreAdmin.setPaused}. */
  setPaused(paused: boolean, by: string): Promise<boolean> {
    const store = this.#store;
    const key = bytes(pausedKey(store.key));
    // A hedged copy of the write may commit first and make the copy that
    // answers fail its guard: each branch tells its own write by what the
    // failure reads (see EtcdPort.txn).
    return store.operation(async (deadline) => {
      if (!paused) {
        for (let round = 1; round <= MAX_ROUNDS; round++) {
          const seen = (await store.port.range({ key }, { deadline })).kvs[0];
          if (seen === undefined) return false;
          const res = await store.port.txn({
            compare: [{
              key,
              target: "MOD",
              result: "EQUAL",
              value: seen.modRevision,
            }],
            success: [{ deleteRange: { key } }],
            failure: [{ range: { key } }],
          }, { deadline });
          // Gone either way: the pause this read saw has been lifted.
          if (
            res.succeeded || rangeOf(res.responses[0])?.kvs[0] === undefined
          ) {
            return true;
          }
        }
        throw new ContentionError(
          `gave up on ${
            pausedKey(store.key)
          } after ${MAX_ROUNDS} conflicting writes`,
        );
      }
      const value = JSON.stringify({ since: this.#now().toISOString(), by });
      const res = await store.port.txn({
        compare: [{ key, target: "VERSION", result: "EQUAL", value: 0 }],
        success: [{ put: { key, value: bytes(value) } }],
        failure: [{ range: { key } }],
      }, { deadline });
      if (res.succeeded) return true;
      // Sent more than once, and exactly our bytes (our time to the
      // millisecond), written once: a copy of this write committed first.
      const now = rangeOf(res.responses[0])?.kvs[0];
      return res.resent === true && now !== undefined && now.version === 1 &&
        textOf(now.value) === value;
    });
  }

  /** Stores or removes the slot TTL; see {@link SemaphoreAdmin.setSlotTtl}. */
  setSlotTtl(
    seconds: number | undefined,
  ): Promise<{ before: StoredSettings; after: StoredSettings }> {
    const store = this.#store;
    const name = settingsKey(store.key);
    const key = bytes(name);
    return store.operation(async (deadline) => {
      for (let round = 1; round <= MAX_ROUNDS; round++) {
        const res = await store.port.range({ key }, { deadline });
        const kv = res.kvs[0];
        const raw = settingsText(kv);
        const before = parseSettings(raw);
        let next: string | undefined;
        if (before.kind === "corrupt") {
          if (seconds !== undefined) {
            throw new CorruptDocumentError(
              name,
              `${before.defect}; 'locksmithctl set-ttl default' removes it`,
              raw ?? "",
            );
          }
        } else {
          next = withSlotTtl(raw, seconds);
        }
        if (next === "{}") next = undefined;
        if (next === raw) return { before, after: before };
        const write = await store.port.txn({
          compare: [{
            key,
            target: "MOD",
            result: "EQUAL",
            value: kv?.modRevision ?? 0,
          }],
          success: [
            next === undefined
              ? { deleteRange: { key } }
              : { put: { key, value: bytes(next) } },
          ],
          failure: [{ range: { key } }],
        }, { deadline });
        // A failed guard over exactly the value we wrote, written after our
        // read: a hedged copy of this write committed first.
        const now = write.succeeded
          ? undefined
          : rangeOf(write.responses[0])?.kvs[0];
        if (
          write.succeeded ||
          (settingsText(now) === next &&
            (now?.modRevision ?? Infinity) > (kv?.modRevision ?? 0))
        ) {
          return { before, after: parseSettings(next) };
        }
      }
      throw new ContentionError(
        `gave up on ${name} after ${MAX_ROUNDS} conflicting writes`,
      );
    });
  }

  /** Reclaims the stale slots; see {@link SemaphoreAdmin.reclaimStale}. */
  async reclaimStale(): Promise<readonly HolderState[]> {
    const reclaimed: HolderState[] = [];
    for (let conflicts = 0; conflicts < MAX_ROUNDS;) {
      const view = await this.view();
      const stale = staleHolders(view).slice(0, MAX_RECLAIMS_PER_TXN);
      if (stale.length === 0) return reclaimed;
      if (await reclaimHolders(this.#store, view, stale.map((h) => h.id))) {
        reclaimed.push(...stale);
      } else {
        conflicts++;
      }
    }
    throw new ContentionError(
      `gave up reclaiming stale slots of ${this.key} after ${MAX_ROUNDS} conflicting writes`,
    );
  }

  /** Follows every change; see {@link SemaphoreAdmin.watch}. */
  async watch(handlers: WatchHandlers, signal: AbortSignal): Promise<void> {
    for (let failures = 0; !signal.aborted;) {
      let view: SemaphoreView;
      try {
        view = await this.view();
        failures = 0;
      } catch (error) {
        if (await this.#awaitRepair(error, handlers, signal)) continue;
        const delay = backoffDelay({
          attempt: ++failures,
          minMs: 1_000,
          maxMs: 30_000,
        });
        handlers.onTrouble(
          `cannot read ${this.key}: ${oneLine(error)}; retrying in ${
            formatDuration(delay)
          }`,
        );
        await sleep(delay, signal);
        continue;
      }
      handlers.onView(view);
      const lost = await this.#follow(view.revision, handlers, signal);
      if (lost !== undefined) handlers.onTrouble(`${lost}; reading again`);
    }
  }

  /**
   * After a view met a corrupt document: etcd answers, so instead of
   * backing off blindly, waits for the document's next change (at most
   * {@link REPAIR_WAIT_MS}) and returns `true`: the caller reads again at
   * once, so a repair shows as soon as it is made. `false` for any other
   * error, or when etcd cannot be read (the caller backs off).
   */
  async #awaitRepair(
    error: unknown,
    handlers: WatchHandlers,
    signal: AbortSignal,
  ): Promise<boolean> {
    if (!(error instanceof CorruptDocumentError)) return false;
    let seen: { raw: string | undefined; revision: number };
    try {
      seen = await this.#store.readRaw();
    } catch {
      return false;
    }
    // Changed since the view: read it again at once.
    if (seen.raw !== error.raw) return true;
    handlers.onTrouble(
      `${oneLine(error)}; waiting for it to change (reading again within ${
        formatDuration(REPAIR_WAIT_MS)
      })`,
    );
    await this.#store.waitForChange(seen.revision, REPAIR_WAIT_MS, signal);
    return true;
  }

  /** Re-reads after every change from `revision` on; resolves with why the watch was lost, or on abort. */
  #follow(
    revision: number,
    handlers: WatchHandlers,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    const key = bytes(this.key);
    return new Promise((resolve) => {
      let reading = false;
      let again = false;
      let done = false;
      const finish = (reason: string | undefined) => {
        if (done) return;
        done = true;
        watch.cancel();
        signal.removeEventListener("abort", onAbort);
        resolve(reason);
      };
      const onAbort = () => finish(undefined);
      const reread = async () => {
        if (reading) {
          again = true;
          return;
        }
        reading = true;
        try {
          do {
            again = false;
            const view = await this.view();
            if (done) return;
            handlers.onView(view);
          } while (again);
        } catch (error) {
          finish(`cannot read ${this.key}: ${oneLine(error)}`);
        } finally {
          reading = false;
        }
      };
      const watch = new HedgedWatch(this.#store.port, [{
        key,
        rangeEnd: prefixEnd(bytes(`${this.key}/`)),
        startRevision: revision + 1,
      }], {
        onEvents: () => void reread(),
        onLost: (reason) => finish(reason),
      });
      if (signal.aborted) return finish(undefined);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The reboot history; see {@link SemaphoreAdmin.history}. */
  async history(allGroups: boolean): Promise<GroupHistory[]> {
    const keys = allGroups
      ? (await this.#store.operation((deadline) =>
        listSemaphores(this.#store, deadline)
      )).map((s) => s.key)
      : [this.key];
    return await readHistories(this.#store, keys);
  }

  /** Every semaphore of the fleet; see {@link SemaphoreAdmin.groups}. */
  groups(): Promise<GroupSummary[]> {
    const store = this.#store;
    return store.operation(async (deadline) => {
      const sorted = await listSemaphores(store, deadline);
      const out: GroupSummary[] = [];
      for (let i = 0; i < sorted.length; i += GROUPS_PER_TXN) {
        const chunk = sorted.slice(i, i + GROUPS_PER_TXN);
        const res = await store.port.txn({
          compare: [],
          success: chunk.flatMap(({ key }) => viewOps(key, 1)),
          failure: [],
        }, { deadline });
        chunk.forEach(({ key, group }, j) => {
          const results = res.responses.slice(j * VIEW_OPS, (j + 1) * VIEW_OPS);
          try {
            out.push({ group, view: viewFrom(key, results, res.revision) });
          } catch (error) {
            out.push({ group, key, error: oneLine(error) });
          }
        });
      }
      return out;
    });
  }

  /** Closes the store. */
  close(): Promise<void> {
    return this.#store.close();
  }
}

/** Every semaphore key of the fleet (the default one always), by group name. */
async function listSemaphores(
  store: EtcdLockStore,
  deadline: number,
): Promise<{ key: string; group: string }[]> {
  const prefix = bytes(SEMAPHORES_PREFIX);
  const listing = await store.port.range({
    key: prefix,
    rangeEnd: prefixEnd(prefix),
    keysOnly: true,
  }, { deadline });
  const keys = new Set<string>([DEFAULT_SEMAPHORE_KEY]);
  for (const kv of listing.kvs) {
    const text = textOf(kv.key);
    const key = text === undefined ? undefined : semaphoreKeyOf(text);
    if (key !== undefined && groupOfKey(key) !== undefined) keys.add(key);
  }
  return [...keys].map((key) => ({ key, group: groupOfKey(key)! }))
    .sort((a, b) => a.group < b.group ? -1 : a.group > b.group ? 1 : 0);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
