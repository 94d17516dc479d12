/**
 * The last steps before the reboot: the login delay while users are logged
 * in (with a warning to them through logind where it can), then the reboot
 * request (logind's `Reboot`, or `LOCKSMITHD_REBOOT_COMMAND`), retried with
 * backoff while it is refused or fails. Right before each request comes the
 * last check of the slot: a fresh read and lease renewal in etcd, acted on
 * only while it is younger than a quarter of the slot TTL. The schedule is checked again
 * before every attempt: a reboot never starts outside it. After
 * `rebootRetryLimitMs` of refusals the slot is released so that the fleet
 * is not blocked.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import {
  confirmationVerdict,
  type SlotConfirmation,
  windowState,
} from "./decisions.ts";
import { releaseSlot } from "./release.ts";
import type { Run } from "./run.ts";
import { wallMessage } from "./safety_decisions.ts";
import { afterRelease, confirmSlot, slotCovered } from "./holder_renewal.ts";

/** Longest wait for queued notifications before the reboot request. */
export const NOTIFY_FLUSH_MS = 2_000;

/** Tells logged-in users when the machine reboots; a logind without the calls is logged, not fatal. */
async function warnUsers(run: Run, delayMs: number): Promise<boolean> {
  const { warning, clock, log } = run.deps;
  if (warning === undefined) return false;
  const at = new Date(clock.now().getTime() + delayMs);
  const zone = run.settings.schedule?.timeZone ?? "UTC";
  try {
    await warning.warnUsers(wallMessage(delayMs, at, zone), at);
    log.info("warned logged-in users through logind's wall messages");
    return true;
  } catch (error) {
    log.warn(
      `cannot warn logged-in users through logind (${
        oneLine(error)
      }); rebooting after the delay without a warning`,
    );
    return false;
  }
}

async function cancelWarning(run: Run): Promise<void> {
  try {
    await run.deps.warning?.cancelWarning();
    run.deps.log.info("withdrew the reboot warning to logged-in users");
  } catch (error) {
    run.deps.log.warn(
      `cannot withdraw the reboot warning to logged-in users: ${
        oneLine(error)
      }`,
    );
  }
}

/**
 * Waits the login delay when users are logged in, warning them first;
 * `false` when stopped (the warning is then withdrawn).
 */
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
  const warned = await warnUsers(run, delay);
  const slept = await run.sleep(delay);
  // A reboot that follows needs no withdrawal: logind's dry run ends at
  // the announced time by itself, and "cancelled" would mislead the users.
  if (!slept && warned) await cancelWarning(run);
  return slept;
}

/** How the reboot step ended. */
export type RebootOutcome =
  | "rebooted"
  | "window-closed"
  | "gave-up"
  | "slot-lost"
  | "stopped";

/**
 * The last check before the Reboot call ({@link confirmSlot}), asked again
 * after etcd trouble (with backoff) and while the window stays open, until
 * it shows the slot held or gone. Resolves with a confirmation that holds,
 * `"lost"`, `"window-closed"` or `"stopped"`.
 */
async function confirmHeld(
  run: Run,
  open: () => boolean,
): Promise<SlotConfirmation | "lost" | "window-closed" | "stopped"> {
  for (let attempt = 1; !run.stopped; attempt++) {
    if (!open()) return "window-closed";
    try {
      const confirmation = await confirmSlot(run);
      return confirmation.held ? confirmation : "lost";
    } catch (error) {
      if (
        !await run.backoff(
          "cannot check this machine's slot before rebooting",
          error,
          attempt,
        )
      ) return "stopped";
    }
  }
  return "stopped";
}

/** The slot was found gone at the last check: not rebooting; the loop queues again. */
async function slotLost(run: Run): Promise<RebootOutcome> {
  run.deps.log.warn(
    "not rebooting: the last check before the reboot found that this machine no longer holds its slot (its lease expired and a waiting machine reclaimed it, or it was unlocked); queueing again",
  );
  run.slotHeld = false;
  await afterRelease(run);
  return "slot-lost";
}

