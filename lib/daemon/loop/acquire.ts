/**
 * Taking a slot, in turn: join the wait queue, wait until this machine's
 * turn comes (`decideTurn`: first in line with a slot free, or at the front
 * once a free slot has been left untaken by those ahead for the hand-over
 * time each), take it. A machine found out of the queue joins again at
 * once. Outages are waited out with backoff, which ends as soon as etcd
 * answers again; the queue is read again whenever its watch is lost and at
 * least every safety re-check interval.
 *
 * @module
 */

import type { Backoff } from "../../common/backoff.ts";
import { formatDuration } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import type { Semaphore } from "../../semaphore/document.ts";
import type { QueueState, SlotQueue } from "../../semaphore/slot_queue.ts";
import {
  decideTurn,
  lockAttemptResult,
  onLockFailure,
  type Turn,
} from "./decisions.ts";
import {
  afterRelease,
  afterTake,
  leaseForTake,
  reclaimStaleSlots,
} from "./holder_renewal.ts";
import type { Run } from "./run.ts";

/** How taking a slot ended. */
export type AcquireOutcome = "held" | "window-closed" | "stopped";

/** What one call of {@link acquireSlot} remembers between its steps. */
interface Waiting {
  readonly run: Run;
  readonly queue: SlotQueue;
  readonly closesAt: Date | undefined;
  readonly backoff: Backoff;
  needRead: boolean;
  lastSummary: string;
  freeSince: number | undefined;
  lastRead: number;
  pausedLogged: boolean;
  /** Whether the last take also removed waiters ahead (a failure then calls for a fresh read). */
  evicting: boolean;
}

/** What a step found: an outcome, or go round again. */
type Step = AcquireOutcome | "again";

function describeWait(state: QueueState, doc: Semaphore | undefined): string {
  const holders = doc?.holders.join(", ") || "nobody";
  const slots = doc === undefined ? "" : `max ${doc.max}, held by ${holders}; `;
  switch (state.place) {
    case "head":
      return `${slots}first in line`;
    case "second":
      return `${slots}second in line, behind ${state.headId}`;
    default:
      return state.front && state.aheadIds
        ? `${slots}in line behind ${state.aheadIds.join(", ")}`
        : `in line behind ${state.ahead} machines; the first in line watch the semaphore`;
  }
}

/** Takes a slot for this machine before the window closes at `closesAt` (if any). */
export async function acquireSlot(
  run: Run,
  queue: SlotQueue,
  closesAt: Date | undefined,
): Promise<AcquireOutcome> {
  const w: Waiting = {
    run,
    queue,
    closesAt,
    backoff: run.peerBackoff(),
    needRead: false,
    lastSummary: "",
    freeSince: undefined,
    lastRead: run.deps.clock.now().getTime(),
    pausedLogged: false,
    evicting: false,
  };
  while (!run.stopped) {
    const now = run.deps.clock.now().getTime();
    if (closesAt && now >= closesAt.getTime()) return await windowClosed(w);
    let step: Step;
    try {
      step = await acquireStep(w, now);
    } catch (error) {
      step = await onFailure(w, error);
    }
    if (step !== "again") return run.stopped ? "stopped" : step;
  }
  return "stopped";
}

async function leave(w: Waiting): Promise<void> {
  w.run.metrics.setQueuePosition(null);
  try {
    await w.run.etcd(() => w.queue.leave(), "leave");
  } catch (error) {
    w.run.deps.log.warn(
      `cannot leave the wait queue (its entry expires with this machine's lease): ${
        oneLine(error)
      }`,
    );
  }
}

async function alreadyHeld(w: Waiting): Promise<"held"> {
  await leave(w);
  w.run.deps.log.info(`this machine (${w.run.id}) already holds a slot`);
  w.run.slotHeld = true;
  return "held";
}

async function windowClosed(w: Waiting): Promise<"window-closed"> {
  w.run.deps.log.info(
    "the reboot window closed before a slot was free; leaving the queue until the next window",
  );
  await leave(w);
  await afterRelease(w.run); // a lease prepared for a take that did not happen
  return "window-closed";
}

/**
 * The queue's state, after joining when out, or reading again when due.
 * A read that finds this machine out of the queue says so: the next step
 * joins again at once.
 */
async function currentState(w: Waiting): Promise<QueueState> {
  const { run, queue } = w;
  let state = queue.state();
  if (state.place === "out") {
    state = await run.etcd(() => queue.join(), "join");
    run.deps.log.info(
      `joined the wait queue: ${describeWait(state, state.doc)}`,
    );
  } else if (w.needRead) {
    // After a lost watch, a failure, or as the safety re-check.
    state = await run.etcd(() => queue.refresh(), "refresh");
    if (state.place === "out") {
      run.deps.log.info(
        "this machine is no longer in the wait queue (its entry was removed or expired): joining again",
      );
    }
  } else {
    return state;
  }
  w.lastRead = run.deps.clock.now().getTime();
  w.needRead = false;
  w.backoff.reset();
  return queue.state();
}

