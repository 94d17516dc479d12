/** In-memory fakes of locksmithd's dependencies, for pure unit tests only. */

import type {
  Clock,
  DaemonLog,
  Rebooter,
  RebootNeed,
} from "../lib/daemon/loop.ts";
import type {
  Change,
  LockStore,
  Snapshot,
  UpdateOptions,
  UpdateOutcome,
  WaitResult,
} from "../lib/semaphore/lock_store.ts";
import {
  formatSemaphore,
  INITIAL_SEMAPHORE,
  parseSemaphore,
  type Semaphore,
} from "../lib/semaphore/document.ts";
import { EtcdUnavailableError } from "../lib/common/errors.ts";

/** A virtual clock: sleeping advances time at once. */
export class FakeClock implements Clock {
  #now: number;
  /** Every sleep asked for, in ms. */
  readonly sleeps: number[] = [];
  /** Called after each sleep with the new time (tests script events here). */
  onSleep: (now: Date) => void = () => {};
  constructor(start: Date) {
    this.#now = start.getTime();
  }
  now(): Date {
    return new Date(this.#now);
  }
  advance(ms: number): void {
    this.#now += ms;
  }
  sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    this.sleeps.push(ms);
    this.#now += Math.max(0, ms);
    this.onSleep(this.now());
    return Promise.resolve(!signal.aborted);
  }
}

/** An in-memory {@link LockStore} using the real pure operations. */
export class FakeStore implements LockStore {
  readonly key = "fake/semaphore";
  raw: string | undefined;
  revision = 0;
  /** Throw this from every call while set (simulates etcd down). */
  down: Error | undefined;
  /** Every write, as stored text. */
  readonly writes: string[] = [];
  /** The wait queue, oldest first (other machines may be put here by a test). */
  queue: string[] = [];
  /** The id this store queued as. */
  me: string | undefined;
  /** Every update's options, in order. */
  readonly updates: (UpdateOptions | undefined)[] = [];
  /** Called on each waitForChange; may change the store (another machine). */
  onWait: () => void = () => {};
  constructor(readonly clock: FakeClock, doc?: Semaphore | string) {
    if (doc !== undefined) {
      this.raw = typeof doc === "string" ? doc : formatSemaphore(doc);
      this.revision = 1;
    }
  }
  #check(): void {
    if (this.down) throw this.down;
  }
  get doc(): Semaphore {
    return this.raw === undefined
      ? INITIAL_SEMAPHORE
      : parseSemaphore(this.raw, this.key);
  }
  set(doc: Semaphore): void {
    this.raw = formatSemaphore(doc);
    this.revision++;
  }
  read(): Promise<Snapshot> {
    this.#check();
    return Promise.resolve({
      doc: this.doc,
      raw: this.raw,
      revision: this.revision,
    });
  }
  update(change: Change, options?: UpdateOptions): Promise<UpdateOutcome> {
    this.updates.push(options);
    try {
      this.#check();
      const before = this.doc;
      const after = change(before);
      if (after === undefined) {
        return Promise.resolve({
          before,
          after: before,
          written: false,
          attempts: 1,
        });
      }
      this.set(after);
      this.writes.push(this.raw!);
      if (options?.leaveQueue) {
        this.queue = this.queue.filter((q) => q !== this.me);
      }
      for (const id of options?.evict ?? []) {
        this.queue = this.queue.filter((q) => q !== id);
      }
      return Promise.resolve({ before, after, written: true, attempts: 1 });
    } catch (error) {
      return Promise.reject(error);
    }
  }
  joinQueue(id: string): Promise<Snapshot> {
    this.#check();
    this.me = id;
    this.queue = [...this.queue.filter((q) => q !== id), id];
    return this.read();
  }
  leaveQueue(id: string): Promise<Snapshot> {
    this.#check();
    this.queue = this.queue.filter((q) => q !== id);
    return this.read();
  }
  waitersAhead(): number | undefined {
    const i = this.me === undefined ? -1 : this.queue.indexOf(this.me);
    return i < 0 ? undefined : i;
  }
  readWaitersAhead(limit: number): Promise<string[]> {
    const i = this.waitersAhead() ?? 0;
    return Promise.resolve(this.queue.slice(0, Math.min(limit, i)));
  }
  /** Removes another machine from the queue, as its lock would (a change seen by the watch). */
  dequeue(id: string): void {
    this.queue = this.queue.filter((q) => q !== id);
    this.revision++;
  }
  peek(): Semaphore | undefined {
    try {
      return this.doc;
    } catch {
      return undefined;
    }
  }
  readRaw(): Promise<{ raw: string | undefined; revision: number }> {
    return Promise.resolve({ raw: this.raw, revision: this.revision });
  }
  replace(): Promise<boolean> {
    return Promise.reject(new Error("not used"));
  }
  waitForChange(
    revision: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<WaitResult> {
    if (this.revision > revision) return Promise.resolve("changed");
    this.onWait();
    if (signal?.aborted) return Promise.resolve("aborted");
    if (this.revision > revision) return Promise.resolve("changed");
    if (this.down) return Promise.resolve("disconnected");
    this.clock.advance(timeoutMs);
    return Promise.resolve("timeout");
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A rebooter that records reboots and the time they were asked for. */
export class FakeRebooter implements Rebooter {
  readonly reboots: Date[] = [];
  sessions = 0;
  failures = 0;
  constructor(readonly clock: FakeClock) {}
  activeSessions(): Promise<number> {
    return Promise.resolve(this.sessions);
  }
  reboot(): Promise<void> {
    if (this.failures > 0) {
      this.failures--;
      return Promise.reject(
        new Error("org.freedesktop.DBus.Error.AccessDenied"),
      );
    }
    this.reboots.push(this.clock.now());
    return Promise.resolve();
  }
}

/** A reboot-needed source the test flips. */
export class FakeNeed implements RebootNeed {
  readonly name = "fake";
  #waiters: (() => void)[] = [];
  constructor(public needed = false) {}
  isNeeded(): Promise<boolean> {
    return Promise.resolve(this.needed);
  }
  trigger(): void {
    this.needed = true;
    for (const w of this.#waiters.splice(0)) w();
  }
  waitUntilNeeded(signal: AbortSignal): Promise<boolean> {
    if (this.needed) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.#waiters.push(() => resolve(true));
      signal.addEventListener("abort", () => resolve(false), { once: true });
    });
  }
}

/** A log that keeps its lines. */
export class MemoryLog implements DaemonLog {
  readonly lines: string[] = [];
  info(m: string): void {
    this.lines.push(`info: ${m}`);
  }
  warn(m: string): void {
    this.lines.push(`warn: ${m}`);
  }
}

/** The error a store throws while etcd is down. */
export const ETCD_DOWN: EtcdUnavailableError = new EtcdUnavailableError(
  "cannot reach etcd at http://127.0.0.1:2379: connect ECONNREFUSED",
);
