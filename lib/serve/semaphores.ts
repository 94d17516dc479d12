/**
 * The semaphores of the FleetLock groups a server has seen: one long-lived
 * {@link LockStore} and one {@link SlotBatcher} per group, opened on first
 * use through an injected factory (so this module never knows etcd), with
 * the configured slot counts applied once per group.
 *
 * The number of open groups is bounded: past the bound, the group used
 * least recently and idle is closed (a client could otherwise open one
 * store per made-up group name).
 *
 * @module
 */

import type { Semaphore } from "../semaphore/document.ts";
import type { LockStore } from "../semaphore/lock_store.ts";
import { type CommitReport, SlotBatcher, type SlotVerdict } from "./batch.ts";

/** Opens the store of a FleetLock group's semaphore (see `fleetLockKey`). */
export type OpenStore = (group: string) => Promise<LockStore>;

/** etcd operations timed for metrics. */
export type EtcdOperation = "update" | "read";

/** Options of {@link GroupSemaphores}. */
export interface GroupSemaphoresOptions {
  /** Opens the store of a group; called once per group while it stays open. */
  readonly openStore: OpenStore;
  /** Slot counts per group, applied to the stored document once (see {@link GroupSemaphores.applySlots}). */
  readonly slots?: ReadonlyMap<string, number>;
  /** Most groups kept open (default 64). */
  readonly maxOpenGroups?: number;
  /** Called after each etcd operation with its duration. */
  readonly onEtcd?: (
    operation: EtcdOperation,
    seconds: number,
    ok: boolean,
  ) => void;
  /** Called after each commit (a batch of calls). */
  readonly onCommit?: (group: string, report: CommitReport) => void;
  /** Monotonic clock in ms. Default `performance.now`. */
  readonly now?: () => number;
}

interface Entry {
  readonly group: string;
  readonly ready: Promise<SlotBatcher>;
  /** Operations using the entry now; it is never closed while above 0. */
  users: number;
}

/** One semaphore per group; see the module documentation. */
export class GroupSemaphores {
  readonly #options: GroupSemaphoresOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;
  /** Groups whose configured slot count was stored. */
  readonly #slotsApplied = new Set<string>();
  #closed = false;

  /**
   * Creates the registry; no store is opened before the first use.
   *
   * @param options the store factory, slot counts, bounds and callbacks
   */
  constructor(options: GroupSemaphoresOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Groups with an open (or opening) store, least recently used first. */
  get groups(): string[] {
    return [...this.#entries.keys()];
  }

  /** pre-reboot: takes a slot of `group` for `id` (idempotent). */
  preReboot(group: string, id: string): Promise<SlotVerdict> {
    return this.#use(group, (b) => b.submit({ op: "lock", id }));
  }

  /** steady-state: releases the slot of `id` in `group` (idempotent). */
  steadyState(group: string, id: string): Promise<SlotVerdict> {
    return this.#use(group, (b) => b.submit({ op: "unlock", id }));
  }

  /**
   * Stores the configured slot count of every group (writing nothing where
   * it is already right). Returns the failures by group; a group that
   * failed gets its count with its first commit instead.
   */
  async applySlots(): Promise<Map<string, unknown>> {
    const failures = new Map<string, unknown>();
    await Promise.all(
      [...(this.#options.slots ?? new Map())].map(async ([group, max]) => {
        try {
          await this.#use(group, (b) => b.applyMax(max));
        } catch (error) {
          failures.set(group, error);
        }
      }),
    );
    return failures;
  }

  /** Reads the raw document of `group` (default `default`): resolves when etcd answered. */
  async ping(group = "default"): Promise<void> {
    await this.#use(group, (b) => this.#timed("read", () => b.store.readRaw()));
  }

  /**
   * Reads the document of every open group, for metrics. A group whose read
   * fails shows its last seen document, or is left out.
   */
  async documents(): Promise<Map<string, Semaphore>> {
    const docs = new Map<string, Semaphore>();
    await Promise.all([...this.#entries.values()].map(async (entry) => {
      try {
        await this.#with(entry, async (batcher) => {
          try {
            const snapshot = await this.#timed(
              "read",
              () => batcher.store.read(),
            );
            docs.set(entry.group, snapshot.doc);
          } catch {
            const seen = batcher.store.peek();
            if (seen !== undefined) docs.set(entry.group, seen);
          }
        });
      } catch {
        // The store did not open: nothing to show.
      }
    }));
    return docs;
  }

  /** Closes every store. Call after the last operation finished. */
  async close(): Promise<void> {
    this.#closed = true;
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    await Promise.all(entries.map((e) => closeEntry(e)));
  }

  async #timed<T>(operation: EtcdOperation, run: () => Promise<T>): Promise<T> {
    const started = this.#now();
    let ok = false;
    try {
      const result = await run();
      ok = true;
      return result;
    } finally {
      this.#options.onEtcd?.(
        operation,
        (this.#now() - started) / 1000,
        ok,
      );
    }
  }

  async #use<T>(
    group: string,
    operation: (batcher: SlotBatcher) => Promise<T>,
  ): Promise<T> {
    if (this.#closed) throw new Error("the FleetLock semaphores are closed");
    return await this.#with(this.#entry(group), operation);
  }

  /** Runs `operation` on `entry`'s batcher once open; the entry is not closed meanwhile. */
  async #with<T>(
    entry: Entry,
    operation: (batcher: SlotBatcher) => Promise<T>,
  ): Promise<T> {
    entry.users++;
    try {
      return await operation(await entry.ready);
    } finally {
      entry.users--;
    }
  }

  /** The entry of `group`, opened if needed, moved to the most recently used end. */
  #entry(group: string): Entry {
    let entry = this.#entries.get(group);
    if (entry !== undefined) {
      this.#entries.delete(group);
      this.#entries.set(group, entry);
      return entry;
    }
    this.#makeRoom();
    const ready = this.#open(group);
    entry = { group, ready, users: 0 };
    const created = entry;
    this.#entries.set(group, created);
    // A store that failed to open is forgotten, so the next call tries again.
    ready.catch(() => {
      if (this.#entries.get(group) === created) this.#entries.delete(group);
    });
    return created;
  }

  async #open(group: string): Promise<SlotBatcher> {
    const store = await this.#options.openStore(group);
    const configured = this.#options.slots?.get(group);
    const pendingMax = configured !== undefined &&
        !this.#slotsApplied.has(group)
      ? configured
      : undefined;
    const batcher = new SlotBatcher(store, {
      pendingMax,
      onCommit: (report) => {
        this.#options.onEtcd?.("update", report.seconds, report.ok);
        this.#options.onCommit?.(group, report);
        if (
          report.ok && configured !== undefined &&
          batcher.pendingMax === undefined
        ) this.#slotsApplied.add(group);
      },
    });
    return batcher;
  }

  /** Closes least recently used idle groups until there is room for one more. */
  #makeRoom(): void {
    const limit = this.#options.maxOpenGroups ?? 64;
    if (this.#entries.size < limit) return;
    for (const entry of this.#entries.values()) {
      if (this.#entries.size < limit) break;
      if (entry.users > 0) continue;
      this.#entries.delete(entry.group);
      void closeEntry(entry);
    }
  }
}

async function closeEntry(entry: Entry): Promise<void> {
  try {
    const batcher = await entry.ready;
    await batcher.store.close();
  } catch {
    // Never opened, or already gone: nothing to close.
  }
}
