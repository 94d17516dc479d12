/**
 * The last steps before the reboot: the login delay while users are logged
 * in, then logind's `Reboot`, retried with backoff while it refuses. The
 * window is checked again before every attempt: a reboot never starts
 * outside it. After `rebootRetryLimitMs` of refusals the slot is released
 * so that the fleet is not blocked.
 *
 * @module
 */

import { formatDuration } from "../common/duration.ts";
import { oneLine } from "../common/errors.ts";
import { backoffMs, windowState } from "./decisions.ts";
import { releaseSlot } from "./release.ts";
import type { Run } from "./run.ts";
import { slotCovered } from "./holder_renewal.ts";

/** Waits the login delay when users are logged in; `false` when stopped. */
export async function waitForUsers(run: Run): Promise<boolean> {
  const delay = run.settings.loginDelayMs;
  if (delay <= 0) return !run.stopped;
  let sessions = 0;
  try {
    sessions = await run.deps.rebooter.activeSessions();
  } catch (error) {
    run.deps.log.warn(`cannot list logged-in sessions: ${oneLine(error)}`);
  }
  if (sessions === 0) return !run.stopped;
  run.deps.log.info(
    `${sessions} user session(s) logged in: rebooting in ${
      formatDuration(delay)
    }`,
  );
  return await run.sleep(delay);
}

/** How the reboot step ended. */
export type RebootOutcome =
  | "rebooted"
  | "window-closed"
  | "gave-up"
  | "stopped";

/** Asks logind to reboot, as the module documentation describes. */
export async function rebootNow(
  run: Run,
  holding: boolean,
): Promise<RebootOutcome> {
  const { log, clock, random, rebooter } = run.deps;
  const started = clock.now().getTime();
  const limit = run.tuning("rebootRetryLimitMs");
  for (let attempt = 1; !run.stopped; attempt++) {
    if (!windowState(run.settings.window, clock.now()).open) {
      log.info("the reboot window closed before the reboot was accepted");
      if (holding) {
        await releaseSlot(run, "the reboot window closed before rebooting");
      }
      return "window-closed";
    }
    if (holding && !slotCovered(run)) return "gave-up";
    try {
      log.info(
        `rebooting: asking logind to reboot (${
          holding ? "holding a slot" : "no slot"
        })`,
      );
      await rebooter.reboot();
      log.info("reboot requested");
      return "rebooted";
    } catch (error) {
      const waited = clock.now().getTime() - started;
      if (waited >= limit) {
        log.warn(
          `the reboot request has failed for ${formatDuration(waited)} (${
            oneLine(error)
          }); giving the slot back so that the fleet is not blocked, and queueing again later`,
        );
        if (holding) {
          await releaseSlot(run, "the reboot request kept failing");
        }
        return "gave-up";
      }
      const delay = backoffMs(attempt, random);
      log.warn(
        `reboot request failed: ${oneLine(error)}; retrying in ${
          formatDuration(delay)
        }`,
      );
      if (!await run.sleep(delay)) return "stopped";
    }
  }
  return "stopped";
}
