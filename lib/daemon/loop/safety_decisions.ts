/**
 * locksmithd's decisions about its safety gates, as pure functions (time
 * and randomness are parameters): what a veto of the pre-reboot check
 * leads to, when a repeated outcome is logged, which slot releases wait
 * for the health check, and the warning logged-in users get.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { backoffMs } from "../../common/backoff.ts";
import type { StartupAction } from "./decisions.ts";
import { formatInstantIn } from "../../schedule/schedule.ts";

/** Where the pre-reboot check runs: before joining the queue, or right before rebooting. */
export type CheckStage = "before-lock" | "before-reboot";

/** What {@link planAfterVeto} looks at. */
export interface VetoFacts {
  /** Whether this machine holds a slot now. */
  readonly holding: boolean;
  /** Vetoes in a row, this one included (from 1). */
  readonly vetoes: number;
  /** How this veto's run failed, without its run time (see `CheckOutcome.sameAs`). */
  readonly outcome: string;
  /** The last outcome that was logged, if any. */
  readonly lastReported: string | undefined;
  /** Random source in [0, 1), for the backoff's jitter. */
  readonly random: () => number;
}

/** What to do after a veto. */
export interface VetoPlan {
  /** Give the slot back first: a vetoed machine never holds one while it waits. */
  readonly release: boolean;
  /** How long to wait before asking again: the daemon's backoff (5 s doubling to 5 min, jittered). */
  readonly delayMs: number;
  /** Log (and notify) this veto: it is the first, or it failed otherwise than the last one logged. */
  readonly report: boolean;
}

/**
 * After the pre-reboot check said "not now": give back a slot held (before
 * locking, one kept from before a restart; before rebooting, the one just
 * taken), wait the backoff of the vetoes in a row, and report the veto
 * only when its outcome differs from the last one reported, so that a
 * check that says "not now" for hours logs one line, not hundreds.
 */
export function planAfterVeto(facts: VetoFacts): VetoPlan {
  return {
    release: facts.holding,
    delayMs: backoffMs(facts.vetoes, facts.random),
    report: facts.outcome !== facts.lastReported,
  };
}

/**
 * Whether a slot release at start waits for the health check: every
 * release at start does (the machine rebooted, or a reboot it took a slot
 * for is no longer pending) when a health check is configured. A slot
 * that is kept (its reboot is still pending) is not checked.
 */
export function releaseWaitsForHealth(
  action: StartupAction,
  healthCheck: boolean,
): boolean {
  return action.action === "release" && healthCheck;
}

/**
 * The message logged-in users get before the reboot (logind broadcasts it
 * with its own "The system will reboot at ..." line), e.g. `locksmithd: this
 * machine reboots in 5m (Thu 2026-03-05 10:05+00:00 UTC) to finish an
 * update; save your work and log out.`
 */
export function wallMessage(
  delayMs: number,
  at: Date,
  timeZone: string,
): string {
  return `locksmithd: this machine reboots in ${formatDuration(delayMs)} (${
    formatInstantIn(at, timeZone)
  } ${timeZone}) to finish an update; save your work and log out.`;
}
