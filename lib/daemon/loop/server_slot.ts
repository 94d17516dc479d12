/**
 * The slot of the `fleetlock` strategy, from a lock server (the FleetLock
 * client, `lib/fleetlock/client/client.ts`) instead of the etcd semaphore: the
 * three places where the loop touches its slot, for a server that shows no
 * document and keeps no queue.
 *
 * - **At start** ({@link releaseAtStart}): steady-state, as Zincati sends
 *   it after every start, whether or not a slot is held (the server cannot
 *   be asked); after the health check passes, when one is configured;
 *   retried with backoff until it succeeds.
 * - **Before rebooting** ({@link acquireFromServer}): pre-reboot until the
 *   server answers 2xx. A "full" answer keeps the machine waiting with a
 *   backoff of its own (5 s doubling to 1 min, with jitter: FleetLock has
 *   no watch, so waiting machines poll); other failures (the server down,
 *   5xx, a refusal) back off like etcd outages (5 s doubling to 5 min).
 *   Nothing but a 2xx ends the wait: the loop reboots only with a slot.
 * - **Giving the slot back** ({@link releaseThroughServer}): steady-state,
 *   retried until it succeeds (after a veto, a closed window, a failed
 *   reboot, and after boot).
 *
 * The backoff of failures is the run's peer backoff (`Run.peerBackoff`):
 * once the server answers again after an outage (a grant, "full", any
 * answer of its own after none, or the probe sent while the retry waits),
 * it starts again from 5 s and the waiting call goes out at once; refusals
 * in a row still double it, and "full" answers keep their own pace.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { describeCommand } from "../../host/command.ts";
import { backoffMs } from "../../common/backoff.ts";
import { waitUntilHealthy } from "./health.ts";
import type { ReleaseOutcome } from "./release.ts";
import type { Run } from "./run.ts";
import type {
  LockServer,
  LockServerAnswer,
  LockServerGrant,
} from "../../semaphore/lock_server.ts";
import type { AcquireOutcome } from "./acquire.ts";

/** First wait after a "full" answer: 5 s. */
export const FULL_RETRY_MIN_MS = 5_000;
/** Longest wait between pre-reboot calls while the server answers "full": 1 min. */
export const FULL_RETRY_MAX_MS = 60_000;

/**
 * Wait before pre-reboot call `attempt + 1` after `attempt` "full" answers
 * in a row: 5 s doubling to 1 min, with jitter in [50 %, 100 %] so that
 * waiting machines do not call in step.
 */
export function fullRetryMs(attempt: number, random: () => number): number {
  return backoffMs(attempt, random, FULL_RETRY_MIN_MS, FULL_RETRY_MAX_MS);
}

/** `(1 of 2 held)`, or what the server did not say. */
function describeGrant(grant: LockServerGrant): string {
  const counts = grant.held !== undefined && grant.max !== undefined
    ? `${grant.held} of ${grant.max} held`
    : "the server does not say how many are held";
  return `answered ${grant.status} (${
    grant.result === "already_held" ? "already held by this machine; " : ""
  }${counts})`;
}

/** Calls the server and notes its answer in `run`; `undefined` when stopped (the only rejection). */
async function ask(
  run: Run,
  call: () => Promise<LockServerAnswer>,
): Promise<LockServerAnswer | undefined> {
  let answer: LockServerAnswer;
  try {
    answer = await call();
  } catch {
    return undefined;
  }
  run.noteServerAnswer(answer);
  return answer;
}

/**
 * Takes this machine's slot from `server` before the window closes at
 * `closesAt` (if any); see the module documentation.
 */
