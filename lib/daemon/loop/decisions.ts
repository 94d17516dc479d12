/**
 * locksmithd's decisions, as pure functions of their inputs (time and
 * randomness are parameters), so that they are tested without sleeping.
 *
 * @module
 */

import type { RebootStrategy } from "../../config/config.ts";
import { ContentionError, SemaphoreRefusedError } from "../../common/errors.ts";
import type { RebootWindow } from "../../schedule/reboot_window.ts";
import {
  type RebootSchedule,
  scheduleFromWindow,
  scheduleState,
} from "../../schedule/schedule.ts";
import type { QueuePlace } from "../../semaphore/slot_queue.ts";
import type { LockAttemptResult } from "../observe/metrics_port.ts";
import {
  type HolderState,
  livenessOf,
} from "../../semaphore/semaphore_view.ts";

/** Whether `strategy` takes a slot in etcd before rebooting. */
export function usesLock(strategy: RebootStrategy): boolean {
  return strategy === "etcd-lock" || strategy === "best-effort";
}

/** Whether a reboot may start now, and until when; or when it may next. */
export type WindowState =
  | { readonly open: true; readonly closesAt: Date | undefined }
  | { readonly open: false; readonly opensAt: Date };

/**
 * Where `now` stands relative to the reboot schedule (or a single window);
 * none means always open. An open schedule whose open period runs on past
 * the schedule horizon (14 days) has no `closesAt`: the reboot step checks
 * it again before every attempt anyway.
 */
export function windowState(
  when: RebootSchedule | RebootWindow | undefined,
  now: Date,
): WindowState {
  if (when === undefined) return { open: true, closesAt: undefined };
  const schedule = "windows" in when ? when : scheduleFromWindow(when);
  const state = scheduleState(schedule, now);
  return state.open
    ? { open: true, closesAt: state.closesAt ?? undefined }
    : { open: false, opensAt: state.opensAt };
}

/** What to do at start about a slot this machine holds, and why (for the log). */
export type StartupAction =
  | { readonly action: "none" }
  | { readonly action: "keep"; readonly reason: string }
  | {
    readonly action: "release";
    readonly reason: string;
    /** The reboot happened: the machine is back (else it gives back a slot it did not use). */
    readonly rebooted?: boolean;
  };

/** What the start-up check knows. */
export interface StartupFacts {
  /** Whether this machine holds a slot. */
  readonly holding: boolean;
  /** Whether a reboot is pending now. */
  readonly rebootPending: boolean;
  /** The boot id recorded with the slot, if any. */
  readonly recordedBoot: string | undefined;
  /** This boot's id, if known. */
  readonly currentBoot: string | undefined;
}

/**
 * At start, a held slot is released when the boot id recorded with it
 * differs from this boot's (the reboot happened), and kept when it is the
 * same boot with a reboot still pending (a daemon restart: go on and
 * reboot). The same boot with nothing pending releases. Without a recorded
 * boot id (a slot taken by an older version, or by `locksmithctl lock`),
 * a pending reboot keeps the slot and no pending reboot releases it.
 */
export function startupAction(facts: StartupFacts): StartupAction {
  if (!facts.holding) return { action: "none" };
  const { recordedBoot, currentBoot, rebootPending } = facts;
  if (recordedBoot !== undefined && currentBoot !== undefined) {
    if (!sameBoot(recordedBoot, currentBoot)) {
      return {
        action: "release",
        reason: "the reboot has happened (the boot id changed)",
        rebooted: true,
      };
    }
    return rebootPending
      ? {
        action: "keep",
        reason:
          "this boot took it and its reboot is still pending (locksmithd restarted)",
      }
      : {
        action: "release",
        reason: "this boot took it but no reboot is pending any more",
      };
  }
  return rebootPending
    ? { action: "keep", reason: "its reboot is still pending" }
    : { action: "release", reason: "the reboot has happened", rebooted: true };
}

/** Prefix of a boot id derived from the boot time (when the kernel's cannot be read). */
export const BOOT_TIME_ID_PREFIX = "boot-time:";

/** A boot id derived from the boot time: `boot-time:<unix seconds>`. */
export function bootTimeId(bootTime: Date): string {
  return `${BOOT_TIME_ID_PREFIX}${Math.round(bootTime.getTime() / 1_000)}`;
}

/**
 * Whether two boot ids name the same boot. Ids derived from the boot time
 * (`now - uptime`) drift with clock corrections: within 2 minutes counts as
 * the same boot.
 */
