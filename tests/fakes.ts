/** In-memory fakes of locksmithd's dependencies, for pure unit tests only. */

import type {
  Clock,
  DaemonLog,
  DaemonNotify,
  Rebooter,
  RebootNeed,
  UserWarning,
} from "../lib/daemon/loop/ports.ts";
import type { CommandResult, ParsedCommand } from "../lib/host/command.ts";
import type { RunOptions } from "../lib/host/command_run.ts";
import type {
  CommandKind,
  CommandRunResult,
  DaemonMetrics,
  LockAttemptResult,
  NotificationResult,
} from "../lib/daemon/observe/metrics_port.ts";
import type { NotifyEvent } from "../lib/daemon/observe/notify.ts";
import type {
  Change,
  Companion,
  LockStore,
  Snapshot,
  UpdateOptions,
  UpdateOutcome,
} from "../lib/semaphore/lock_store.ts";
import type {
  QueueState,
  SlotQueue,
  StartupReading,
  TakeOptions,
  WaitResult,
} from "../lib/semaphore/slot_queue.ts";
import {
  formatSemaphore,
  INITIAL_SEMAPHORE,
  lock,
  parseSemaphore,
  type Semaphore,
} from "../lib/semaphore/document.ts";
import {
  type HolderRecord,
  parseHolderRecord,
} from "../lib/semaphore/holder_record.ts";
import {
  EtcdUnavailableError,
  SemaphoreRefusedError,
} from "../lib/common/errors.ts";

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
  monotonicMs(): number {
    return this.#now;
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

/**
 * A virtual clock whose sleeps are timers: each ends when {@link TimerClock.run}
 * moves time to it (or when aborted), so that sleeps overlap as real ones
 * do (a backoff and the probes sent while it lasts). Nothing really sleeps.
 */
export class TimerClock extends FakeClock {
  readonly #timers = new Set<{ at: number; fire: () => void }>();
  override sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    this.sleeps.push(ms);
    return new Promise((resolve) => {
      const timer = {
        at: this.now().getTime() + Math.max(0, ms),
        fire: () => {
          signal.removeEventListener("abort", abort);
          resolve(true);
        },
      };
      const abort = () => {
        this.#timers.delete(timer);
        resolve(false);
      };
      signal.addEventListener("abort", abort, { once: true });
      this.#timers.add(timer);
    });
  }
  /**
   * Lets everything that can run run, then moves time to the earliest
   * timer and ends its sleep (calling `onSleep`), until `done()` holds;
   * throws when no timer is left or the next one is more than `limitMs`
   * ahead of the start.
   */
  async run(done: () => boolean, limitMs = 86_400_000): Promise<void> {
    const end = this.now().getTime() + limitMs;
    for (;;) {
      // Two turns of the event loop: every promise chain of the fakes settles.
      for (let i = 0; i < 2; i++) await new Promise((r) => setTimeout(r, 0));
      if (done()) return;
      const next = [...this.#timers].sort((a, b) => a.at - b.at)[0];
      if (next === undefined || next.at > end) {
        throw new Error(`no timer left before ${new Date(end).toISOString()}`);
      }
      this.#timers.delete(next);
      this.advance(Math.max(0, next.at - this.now().getTime()));
      next.fire();
      this.onSleep(this.now());
    }
  }
}

/** An in-memory {@link LockStore} using the real pure operations. */
export class FakeStore implements LockStore {
  readonly key = "fake/semaphore";
  raw: string | undefined;
  revision = 0;
  /** Throw this from every call while set (simulates etcd down). */
  down: Error | undefined;
  /** Whether the semaphore is paused (passed to every change). */
  paused = false;
  /** Fail this many more unlocks after applying them (a lost answer). */
  lostUnlockAnswers = 0;
  /** Every write, as stored text. */
  readonly writes: string[] = [];
  /** Holder records by id. */
  readonly records = new Map<string, HolderRecord>();
  /** Every update's options, in order. */
  readonly updates: (UpdateOptions | undefined)[] = [];
  /** Every update's companion writes, in order. */
  readonly companions: (readonly Companion[])[] = [];
  constructor(readonly clock: FakeClock, doc?: Semaphore | string) {
    if (doc !== undefined) {
      this.raw = typeof doc === "string" ? doc : formatSemaphore(doc);
      this.revision = 1;
    }
  }
  check(): void {
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
    try {
      this.check();
      return Promise.resolve({
        doc: this.doc,
        raw: this.raw,
        revision: this.revision,
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }
  update(change: Change, options?: UpdateOptions): Promise<UpdateOutcome> {
    this.updates.push(options);
    try {
      this.check();
      const before = this.doc;
      const after = change(before, { paused: this.paused });
      if (after === undefined) {
        return Promise.resolve({
          before,
          after: before,
          written: false,
          attempts: 1,
          revision: this.revision,
        });
      }
      this.set(after);
      this.writes.push(this.raw!);
      const companions = options?.companions?.(before, after) ?? [];
      this.companions.push(companions);
      for (const c of companions) {
        if ("put" in c && c.put.includes("/holders/")) {
          const record = parseHolderRecord(c.value);
          if (record) this.records.set(record.id, record);
        } else if ("delete" in c && c.delete.includes("/holders/")) {
          this.records.delete(decodeURIComponent(c.delete.split("/").at(-1)!));
        }
      }
      if (after.holders.length < before.holders.length) {
        if (this.lostUnlockAnswers > 0) {
          this.lostUnlockAnswers--;
          throw new EtcdUnavailableError(
            "etcd did not answer within 5s (http://127.0.0.1:2379: no answer)",
          );
        }
      }
      return Promise.resolve({
        before,
        after,
        written: true,
        attempts: 1,
        revision: this.revision,
      });
    } catch (error) {
      return Promise.reject(error);
    }
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
  waitForChange(revision: number): Promise<"changed" | "timeout"> {
    return Promise.resolve(this.revision > revision ? "changed" : "timeout");
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** An in-memory {@link SlotQueue} over a {@link FakeStore}. */
export class FakeQueue implements SlotQueue {
  /** The wait queue, oldest first (other machines may be put here by a test). */
  queue: string[] = [];
  /** Every take's options, in order. */
  readonly takes: TakeOptions[] = [];
  /** Called on each waitForChange; may change the store (another machine). */
  onWait: () => void = () => {};
  /** Number of refreshes (re-reads). */
  refreshes = 0;
  #seenRevision = -1;
  #joined = false;
  constructor(readonly store: FakeStore, readonly me: string) {}
  startupRead(): Promise<StartupReading> {
    try {
      this.store.check();
      this.queue = this.queue.filter((q) => q !== this.me);
      const record = this.store.records.get(this.me);
      return Promise.resolve({
        doc: this.store.doc,
        record,
        stored: { record, revision: record === undefined ? 0 : 1 },
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }
  state(): QueueState {
    this.#seenRevision = this.store.revision;
    const i = this.#joined ? this.queue.indexOf(this.me) : -1;
    const place = i < 0
      ? "out"
      : i === 0
      ? "head"
      : i === 1
      ? "second"
      : "behind";
    return {
      place,
      doc: this.store.peek(),
      headId: place === "second" ? this.queue[0] : undefined,
      ahead: Math.max(0, i),
    };
  }
  join(): Promise<QueueState> {
    try {
      this.store.check();
      this.queue = [...this.queue.filter((q) => q !== this.me), this.me];
      this.#joined = true;
      return Promise.resolve(this.state());
    } catch (error) {
      return Promise.reject(error);
    }
  }
  refresh(): Promise<QueueState> {
    this.refreshes++;
    try {
      this.store.check();
      return Promise.resolve(this.state());
    } catch (error) {
      return Promise.reject(error);
    }
  }
  async take(options: TakeOptions): Promise<UpdateOutcome> {
    this.takes.push(options);
    const outcome = await this.store.update((doc, context) => {
      if (context?.paused && !doc.holders.includes(this.me)) {
        throw new SemaphoreRefusedError("paused", "paused");
      }
      return lock(doc, this.me);
    }, {
      companions: () =>
        options.record
          ? [{
            put: `fake/semaphore/holders/${options.record.id}`,
            value: JSON.stringify(options.record),
          }]
          : [],
    });
    const head = this.queue[0];
    this.queue = this.queue.filter((q) =>
      q !== this.me && !(options.evictHead && q === head)
    );
    this.#joined = false;
    return outcome;
  }
  leave(): Promise<void> {
    this.queue = this.queue.filter((q) => q !== this.me);
    this.#joined = false;
    return Promise.resolve();
  }
  /** Removes another machine from the queue, as its lock would (a change seen by the watch). */
  dequeue(id: string): void {
    this.queue = this.queue.filter((q) => q !== id);
    this.store.revision++;
  }
  waitForChange(timeoutMs: number, signal?: AbortSignal): Promise<WaitResult> {
    if (this.store.revision !== this.#seenRevision) {
      return Promise.resolve("changed");
    }
    this.onWait();
    if (signal?.aborted) return Promise.resolve("aborted");
    if (this.store.revision !== this.#seenRevision) {
      return Promise.resolve("changed");
    }
    if (this.store.down) return Promise.resolve("disconnected");
    this.store.clock.advance(timeoutMs);
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
  neededBy(): Promise<string | undefined> {
    return Promise.resolve(this.needed ? this.name : undefined);
  }
  trigger(): void {
    this.needed = true;
    for (const w of this.#waiters.splice(0)) w();
  }
  waitUntilNeeded(
    signal: AbortSignal,
    onWatching?: () => void,
  ): Promise<string | undefined> {
    onWatching?.();
    if (this.needed) return Promise.resolve(this.name);
    return new Promise((resolve) => {
      this.#waiters.push(() => resolve(this.name));
      signal.addEventListener("abort", () => resolve(undefined), {
        once: true,
      });
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
  error(m: string): void {
    this.lines.push(`error: ${m}`);
  }
}

/** The error a store throws while etcd is down. */
export const ETCD_DOWN: EtcdUnavailableError = new EtcdUnavailableError(
  "cannot reach etcd (http://127.0.0.1:2379: connection refused)",
);

/** One run of a fake command. */
export interface FakeRun {
  /** The program. */
  readonly program: string;
  /** Its arguments. */
  readonly args: readonly string[];
  /** Its environment. */
  readonly env: Readonly<Record<string, string>> | undefined;
  /** When it ran (fake time). */
  readonly at: Date;
}

/**
 * A command runner for the loop: each program answers with the exit
 * statuses queued for it (the last one repeats; 0 when none), or throws
 * the queued error; runs take no time.
 */
export class FakeCommands {
  /** Every run, in order. */
  readonly runs: FakeRun[] = [];
  /** Exit statuses (or errors to throw) by program, used in order; the last one stays. */
  readonly answers = new Map<string, (number | Error)[]>();
  constructor(readonly clock: FakeClock) {}
  /** Queues answers for `program`. */
  answer(program: string, ...answers: (number | Error)[]): void {
    this.answers.set(program, answers);
  }
  /** Runs of `program`. */
  runsOf(program: string): FakeRun[] {
    return this.runs.filter((r) => r.program === program);
  }
  readonly run = (
    command: ParsedCommand,
    options: RunOptions,
  ): Promise<CommandResult> => {
    this.runs.push({
      program: command.program,
      args: command.args,
      env: options.env,
      at: this.clock.now(),
    });
    const queue = this.answers.get(command.program) ?? [0];
    const answer = (queue.length > 1 ? queue.shift() : queue[0]) ?? 0;
    if (answer instanceof Error) return Promise.reject(answer);
    return Promise.resolve({
      exitCode: answer,
      signal: null,
      timedOut: false,
      aborted: false,
      output: answer === 0 ? "" : `exit ${answer}`,
      outputBytes: answer === 0 ? 0 : `exit ${answer}`.length,
      cutBytes: 0,
      durationMs: 7,
    });
  };
}

/** A notifier that keeps the events. */
export class RecordingNotifier implements DaemonNotify {
  readonly events: { event: NotifyEvent; details: unknown }[] = [];
  flushes = 0;
  /** Called on each flush (a test may let time pass here). */
  onFlush: () => void = () => {};
  notify(
    event: NotifyEvent,
    details: Readonly<Record<string, unknown>> = {},
  ): void {
    this.events.push({ event, details });
  }
  flush(): Promise<boolean> {
    this.flushes++;
    this.onFlush();
    return Promise.resolve(true);
  }
  /** The event names, in order. */
  get names(): NotifyEvent[] {
    return this.events.map((e) => e.event);
  }
}

/** Metrics that keep the last value of each gauge and every count. */
export class RecordingMetrics implements DaemonMetrics {
  rebootNeeded = false;
  waitingSince: Date | null = null;
  slotHeld = false;
  windowOpen = true;
  queuePosition: number | null = null;
  lastRebootRequest: Date | undefined;
  readonly lockAttempts: LockAttemptResult[] = [];
  readonly etcdOps: string[] = [];
  readonly commands: `${CommandKind}:${CommandRunResult}`[] = [];
  readonly notifications: NotificationResult[] = [];
  /** Every slot_held value set, in order. */
  readonly slotHeldHistory: boolean[] = [];
  setRebootNeeded(needed: boolean): void {
    this.rebootNeeded = needed;
  }
  setWaitingSince(since: Date | null): void {
    this.waitingSince = since;
  }
  setSlotHeld(held: boolean): void {
    this.slotHeld = held;
    this.slotHeldHistory.push(held);
  }
  setWindowOpen(open: boolean): void {
    this.windowOpen = open;
  }
  setQueuePosition(ahead: number | null): void {
    this.queuePosition = ahead;
  }
  setLastRebootRequest(at: Date): void {
    this.lastRebootRequest = at;
  }
  countLockAttempt(result: LockAttemptResult): void {
    this.lockAttempts.push(result);
  }
  observeEtcdRequest(op: string): void {
    this.etcdOps.push(op);
  }
  countCommand(command: CommandKind, result: CommandRunResult): void {
    this.commands.push(`${command}:${result}`);
  }
  countNotification(result: NotificationResult): void {
    this.notifications.push(result);
  }
}

/** logind's wall messages, recorded; `missing` plays a logind without the calls. */
export class FakeWarning implements UserWarning {
  readonly warnings: { message: string; at: Date }[] = [];
  cancels = 0;
  missing = false;
  warnUsers(message: string, at: Date): Promise<void> {
    if (this.missing) {
      return Promise.reject(
        new Error("org.freedesktop.DBus.Error.UnknownMethod"),
      );
    }
    this.warnings.push({ message, at });
    return Promise.resolve();
  }
  cancelWarning(): Promise<void> {
    this.cancels++;
    return Promise.resolve();
  }
}
