/**
 * The health gate in locksmithd's start-up check: a slot held across the
 * reboot is released only once the health check (`LOCKSMITHD_HEALTH_CHECK`)
 * exits 0. The check runs at once and again at the interval
 * (`runHealthGate`); after the timeout, an error is logged, the
 * `health-check-failed` event is notified, and the slot is kept, so that a
 * broken machine stops the rollout. The check goes on at the interval, a
 * changed failure logged once, and a pass releases the slot then: a
 * machine fixed by hand rejoins the rollout on its own.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { describeCommand } from "../../host/command.ts";
import { runCheck, runHealthGate } from "../safety/health_gate.ts";
import type { Run } from "./run.ts";

/**
 * Runs the health check until it passes (`true`: release the slot), or
 * until `signal` aborts (`false`). Never gives up on its own: after the
 * timeout it reports the machine unhealthy once and keeps checking.
 */
export async function waitUntilHealthy(
  run: Run,
  signal: AbortSignal,
): Promise<boolean> {
  const command = run.settings.healthCheck;
  if (command === undefined) return true;
  const { log, clock } = run.deps;
  const intervalMs = run.tuning("healthCheckIntervalMs");
  const check = run.checkOptions(command, signal);
  const started = clock.now().getTime();
  run.healthPending = true;
  try {
    const gate = await runHealthGate({
      ...check,
      intervalMs,
      timeoutMs: run.tuning("healthCheckTimeoutMs"),
      log,
      clock,
      onAttempt: (result) => run.metrics.countCommand("health-check", result),
    });
    if (gate.outcome === "aborted") return false;
    if (gate.outcome === "healthy") {
      run.notify("health-check-passed", {
        attempts: gate.attempts,
        elapsedMs: gate.elapsedMs,
      });
      return true;
    }
    run.notify("health-check-failed", {
      attempts: gate.attempts,
      elapsedMs: gate.elapsedMs,
      lastFailure: gate.lastFailure,
    });
    const name = `health check ${describeCommand(command)}`;
    let attempts = gate.attempts;
    let lastReported: string | undefined;
    for (;;) {
      if (!await run.sleep(intervalMs, signal)) return false;
      const outcome = await runCheck(check);
      if (outcome.result === "aborted") return false;
      run.metrics.countCommand("health-check", outcome.result);
      attempts++;
      const elapsed = formatDuration(clock.now().getTime() - started);
      if (outcome.result === "success") {
        log.info(
          `${name} passes now (attempt ${attempts}, ${elapsed} since the first)`,
        );
        run.notify("health-check-passed", {
          attempts,
          elapsedMs: clock.now().getTime() - started,
        });
        return true;
      }
      if (outcome.sameAs !== lastReported) {
        log.warn(
          `${name} still fails (attempt ${attempts}, ${elapsed} since the first): ${outcome.failure}; keeping the slot, checking again every ${
            formatDuration(intervalMs)
          } (the same failure is not logged again)`,
        );
        lastReported = outcome.sameAs;
      }
    }
  } finally {
    run.healthPending = false;
  }
}