export function sameBoot(a: string, b: string): boolean {
  if (a.startsWith(BOOT_TIME_ID_PREFIX) && b.startsWith(BOOT_TIME_ID_PREFIX)) {
    const ta = Number(a.slice(BOOT_TIME_ID_PREFIX.length));
    const tb = Number(b.slice(BOOT_TIME_ID_PREFIX.length));
    return Number.isFinite(ta) && Number.isFinite(tb) &&
      Math.abs(ta - tb) <= 120;
  }
  return a === b;
}

/** What a failed attempt to take a slot means. */
export type LockFailureAction =
  | "holding" // this machine already holds a slot: go on to reboot
  | "look-again" // the semaphore was full or changed meanwhile: look again, no backoff
  | "paused" // the semaphore is paused: wait for a change (the resume), then look again
  | "retry"; // etcd trouble or a corrupt document: back off and retry

/**
 * Decides what a failed attempt to take a slot means. Once locksmithd uses
 * the semaphore for a reboot, no failure ever means "reboot without a
 * slot": outages, timeouts and hung members are waited out.
 */
export function onLockFailure(error: unknown): LockFailureAction {
  if (error instanceof SemaphoreRefusedError) {
    if (error.reason === "paused") return "paused";
    return error.reason === "holder_exists" ? "holding" : "look-again";
  }
  // A lost compare-and-swap (a single attempt) means someone else got there
  // first: look at the new document and wait, without backing off.
  if (error instanceof ContentionError) return "look-again";
  return "retry";
}

/**
 * How a failed attempt to take a slot is counted
 * (`locksmithd_lock_attempts_total{result}`): `held` (this machine already
 * holds one), `full`, `conflict` (the document changed meanwhile), or
 * `error` (etcd trouble, a corrupt document).
 */
export function lockAttemptResult(error: unknown): LockAttemptResult {
  if (error instanceof SemaphoreRefusedError) {
    if (error.reason === "holder_exists") return "held";
    if (error.reason === "semaphore_full") return "full";
    return "error";
  }
  return error instanceof ContentionError ? "conflict" : "error";
}

/** What a queued waiter does next. */
export type Turn =
  | {
    readonly action: "take";
    /** Remove the waiters ahead: they left the slot untaken. */
    readonly evictHead: boolean;
  }
  | {
    readonly action: "wait";
    /** When a free slot was first left to the head (kept across waits). */
    readonly freeSince: number | undefined;
    /** Longest wait before looking again; `undefined` for the safety re-check. */
    readonly waitMs: number | undefined;
  };

/** What {@link decideTurn} looks at. */
export interface TurnFacts {
  /** This machine's place in the queue. */
  readonly place: QueuePlace;
  /** Waiters ahead (for `behind` at the front; `head` and `second` imply 0 and 1). */
  readonly ahead?: number;
  /** Whether this machine is at the front of the queue (it watches the document). */
  readonly front?: boolean;
  /** Free slots in the document (fresh at the front). */
  readonly free: number;
  /** When a free slot was first seen left to those ahead, if it still is. */
  readonly freeSince: number | undefined;
  /** Now, in ms since the epoch. */
  readonly now: number;
  /** How long a free slot is left to each waiter ahead that does not take it. */
  readonly handoverMs: number;
  /** With enough free slots for the waiters ahead too, how long to let each of them go first (default {@link STAGGER_MS}). */
  readonly staggerMs?: number;
}

/**
 * With more free slots than waiters ahead, how long this machine lets each
 * waiter ahead go first before it takes one too (so that live machines
 * take slots in the order they joined): 250 ms.
 */
export const STAGGER_MS = 250;

/**
 * The head takes a free slot. At the front of the queue (`front`), the
 * waiter with `n` waiters ahead and `f` free slots takes one too: after
 * `n` × {@link STAGGER_MS} when `f > n` (a slot is left for each waiter
 * ahead), else once a slot has stayed free for `(n - f + 1)` ×
 * `handoverMs` while those ahead did nothing (they are dead or stuck),
 * removing them from the queue. So a dead waiter ahead costs the
 * hand-over time once, however many stand in line. Until then it waits,
 * at most until its time runs out. Everybody else waits for its turn.
 */
export function decideTurn(facts: TurnFacts): Turn {
  const { place, free, freeSince, now, handoverMs } = facts;
  const wait = { action: "wait", freeSince: undefined, waitMs: undefined };
  const position = place === "head"
    ? 0
    : place === "second"
    ? 1
    : place === "behind" && facts.front
    ? facts.ahead ?? 2
    : undefined;
  if (free <= 0 || position === undefined) return wait as Turn;
  if (position === 0) return { action: "take", evictHead: false };
  const since = freeSince ?? now;
  const untaken = position - free + 1;
  const due = since +
    (untaken > 0
      ? untaken * handoverMs
      : position * (facts.staggerMs ?? STAGGER_MS));
  if (now >= due) return { action: "take", evictHead: untaken > 0 };
  return { action: "wait", freeSince: since, waitMs: due - now };
}