/** One look at the queue: take a slot, or wait for the next change. */
async function acquireStep(w: Waiting, now: number): Promise<Step> {
  const { run } = w;
  const state = await currentState(w);
  if (state.place === "out") return "again";
  run.metrics.setQueuePosition(state.ahead);
  const doc = state.doc;
  if (doc?.holders.includes(run.id)) return await alreadyHeld(w);
  // First in line and every slot held: a slot whose holder's lease
  // expired is reclaimed (with a slot TTL), then look again.
  if (
    state.place === "head" && doc !== undefined && doc.semaphore <= 0 &&
    await reclaimStaleSlots(run)
  ) return "again";
  const turn = decideTurn({
    place: state.place,
    ahead: state.ahead,
    front: state.front,
    free: doc?.semaphore ?? 0,
    freeSince: w.freeSince,
    now,
    handoverMs: run.tuning("handoverMs"),
  });
  if (turn.action === "take") {
    await takeSlot(w, state, turn.evictHead);
    return "held";
  }
  w.freeSince = turn.freeSince;
  const summary = describeWait(state, doc);
  if (summary !== w.lastSummary) {
    run.deps.log.info(`no slot free for this machine (${summary}); waiting`);
    w.lastSummary = summary;
  }
  return await waitForTurn(w, turn, now);
}

/** Waits for a change, the end of the hand-over time, the re-check or the window's end. */
async function waitForTurn(
  w: Waiting,
  turn: Turn & { action: "wait" },
  now: number,
): Promise<Step> {
  const nextRead = w.lastRead + w.run.tuning("safetyRecheckMs");
  const until = Math.min(
    turn.waitMs === undefined ? nextRead : now + turn.waitMs,
    nextRead,
    w.closesAt?.getTime() ?? Infinity,
  );
  const result = await w.queue.waitForChange(
    Math.max(0, until - now),
    w.run.signal,
  );
  if (result === "aborted") return "stopped";
  // The watch was lost, or the safety re-check is due: read again.
  if (
    result === "disconnected" || w.run.deps.clock.now().getTime() >= nextRead
  ) {
    w.needRead = true;
  }
  return "again";
}

/** Takes a slot (removing the silent waiters ahead with `evict`), and notes it. */
async function takeSlot(
  w: Waiting,
  state: QueueState,
  evict: boolean,
): Promise<void> {
  const { run, queue } = w;
  const { log, clock, boot } = run.deps;
  if (evict) {
    const ids = state.aheadIds ?? [state.headId ?? "the head"];
    const silent = ids.join(", ");
    const who = ids.length === 1
      ? `${silent}, first in line, did`
      : `${silent}, ahead in line, did`;
    log.warn(
      `a slot stayed free for ${
        formatDuration(
          clock.now().getTime() - (w.freeSince ?? clock.now().getTime()),
        )
      } while ${who} not take it: taking it and removing ${silent} from the queue`,
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
  w.evicting = evict;
  const { after, revision } = await run.etcd(
    () => queue.take({ evictHead: evict, record }),
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
}

/** What a failed step means: already held, look again, paused, or back off. */
async function onFailure(w: Waiting, error: unknown): Promise<Step> {
  const { run, queue } = w;
  const action = onLockFailure(error);
  if (action === "holding") return await alreadyHeld(w);
  if (action === "look-again") {
    // A take that also removed waiters ahead lost because one of them left
    // meanwhile: read the queue again rather than trying the same again.
    if (w.evicting) w.needRead = true;
    return "again";
  }
  if (action === "paused") {
    if (!w.pausedLogged) {
      run.deps.log.info(
        "the semaphore is paused (locksmithctl pause): waiting for 'locksmithctl resume'",
      );
      w.pausedLogged = true;
    }
    // The failed take stopped the queue's watches: read again first, so
    // that the wait below sees the resume.
    try {
      await run.etcd(() => queue.refresh(), "refresh");
    } catch {
      w.needRead = true; // the next step reads again (and backs off)
      return "again";
    }
    const recheckMs = run.tuning("safetyRecheckMs");
    if (await queue.waitForChange(recheckMs, run.signal) === "aborted") {
      return "stopped";
    }
    w.needRead = true;
    return "again";
  }
  w.needRead = true;
  return await run.backoff("cannot take a slot", error, w.backoff)
    ? "again"
    : "stopped";
}