/**
 * After a refused or failed reboot request: gives the slot back once the
 * requests have failed for the retry limit (`"gave-up"`), else waits the
 * backoff (`undefined`: try again; `"stopped"` when stopped meanwhile).
 */
async function afterFailure(
  run: Run,
  error: unknown,
  attempt: number,
  started: number,
  holding: boolean,
): Promise<RebootOutcome | undefined> {
  const waited = run.deps.clock.now().getTime() - started;
  if (waited >= run.tuning("rebootRetryLimitMs")) {
    run.deps.log.warn(
      `the reboot request has failed for ${formatDuration(waited)} (${
        oneLine(error)
      }); giving the slot back so that the fleet is not blocked, and queueing again later`,
    );
    run.notify("reboot-failed", {
      error: oneLine(error),
      attempts: attempt,
      gaveUp: true,
    });
    if (holding) await releaseSlot(run, "the reboot request kept failing");
    return "gave-up";
  }
  if (attempt === 1) {
    run.notify("reboot-failed", {
      error: oneLine(error),
      attempts: attempt,
      gaveUp: false,
    });
  }
  return await run.backoff("reboot request failed", error, attempt)
    ? undefined
    : "stopped";
}

/**
 * Asks for the reboot, as the module documentation describes. Everything
 * slow (notifications, and before this step the login delay and the
 * pre-reboot check) comes before the last check of the slot; after it,
 * only the Reboot call, and only while that check is young on the
 * monotonic clock ({@link confirmationVerdict}).
 */
export async function rebootNow(
  run: Run,
  holding: boolean,
): Promise<RebootOutcome> {
  const { log, clock, rebooter, notifier } = run.deps;
  const started = clock.now().getTime();
  const action = rebooter.action ?? "asking logind to reboot";
  const open = (): boolean => {
    const state = windowState(run.settings.schedule, clock.now());
    run.metrics.setWindowOpen(state.open);
    return state.open;
  };
  const closed = async (): Promise<RebootOutcome> => {
    log.info("the reboot window closed before the reboot was accepted");
    if (holding) {
      await releaseSlot(run, "the reboot window closed before rebooting");
    }
    return "window-closed";
  };
  for (let attempt = 1; !run.stopped; attempt++) {
    if (!open()) return await closed();
    if (holding && !slotCovered(run)) return "gave-up";
    log.info(
      `rebooting: ${action} (${holding ? "holding a slot" : "no slot"})`,
    );
    run.notify("reboot-requested", { attempt, holding });
    run.metrics.setLastRebootRequest(clock.now());
    if (notifier) {
      // Events could be lost once the system goes down: a short wait,
      // never a block, and before the last check of the slot.
      await notifier.flush(NOTIFY_FLUSH_MS).catch((error) => {
        log.warn(`notifications not flushed: ${oneLine(error)}`);
      });
    }
    if (!holding && !open()) return await closed();
    while (holding) {
      const held = await confirmHeld(run, open);
      if (held === "window-closed") return await closed();
      if (held === "stopped") return "stopped";
      if (held === "lost") return await slotLost(run);
      // Nothing but this comparison between the check and the call: a
      // pause anywhere before it makes the check old, and it is asked again.
      if (confirmationVerdict(held, clock.monotonicMs()) === "reboot") {
        break;
      }
      log.warn(
        "the last check of this machine's slot is too old to act on (the process was paused or starved): checking again",
      );
    }
    try {
      await rebooter.reboot(run.signal);
      log.info("reboot requested");
      run.metrics.setWaitingSince(null);
      return "rebooted";
    } catch (error) {
      // Stopping abandons the wait for logind's answer: not a failure.
      if (run.stopped) return "stopped";
      const ended = await afterFailure(run, error, attempt, started, holding);
      if (ended !== undefined) return ended;
    }
  }
  return "stopped";
}