/**
 * How locksmithd gets its slot for one reboot: from the etcd semaphore,
 * from a FleetLock server, or not at all.
 */
export type LockMode = "etcd-lock" | "fleetlock" | "no-slot";

/**
 * `etcd-lock` and `fleetlock` always take their slot; `reboot` never
 * does. The seed's rule for `best-effort` ("if etcd is running, etcd-lock;
 * otherwise reboot"), decided once per reboot: the semaphore is used when
 * etcd has answered at any time since locksmithd started, or answers
 * within the start-up budget; only a machine that never reached any
 * endpoint reboots without a slot.
 */
export function lockMode(
  strategy: RebootStrategy,
  etcdAnswered: boolean,
): LockMode | "probe" {
  if (strategy === "etcd-lock") return "etcd-lock";
  if (strategy === "fleetlock") return "fleetlock";
  if (strategy !== "best-effort") return "no-slot";
  return etcdAnswered ? "etcd-lock" : "probe";
}

/** A stale slot to reclaim, with what the log says about it. */
export interface Reclaim {
  /** The holder id. */
  readonly id: string;
  /** The expired lease its record names. */
  readonly lease: string;
  /** How long it has held the slot (by this machine's clock, from its record), if known. */
  readonly heldMs: number | undefined;
  /** The boot id recorded with the slot, if any. */
  readonly boot: string | undefined;
}

/** What {@link decideReclaim} looks at. */
export interface ReclaimFacts {
  /** The holders, with their records and whether their alive key exists. */
  readonly holders: readonly HolderState[];
  /** The slot TTL in force, in seconds; `0` for none. */
  readonly ttlSeconds: number;
  /** Now, in ms since the epoch (only for the age in the log). */
  readonly now: number;
}

/**
 * The slots a waiter first in line reclaims: with a slot TTL in force,
 * those of holders that renew by a lease and whose lease expired (etcd
 * deleted their alive key). The decision never compares clocks: the TTL
 * is measured by etcd; `now` only dates the log line. Without a TTL, or
 * for holders that do not renew (no lease in their record), nothing.
 */
export function decideReclaim(facts: ReclaimFacts): Reclaim[] {
  if (facts.ttlSeconds <= 0) return [];
  return facts.holders
    .filter((h) => livenessOf(h) === "expired")
    .map((h) => {
      const since = Date.parse(h.record?.since ?? "");
      return {
        id: h.id,
        lease: h.record?.lease ?? "",
        heldMs: Number.isNaN(since)
          ? undefined
          : Math.max(0, facts.now - since),
        boot: h.record?.boot,
      };
    });
}

/**
 * The share of the slot TTL within which a confirmation of the slot may be
 * acted on: the lease was renewed when the confirmation's request went
 * out, so no waiter can reclaim the slot for a whole TTL after that; a
 * quarter leaves the rest for the Reboot call and for clocks that run at
 * slightly different rates.
 */
export const CONFIRMATION_TTL_FRACTION = 0.25;

/** What the last check before the reboot found about this machine's slot. */
export interface SlotConfirmation {
  /** Whether the semaphore lists this machine and its lease (if any) is alive. */
  readonly held: boolean;
  /** TTL of the lease that covers the slot, in seconds; `0` without a lease. */
  readonly ttlSeconds: number;
  /** When the check's requests went out, on the monotonic clock (ms). */
  readonly sentAtMs: number;
}

/** What the reboot step does with a confirmation right before the Reboot call. */
export type ConfirmationVerdict = "reboot" | "lost" | "check-again";

/**
 * Decides, right before the Reboot call, on the last confirmation of the
 * slot: `lost` when it showed the slot gone; `reboot` when it holds and is
 * younger than {@link CONFIRMATION_TTL_FRACTION} of the TTL at `nowMs` (both
 * on the monotonic clock; without a lease no waiter can take the slot, so
 * any age will do); else `check-again`, so that a pause of any length (a
 * SIGSTOP, a paused VM) between the check and the call leads to a fresh
 * check, never to a reboot on a slot that may have been reclaimed.
 */
export function confirmationVerdict(
  confirmation: SlotConfirmation | undefined,
  nowMs: number,
): ConfirmationVerdict {
  if (confirmation === undefined) return "check-again";
  if (!confirmation.held) return "lost";
  if (confirmation.ttlSeconds <= 0) return "reboot";
  const age = nowMs - confirmation.sentAtMs;
  const limit = confirmation.ttlSeconds * 1_000 * CONFIRMATION_TTL_FRACTION;
  return age >= 0 && age < limit ? "reboot" : "check-again";
}
