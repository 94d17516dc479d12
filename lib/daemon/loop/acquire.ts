/**
 * Taking a slot, in turn: join the wait queue, wait until this machine is
 * first in line and a slot is free (or, as second in line, until a free slot
 * has been left to a silent head for the hand-over time), take it.
 * Outages are waited out with backoff; the queue is read again whenever
 * its watch is lost and at least every safety re-check interval.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import type { Semaphore } from "../../semaphore/document.ts";
import type { QueueState, SlotQueue } from "../../semaphore/slot_queue.ts";
import { decideTurn, lockAttemptResult, onLockFailure } from "./decisions.ts";
import {
  afterRelease,
  afterTake,
  leaseForTake,
  reclaimStaleSlots,
} from "./holder_renewal.ts";
import type { Run } from "./run.ts";

/** How taking a slot ended. */
export type AcquireOutcome = "held" | "window-closed" | "stopped";

function describeWait(state: QueueState, doc: Semaphore | undefined): string {
  const holders = doc?.holders.join(", ") || "nobody";
  const slots = doc === undefined ? "" : `max ${doc.max}, held by ${holders}; `;
  switch (state.place) {
    case "head":
      return `${slots}first in line`;
    case "second":
      return `${slots}second in line, behind ${state.headId}`;
    default:
      return `in line behind ${
        state.ahead > 2 ? `up to ${state.ahead}` : "2 or more"
      } machines; the first in line watches the semaphore`;
  }
}

/** Takes a slot for this machine before the window closes at `closesAt` (if any). */
export async function acquireSlot(
  run: Run,
  queue: SlotQueue,
  closesAt: Date | undefined,
): Promise<AcquireOutcome> {
  const { log, clock, boot } = run.deps;
  const recheckMs = run.tuning("safetyRecheckMs");
  const handoverMs = run.tuning("handoverMs");
  let failures = 0;
  let needRead = false;
  let lastSummary = "";
  let freeSince: number | undefined;
  let lastRead = clock.now().getTime();
  let pausedLogged = false;
  const leave = async () => {
    run.metrics.setQueuePosition(null);
    try {
      await run.etcd(() => queue.leave(), "leave");
    } catch (error) {
      log.warn(
        `cannot leave the wait queue (its entry expires with this machine's lease): ${
          oneLine(error)
        }`,
      );
    }
  };
  const alreadyHeld = async (): Promise<"held"> => {
    await leave();
    log.info(`this machine (${run.id}) already holds a slot`);
    run.slotHeld = true;
    return "held";
  };
  while (!run.stopped) {
    const now = clock.now().getTime();
    if (closesAt && now >= closesAt.getTime()) {
      log.info(
        "the reboot window closed before a slot was free; leaving the queue until the next window",
      );
      await leave();
      await afterRelease(run); // a lease prepared for a take that did not happen
      return "window-closed";
    }
    try {
      let state = queue.state();
      const read = state.place === "out" || needRead;
      if (state.place === "out") {
        state = await run.etcd(() => queue.join(), "join");
        log.info(`joined the wait queue: ${describeWait(state, state.doc)}`);
      } else if (needRead) {
        // After a lost watch, a failure, or as the safety re-check.
        state = await run.etcd(() => queue.refresh(), "refresh");
      }
      if (read) {
        lastRead = clock.now().getTime();
        needRead = false;
        failures = 0;
        state = queue.state();
      }
      run.metrics.setQueuePosition(state.place === "out" ? null : state.ahead);
      const doc = state.doc;
      if (doc?.holders.includes(run.id)) return await alreadyHeld();
      // First in line and every slot held: a slot whose holder's lease
      // expired is reclaimed (with a slot TTL), then look again.
      if (
        state.place === "head" && doc !== undefined && doc.semaphore <= 0 &&
        await reclaimStaleSlots(run)
      ) continue;
      const turn = decideTurn({
        place: state.place,
        free: doc?.semaphore ?? 0,
        freeSince,
        now,
        handoverMs,
      });
      if (turn.action === "take") {
        if (turn.evictHead) {
          log.warn(
            `a slot stayed free for ${
              formatDuration(handoverMs)
            } while ${state.headId}, first in line, did not take it: taking it and removing ${state.headId} from the queue`,
          );
        }
        const lease = await leaseForTake(run);
        const record = {
          id: run.id,
          since: clock.now().toISOString(),
          by: "locksmithd",
          boot: boot?.id,
          ...lease,
        };
        const { after, revision } = await run.etcd(
          () => queue.take({ evictHead: turn.evictHead, record }),
          "take",
        ).catch((error) => {
          run.metrics.countLockAttempt(lockAttemptResult(error));
          throw error;
        });
        run.metrics.countLockAttempt("taken");
        run.metrics.setQueuePosition(null);
        afterTake(run, record, revision);
        run.noteTaken(after);
        log.info(
          `took a slot: ${after.holders.length} of ${after.max} held (${
            after.holders.join(", ")
          })`,
        );
        break;
      }
      freeSince = turn.freeSince;
      const summary = describeWait(state, doc);
      if (summary !== lastSummary) {
        log.info(`no slot free for this machine (${summary}); waiting`);
        lastSummary = summary;
      }
      const nextRead = lastRead + recheckMs;
      const until = Math.min(
        turn.waitMs === undefined ? nextRead : now + turn.waitMs,
        nextRead,
        closesAt?.getTime() ?? Infinity,
      );
      const result = await queue.waitForChange(
        Math.max(0, until - now),
        run.signal,
      );
      if (result === "aborted") return "stopped";
      // The watch was lost, or the safety re-check is due: read again.
      if (result === "disconnected" || clock.now().getTime() >= nextRead) {
        needRead = true;
      }
    } catch (error) {
      const action = onLockFailure(error);
      if (action === "holding") return await alreadyHeld();
      if (action === "look-again") continue;
      if (action === "paused") {
        if (!pausedLogged) {
          log.info(
            "the semaphore is paused (locksmithctl pause): waiting for 'locksmithctl resume'",
          );
          pausedLogged = true;
        }
        if (await queue.waitForChange(recheckMs, run.signal) === "aborted") {
          return "stopped";
        }
        needRead = true;
        continue;
      }
      failures++;
      needRead = true;
      if (!await run.backoff("cannot take a slot", error, failures)) {
        return "stopped";
      }
    }
  }
  if (run.stopped) return "stopped";
  return "held";
}
