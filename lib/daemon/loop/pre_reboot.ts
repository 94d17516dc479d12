/**
 * The pre-reboot check (`LOCKSMITHD_PRE_REBOOT_CHECK`): run before this
 * machine joins the wait queue and again right before it reboots. Exit
 * status 0 means go; anything else (another status, a timeout, a program
 * that cannot start) means "not now": the machine holds no slot while it
 * waits (one held is given back), waits the daemon's backoff and asks
 * again. A veto is logged and notified once per distinct outcome.
 *
 * @module
 */

import { describeCommand } from "../../host/command.ts";
import { runCheck } from "../safety/health_gate.ts";
import { releaseSlot } from "./release.ts";
import type { Run } from "./run.ts";
import { type CheckStage, planAfterVeto } from "./safety_decisions.ts";

/** What the loop does after the check: go on, ask again later, or stop. */
export type PreRebootVerdict = "go" | "vetoed" | "stopped";

const STAGE_TEXT: Readonly<Record<CheckStage, string>> = {
  "before-lock": "before taking a slot",
  "before-reboot": "right before rebooting",
};

/** The pre-reboot check of one run of the loop; it remembers the vetoes in a row. */
export class PreRebootCheck {
  readonly #run: Run;
  #vetoes = 0;
  #lastReported: string | undefined;

  /**
   * Creates the check for `run`.
   *
   * @param run the loop's shared state
   */
  constructor(run: Run) {
    this.#run = run;
  }

  /**
   * Runs the check at `stage` ("go" at once when none is configured). On a
   * veto, gives back a slot held, logs and notifies a new outcome, and
   * waits the backoff before resolving `"vetoed"`; `"stopped"` when the
   * daemon was stopped meanwhile.
   */
  async check(stage: CheckStage): Promise<PreRebootVerdict> {
    const run = this.#run;
    const command = run.settings.preRebootCheck;
    if (command === undefined) return "go";
    const { log, random } = run.deps;
    const outcome = await runCheck(run.checkOptions(command));
    if (outcome.result === "aborted") return "stopped";
    run.metrics.countCommand("pre-reboot-check", outcome.result);
    const name = `pre-reboot check ${describeCommand(command)}`;
    if (outcome.result === "success") {
      if (this.#lastReported !== undefined) {
        log.info(`${name} says go now (${STAGE_TEXT[stage]})`);
        this.#lastReported = undefined;
      }
      // Vetoes in a row end when the reboot goes ahead, so that a check
      // that passes before locking and vetoes before rebooting backs off.
      if (stage === "before-reboot") this.#vetoes = 0;
      return "go";
    }
    const failure = outcome.failure ?? outcome.result;
    const plan = planAfterVeto({
      holding: run.slotHeld,
      vetoes: ++this.#vetoes,
      outcome: outcome.sameAs ?? failure,
      lastReported: this.#lastReported,
      random,
    });
    if (plan.report) {
      log.info(
        `${name} says not now (${STAGE_TEXT[stage]}): ${failure}; ${
          plan.release ? "giving the slot back and " : "not queueing; "
        }asking again with backoff (5s doubling to 5m); the same answer is not logged again`,
      );
      run.notify("pre-reboot-check-vetoed", {
        stage,
        command: command.key,
        failure,
      });
      this.#lastReported = outcome.sameAs ?? failure;
    }
    if (plan.release) {
      await releaseSlot(run, `the pre-reboot check said not now`);
    }
    return await run.sleep(plan.delayMs) ? "vetoed" : "stopped";
  }
}
