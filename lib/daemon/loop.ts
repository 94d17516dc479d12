/**
 * locksmithd's main loop: wait until a reboot is needed, wait for the reboot
 * window, take a slot, wait for logged-in users, reboot. Every dependency
 * (lock store, rebooter, reboot-needed source, clock, log) is a parameter,
 * so the loop is tested with fakes and a fake clock as well as for real.
 *
 * @module
 */

import type { RebootStrategy } from "./config.ts";
import {
  backoffMs,
  decideTurn,
  onLockFailure,
  startupAction,
  usesLock,
  windowState,
} from "./decisions.ts";
import { oneLine, SemaphoreRefusedError } from "../common/errors.ts";
import { formatDuration } from "../common/duration.ts";
import { isHolder, lock } from "../semaphore/document.ts";
import { type LockStore, unlockSlot } from "../semaphore/lock_store.ts";
import { formatRebootWindow, type RebootWindow } from "./reboot_window.ts";
import type { Rebooter } from "../dbus/logind.ts";
import type { RebootNeed } from "../dbus/update_engine.ts";

export type { Rebooter, RebootNeed };

/** Time, injectable for tests. */
export interface Clock {
  /** The current time. */
  now(): Date;
  /** Sleeps `ms`; resolves `false` early when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<boolean>;
}

/** Where locksmithd's decisions are logged, one line each. */
export interface DaemonLog {
  /** A decision or a state change. */
  info(message: string): void;
  /** Something went wrong and is being retried. */
  warn(message: string): void;
}

/** What locksmithd was configured to do. */
export interface DaemonSettings {
  /** The reboot strategy. */
  readonly strategy: RebootStrategy;
  /** This machine's id, the holder id in the semaphore. */
  readonly machineId: string;
  /** Reboot only inside this window, if any. */
  readonly window?: RebootWindow | undefined;
  /** Delay before rebooting while users are logged in; 0 disables. */
  readonly loginDelayMs: number;
  /** Longest wait for a slot between two checks when no change is seen (default 5 min). */
  readonly safetyRecheckMs?: number;
  /**
   * How long a free slot is left to the waiters ahead in the queue before the
   * next one takes it and removes them (they are dead or stuck); default 10 s.
   */
  readonly handoverMs?: number;
}

/** What locksmithd needs from the world. */
export interface DaemonDeps {
  /** The semaphore; `undefined` for the `reboot` and `off` strategies. */
  readonly store: LockStore | undefined;
  /** Reboots the machine. */
  readonly rebooter: Rebooter;
  /** Tells when a reboot is needed. */
  readonly need: RebootNeed;
  /** Time. */
  readonly clock: Clock;
  /** Decision log. */
  readonly log: DaemonLog;
  /** Random source in [0, 1). */
  readonly random: () => number;
}

/** How {@link runDaemonLoop} ended. */
export type DaemonOutcome = "off" | "rebooted" | "stopped";

/** Runs locksmithd until it asked for a reboot, was stopped, or has nothing to do. */
export async function runDaemonLoop(
  settings: DaemonSettings,
  deps: DaemonDeps,
  signal: AbortSignal,
): Promise<DaemonOutcome> {
  return await new DaemonRun(settings, deps, signal).run();
}

class DaemonRun {
  readonly #s: DaemonSettings;
  readonly #d: DaemonDeps;
  readonly #signal: AbortSignal;

  constructor(settings: DaemonSettings, deps: DaemonDeps, signal: AbortSignal) {
    this.#s = settings;
    this.#d = deps;
    this.#signal = signal;
  }

  get #stopped(): boolean {
    return this.#signal.aborted;
  }

  async run(): Promise<DaemonOutcome> {
    const { strategy, machineId, window } = this.#s;
    const { log, need } = this.#d;
    if (strategy === "off") {
      log.info("strategy is off: locksmithd has nothing to do, exiting");
      return "off";
    }
    log.info(
      `starting: strategy ${strategy}, machine ${machineId}, ${
        window
          ? `reboot window ${formatRebootWindow(window)}`
          : "no reboot window"
      }, reboot-needed source ${need.name}`,
    );
    const pending = await this.#isNeeded();
    // Release runs beside the wait for a reboot; it is stopped before taking a slot.
    const releaseStop = new AbortController();
    const onStop = () => releaseStop.abort();
    this.#signal.addEventListener("abort", onStop);
    // With a reboot pending there is nothing to release: a held slot is kept
    // and the lock step recognises it.
    const release = this.#d.store && usesLock(strategy) && !pending
      ? this.#startupRelease(this.#d.store, pending, releaseStop.signal)
      : Promise.resolve();
    try {
      if (!pending) {
        log.info(`waiting for a reboot to be needed (${need.name})`);
        if (!await need.waitUntilNeeded(this.#signal)) return "stopped";
      }
      log.info(`reboot needed (${need.name})`);
      releaseStop.abort();
      await release;
      return await this.#rebootWhenAllowed();
    } finally {
      releaseStop.abort();
      this.#signal.removeEventListener("abort", onStop);
      await release;
    }
  }

  async #isNeeded(): Promise<boolean> {
    try {
      return await this.#d.need.isNeeded();
    } catch (error) {
      this.#d.log.warn(
        `cannot tell whether a reboot is needed: ${oneLine(error)}`,
      );
      return false;
    }
  }

