/**
 * locksmithd at start: does this machine hold a slot, and if so, has its
 * reboot happened? Decided by {@link startupAction} from the boot id
 * recorded with the slot; retried with backoff while etcd does not answer.
 *
 * @module
 */

import { startupAction } from "./decisions.ts";
import { resumeLease } from "./holder_renewal.ts";
import { releaseSlot } from "./release.ts";
import type { Run } from "./run.ts";

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
  const { queue, log, boot } = run.deps;
  if (queue === undefined) return;
  for (let attempt = 1; !signal.aborted; attempt++) {
    let facts;
    try {
      const { doc, record } = await run.etcd(() => queue.startupRead());
      facts = {
        holding: doc.holders.includes(run.id),
        rebootPending,
        recordedBoot: record?.boot,
        currentBoot: boot?.id,
      };
    } catch (error) {
      if (
        !await run.backoff(
          "cannot check this machine's slot",
          error,
          attempt,
          signal,
        )
      ) return;
      continue;
    }
    // Renew the slot's lease (if any) while deciding, checking and releasing.
    if (facts.holding) await resumeLease(run, signal);
    const decision = startupAction(facts);
    if (decision.action === "keep") {
      log.info(`keeping the slot held by ${run.id}: ${decision.reason}`);
    } else if (decision.action === "release") {
      await releaseSlot(run, decision.reason, signal);
    }
    return;
  }
}
