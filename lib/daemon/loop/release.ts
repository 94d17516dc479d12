/**
 * Releasing this machine's slot: retried with backoff for as long as the
 * daemon runs (a slot left held blocks the fleet), and logged exactly once,
 * also when an attempt whose answer was lost turns out to have applied.
 * With the `fleetlock` strategy, through the FleetLock server
 * (`server_slot.ts`).
 *
 * @module
 */

import {
  EtcdUnavailableError,
  SemaphoreRefusedError,
} from "../../common/errors.ts";
import { unlockSlot } from "../../semaphore/lock_store.ts";
import type { Run } from "./run.ts";
import { afterRelease } from "./holder_renewal.ts";
import { releaseThroughServer } from "./server_slot.ts";

/**
 * How the slot ends, for the history: `released` after the boot (the
 * machine is back: also the `back-up` notification), else `returned`
 * unused; with when it was taken and on which boot, when known.
 */
export interface ReleaseEnding {
  /** `released` after the boot, `returned` unused. */
  readonly kind: "released" | "returned";
  /** When the slot was taken (ISO 8601), if known. */
  readonly since?: string | undefined;
  /** The boot id recorded with the slot, if known. */
  readonly boot?: string | undefined;
}

/** The `back-up` notification: the machine released its slot after its boot, `since` the take. */
function noteBackUp(run: Run, at: Date, since: string | undefined): void {
  const took = since === undefined ? NaN : Date.parse(since);
  run.notify("back-up", {
    took_at: since ?? null,
    away_seconds: Number.isNaN(took)
      ? null
      : Math.max(0, Math.round((at.getTime() - took) / 1_000)),
  });
}

/** How a release ended. */
export type ReleaseOutcome = "released" | "not-holding" | "stopped";

/**
 * Releases this machine's slot, logging `released the slot: <why>`.
 * Returns `"not-holding"` when it held none (logged too), `"stopped"` when
 * `signal` aborted first.
 */
export async function releaseSlot(
  run: Run,
  why: string,
  signal: AbortSignal = run.signal,
  ending: ReleaseEnding = { kind: "returned" },
): Promise<ReleaseOutcome> {
  const { store, log, lockServer } = run.deps;
  if (store === undefined) {
    return lockServer === undefined
      ? "not-holding"
      : await releaseThroughServer(run, why, signal);
  }
  let uncertain = false;
  const backoff = run.peerBackoff();
  while (!signal.aborted) {
    try {
      const at = run.deps.clock.now();
      await run.etcd(
        () => unlockSlot(store, run.id, { ...ending, at: at.toISOString() }),
        "unlock",
      );
      // Logged once the slot's lease is revoked too: the line means that
      // nothing of the slot is left.
      await afterRelease(run);
      log.info(`released the slot held by ${run.id}: ${why}`);
      run.noteReleased(why);
      if (ending.kind === "released") noteBackUp(run, at, ending.since);
      return "released";
    } catch (error) {
      if (
        error instanceof SemaphoreRefusedError &&
        error.reason === "holder_not_found"
      ) {
        await afterRelease(run);
        if (uncertain) {
          log.info(
            `released the slot held by ${run.id}: ${why} (it is free now: an earlier attempt whose answer was lost applied, or someone released it meanwhile)`,
          );
          run.noteReleased(why);
          if (ending.kind === "released") {
            noteBackUp(run, run.deps.clock.now(), ending.since);
          }
          return "released";
        }
        log.info(`this machine (${run.id}) holds no slot: nothing to release`);
        run.slotHeld = false;
        return "not-holding";
      }
      // A timed-out request may still have been applied.
      if (error instanceof EtcdUnavailableError) uncertain = true;
      if (
        !await run.backoff("cannot release the slot", error, backoff, signal)
      ) {
        return "stopped";
      }
    }
  }
  return "stopped";
}