  async #startupRelease(
    store: LockStore,
    pending: boolean,
    stop: AbortSignal,
  ): Promise<void> {
    const { log, clock, random } = this.#d;
    const id = this.#s.machineId;
    for (let attempt = 1; !stop.aborted; attempt++) {
      try {
        // Leaving the queue clears an entry left by a crash while waiting; it reads too.
        const { doc } = await store.leaveQueue(id);
        const action = startupAction(isHolder(doc, id), pending);
        if (action === "keep") {
          log.info(
            `keeping the slot held by ${id}: its reboot is still pending`,
          );
        } else if (action === "release") {
          if (stop.aborted) return;
          await unlockSlot(store, id);
          log.info(`released the slot held by ${id}: the reboot has happened`);
        }
        return;
      } catch (error) {
        if (error instanceof SemaphoreRefusedError) return; // released by someone else
        const delay = backoffMs(attempt, random);
        log.warn(
          `cannot check or release this machine's slot: ${
            oneLine(error)
          }; retrying in ${formatDuration(delay)}`,
        );
        if (!await clock.sleep(delay, stop)) return;
      }
    }
  }

  /** Loops: window, slot, login delay, reboot. */
  async #rebootWhenAllowed(): Promise<DaemonOutcome> {
    const { strategy, window } = this.#s;
    const { log, clock, store } = this.#d;
    while (!this.#stopped) {
      const state = windowState(window, clock.now());
      if (!state.open) {
        log.info(
          `waiting for the reboot window ${
            formatRebootWindow(window!)
          }: it opens at ${state.opensAt.toISOString()}`,
        );
        if (!await this.#sleepUntil(state.opensAt)) return "stopped";
        continue;
      }
      let holding = false;
      if (store && usesLock(strategy)) {
        const got = await this.#acquire(store, state.closesAt);
        if (got === "stopped") return "stopped";
        if (got === "window-closed") continue;
        holding = got === "held";
      }
      if (!await this.#waitForUsers()) return "stopped";
      if (!windowState(window, clock.now()).open) {
        if (holding && store) await this.#giveBack(store);
        continue;
      }
      return await this.#reboot(holding);
    }
    return "stopped";
  }

  async #sleepUntil(when: Date): Promise<boolean> {
    const ms = when.getTime() - this.#d.clock.now().getTime();
    return ms <= 0
      ? !this.#stopped
      : await this.#d.clock.sleep(ms, this.#signal);
  }

  async #acquire(
    store: LockStore,
    closesAt: Date | undefined,
  ): Promise<"held" | "no-slot" | "window-closed" | "stopped"> {
    const { strategy, machineId } = this.#s;
    const { log, clock, random } = this.#d;
    const recheckMs = this.#s.safetyRecheckMs ?? 300_000;
    const handoverMs = this.#s.handoverMs ?? 10_000;
    let failures = 0;
    let lastFull = "";
    let freeSince: number | undefined;
    while (!this.#stopped) {
      const now = clock.now().getTime();
      if (closesAt && now >= closesAt.getTime()) {
        log.info(
          "the reboot window closed before a slot was free; waiting for the next one",
        );
        await store.leaveQueue(machineId).catch(() => {});
        return "window-closed";
      }
      try {
        // Join (or, after an eviction, rejoin) the queue; one request that also reads.
        if (store.waitersAhead() === undefined) {
          await store.joinQueue(machineId);
        }
        const doc = store.peek() ?? (await store.read()).doc; // a corrupt one throws
        const ahead = store.waitersAhead() ?? 0;
        const free = doc.semaphore;
        if (doc.holders.includes(machineId)) {
          await store.leaveQueue(machineId);
          log.info(`this machine (${machineId}) already holds a slot`);
          break;
        }
        const turn = decideTurn(free, ahead, freeSince, now, handoverMs);
        if (turn.action === "try") {
          const evict = turn.evictAhead > 0
            ? await store.readWaitersAhead(turn.evictAhead)
            : [];
          if (evict.length > 0) {
            log.warn(
              `a slot stayed free for ${formatDuration(handoverMs)} while ${
                evict.join(", ")
              } did not take it: taking it and removing them from the queue`,
            );
          }
          const { after } = await store.update((d) => lock(d, machineId), {
            maxAttempts: 1,
            leaveQueue: true,
            evict,
          });
          log.info(
            `took a slot: ${after.holders.length} of ${after.max} held (${
              after.holders.join(", ")
            })`,
          );
          break;
        }
        freeSince = turn.freeSince;
        failures = 0;
        const summary = `max ${doc.max}, held by ${
          doc.holders.join(", ") || "nobody"
        }, ${ahead} waiting ahead`;
        if (summary !== lastFull) {
          log.info(`no slot free for this machine (${summary}); waiting`);
          lastFull = summary;
        }
        const until = Math.min(
          now + (turn.waitMs ?? recheckMs),
          closesAt?.getTime() ?? Infinity,
        );
        const result = await store.waitForChange(
          store.revision,
          Math.max(0, until - now),
          this.#signal,
        );
        if (result === "aborted") return "stopped";
        if (result === "disconnected") {
          // Waiting learns nothing while the watch is down: ask etcd (a read
          // that fails is logged and backed off below).
          await store.read();
        }
      } catch (error) {
        const action = onLockFailure(strategy, error);
        if (action === "holding") {
          await store.leaveQueue(machineId).catch(() => {});
          log.info(`this machine (${machineId}) already holds a slot`);
          break;
        }
        if (action === "reboot-without-slot") {
          log.warn(
            `etcd does not answer (${
              oneLine(error)
            }); best-effort: rebooting without a slot`,
          );
          return "no-slot";
        }
        if (action === "wait-for-slot") continue; // lost the race for the slot: look again
        failures++;
        lastFull = "";
        const delay = backoffMs(failures, random);
        log.warn(
          `cannot take a slot: ${oneLine(error)}; retrying in ${
            formatDuration(delay)
          }`,
        );
        if (!await clock.sleep(delay, this.#signal)) return "stopped";
      }
    }
    if (this.#stopped) return "stopped";
    if (closesAt && clock.now() >= closesAt) {
      log.info("the reboot window closed while taking a slot");
      await this.#giveBack(store);
      return "window-closed";
    }
    return "held";
  }

  async #giveBack(store: LockStore): Promise<void> {
    const { log, clock, random } = this.#d;
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        await unlockSlot(store, this.#s.machineId);
        log.info(
          "released the slot: the reboot window closed before rebooting",
        );
        return;
      } catch (error) {
        if (error instanceof SemaphoreRefusedError) return;
        log.warn(`cannot release the slot: ${oneLine(error)}`);
        if (!await clock.sleep(backoffMs(attempt, random), this.#signal)) {
          return;
        }
      }
    }
  }

  /** Waits the login delay when users are logged in; `false` when stopped. */
  async #waitForUsers(): Promise<boolean> {
    const delay = this.#s.loginDelayMs;
    if (delay <= 0) return !this.#stopped;
    let sessions = 0;
    try {
      sessions = await this.#d.rebooter.activeSessions();
    } catch (error) {
      this.#d.log.warn(`cannot list logged-in sessions: ${oneLine(error)}`);
    }
    if (sessions === 0) return !this.#stopped;
    this.#d.log.info(
      `${sessions} user session(s) logged in: rebooting in ${
        formatDuration(delay)
      }`,
    );
    return await this.#d.clock.sleep(delay, this.#signal);
  }

  async #reboot(holding: boolean): Promise<DaemonOutcome> {
    const { log, clock, random, rebooter } = this.#d;
    for (let attempt = 1; !this.#stopped; attempt++) {
      try {
        log.info(
          `rebooting: asking logind to reboot${
            holding ? " (holding a slot)" : " (no slot)"
          }`,
        );
        await rebooter.reboot();
        log.info("reboot requested");
        return "rebooted";
      } catch (error) {
        const delay = backoffMs(attempt, random);
        log.warn(
          `reboot request failed: ${oneLine(error)}; retrying in ${
            formatDuration(delay)
          }`,
        );
        if (!await clock.sleep(delay, this.#signal)) return "stopped";
      }
    }
    return "stopped";
  }
}