export async function acquireFromServer(
  run: Run,
  server: LockServer,
  closesAt: Date | undefined,
): Promise<AcquireOutcome> {
  const { log, clock, random } = run.deps;
  let fullAnswers = 0;
  const backoff = run.peerBackoff();
  let uncertain = false;
  let lastFull: string | undefined;
  log.info(`asking the ${server.name} for a slot (pre-reboot)`);
  while (!run.stopped) {
    if (closesAt && clock.now().getTime() >= closesAt.getTime()) {
      log.info(
        "the reboot window closed before the FleetLock server granted a slot; asking again in the next window",
      );
      if (uncertain) {
        await releaseThroughServer(
          run,
          "the reboot window closed after a pre-reboot call whose answer was lost",
        );
      }
      return "window-closed";
    }
    const answer = await ask(run, () => server.lock(run.signal));
    if (answer === undefined) return "stopped";
    if (answer.ok) {
      run.metrics.countLockAttempt(
        answer.result === "already_held" ? "held" : "taken",
      );
      run.noteTaken(
        answer.held !== undefined && answer.max !== undefined
          ? { semaphore: answer.max - answer.held, max: answer.max }
          : undefined,
      );
      log.info(`took a slot: pre-reboot ${describeGrant(answer)}`);
      return "held";
    }
    uncertain ||= answer.uncertain;
    const left = closesAt === undefined
      ? undefined
      : closesAt.getTime() - clock.now().getTime();
    if (answer.full) {
      run.metrics.countLockAttempt("full");
      const delay = fullRetryMs(++fullAnswers, random);
      if (answer.message !== lastFull) {
        log.info(
          `no slot free for this machine (${answer.message}); asking again with backoff (${
            formatDuration(FULL_RETRY_MIN_MS)
          } doubling to ${
            formatDuration(FULL_RETRY_MAX_MS)
          }, with jitter); the same answer is not logged again`,
        );
        lastFull = answer.message;
      }
      const sleep = Math.min(delay, left ?? delay);
      if (!await run.sleep(Math.max(0, sleep))) return "stopped";
      continue;
    }
    run.metrics.countLockAttempt("error");
    if (
      !await run.backoff(
        "cannot take a slot",
        answer.message,
        backoff,
        run.signal,
        { answered: answer.answered, atMostMs: left },
      )
    ) {
      return "stopped";
    }
  }
  return "stopped";
}

/**
 * Gives this machine's slot back through the server (steady-state),
 * retried with backoff until it succeeds or `signal` aborts; logged once,
 * as `releaseSlot` logs an etcd release.
 */
export async function releaseThroughServer(
  run: Run,
  why: string,
  signal: AbortSignal = run.signal,
): Promise<ReleaseOutcome> {
  const { log, lockServer } = run.deps;
  if (lockServer === undefined) return "not-holding";
  let uncertain = false;
  const backoff = run.peerBackoff();
  while (!signal.aborted) {
    const answer = await ask(run, () => lockServer.unlock(signal));
    if (answer === undefined) return "stopped";
    if (answer.ok) {
      if (answer.result === "not_held" && !uncertain) {
        log.info(
          `this machine (${run.id}) holds no slot (the FleetLock server says so): nothing to release`,
        );
        run.slotHeld = false;
        return "not-holding";
      }
      const note = answer.result === "not_held"
        ? " (it is free now: an earlier attempt whose answer was lost applied, or someone released it meanwhile)"
        : answer.result === undefined
        ? " (steady-state answered 2xx: the server does not say whether it held one)"
        : "";
      log.info(`released the slot held by ${run.id}: ${why}${note}`);
      run.noteReleased(why);
      return "released";
    }
    uncertain ||= answer.uncertain;
    if (
      !await run.backoff(
        "cannot release the slot",
        answer.message,
        backoff,
        signal,
        { answered: answer.answered },
      )
    ) {
      return "stopped";
    }
  }
  return "stopped";
}

/**
 * At start: steady-state, whether or not this machine holds a slot (a
 * FleetLock server cannot be asked), once the health check passes when
 * one is configured; retried until it succeeds. Stops quietly when
 * `signal` aborts.
 */
export async function releaseAtStart(
  run: Run,
  rebootPending: boolean,
  signal: AbortSignal,
): Promise<void> {
  const { healthCheck } = run.settings;
  let why = rebootPending
    ? "locksmithd started with a reboot pending (steady-state at every start; pre-reboot follows)"
    : "the reboot has happened, or none was needed (steady-state at every start)";
  if (healthCheck !== undefined) {
    run.deps.log.info(
      `releasing this machine's slot, if it holds one (a FleetLock server cannot be asked), once the health check ${
        describeCommand(healthCheck)
      } passes`,
    );
    if (!await waitUntilHealthy(run, signal)) return;
    why = `${why}; the health check passed`;
  }
  const outcome = await releaseThroughServer(run, why, signal);
  // The server does not say when the slot was taken.
  if (outcome === "released" && !rebootPending) {
    run.notify("back-up", { took_at: null, away_seconds: null });
  }
}
