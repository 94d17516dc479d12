/**
 * locksmithd at start: does this machine hold a slot, and if so, has its
 * reboot happened? Decided by {@link startupAction} from the boot id
 * recorded with the slot; retried with backoff while etcd does not answer.
 * With a health check, a slot is released only once it passes (`health.ts`).
 * A FleetLock server cannot be asked: the `fleetlock` strategy sends
 * steady-state at every start (`server_slot.ts`).
 *
 * @module
 */

import { describeCommand } from "../../host/command.ts";
import { startupAction } from "./decisions.ts";
import { waitUntilHealthy } from "./health.ts";
import { resumeLease } from "./holder_renewal.ts";
import { releaseSlot } from "./release.ts";
import { releaseAtStart } from "./server_slot.ts";
import type { Run } from "./run.ts";
import { releaseWaitsForHealth } from "./safety_decisions.ts";

/**
 * Checks this machine's slot and releases it when the reboot has happened
 * (or nothing is pending), keeping it otherwise. Stops quietly when
 * `signal` aborts (e.g. a reboot became needed: the lock step then finds
 * the slot, if still held, and uses it).
 */
export async function startupCheck(
  run: Run,
  rebootPending: boolean,
  signal: AbortSignal,
): Promise<void> {
  const { queue, log, boot, lockServer } = run.deps;
  if (queue === undefined) {
    if (lockServer !== undefined) {
      await releaseAtStart(run, rebootPending, signal);
    }
    return;
  }
  const backoff = run.peerBackoff();
  while (!signal.aborted) {
    let facts;
    let stored;
    try {
      const { doc, record, stored: read } = await run.etcd(
        () => queue.startupRead(),
        "startup-read",
      );
      facts = {
        holding: doc.holders.includes(run.id),
        rebootPending,
        recordedBoot: record?.boot,
        currentBoot: boot?.id,
      };
      stored = read;
    } catch (error) {
      if (
        !await run.backoff(
          "cannot check this machine's slot",
          error,
          backoff,
          signal,
        )
      ) return;
      continue;
    }
    // Renew the slot's lease (if any) while deciding, checking and releasing.
    if (facts.holding) await resumeLease(run, signal, stored);
    const decision = startupAction(facts);
    run.slotHeld = facts.holding;
    if (decision.action === "keep") {
      log.info(`keeping the slot held by ${run.id}: ${decision.reason}`);
    } else if (decision.action === "release") {
      const { healthCheck } = run.settings;
      let why = decision.reason;
      if (releaseWaitsForHealth(decision, healthCheck !== undefined)) {
        log.info(
          `this machine (${run.id}) holds a slot (${decision.reason}): releasing it once the health check ${
            describeCommand(healthCheck!)
          } passes`,
        );
        if (!await waitUntilHealthy(run, signal)) return;
        why = `${why}; the health check passed`;
      }
      await releaseSlot(run, why, signal, {
        kind: decision.rebooted ? "released" : "returned",
        since: stored.record?.since,
        boot: stored.record?.boot,
      });
    }
    return;
  }
}
