/**
 * The health gate after boot: locksmithd releases its slot only once the
 * health check (`LOCKSMITHD_HEALTH_CHECK`) exits 0. The check runs at once,
 * then again every interval after each failure, until it passes
 * ("healthy": release the slot) or the overall timeout has passed
 * ("unhealthy": keep the slot, so that a broken machine stops the rollout).
 * The last attempt starts at the deadline at the latest; none starts after it.
 *
 * Each failure is one warning line with the exit status and the end of the
 * output; giving up is one error line. A program that cannot be started
 * (not permitted, missing) counts as a failure: health that cannot be
 * checked is not health. The clock and the runner are injected, so the
 * decisions are tested without sleeping.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import { realClock, type SafetyClock } from "../../host/clock.ts";
import {
  commandSucceeded,
  describeCommand,
  describeResult,
  type ParsedCommand,
} from "../../host/command.ts";
import { type CommandRunner, runCommand } from "../../host/command_run.ts";
import type { CommandRunResult } from "../observe/metrics_port.ts";

/** Where the gate logs: one line per attempt that failed, one for the outcome. */
export interface HealthGateLog {
  /** The check passed. */
  info(message: string): void;
  /** An attempt failed; it will be retried. */
  warn(message: string): void;
  /** The gate gave up: the machine is unhealthy. */
  error(message: string): void;
}

/**
 * Settings of {@link runHealthGate}: those of one run ({@link CheckOptions};
 * its `signal` stops the whole gate, outcome `aborted`) and these.
 */
export interface HealthGateOptions extends CheckOptions {
  /** Time between the end of a failed attempt and the next one. */
  readonly intervalMs: number;
  /** Overall time after which the gate gives up. */
  readonly timeoutMs: number;
  /** Where to log. */
  readonly log: HealthGateLog;
  /** Clock for the deadline and the waits (default: the real one). */
  readonly clock?: SafetyClock;
  /** Told how each attempt ended (for `locksmithd_commands_total`). */
  readonly onAttempt?: (result: CommandRunResult) => void;
}

/** How the gate ended; `elapsedMs` is measured on the gate's clock. */
export type HealthGateResult =
  | {
    /** The check exited 0: release the slot. */
    readonly outcome: "healthy";
    /** Runs of the check, including the one that passed. */
    readonly attempts: number;
    /** Time from the start of the gate. */
    readonly elapsedMs: number;
  }
  | {
    /** The check kept failing until the timeout: keep the slot. */
    readonly outcome: "unhealthy";
    /** Runs of the check. */
    readonly attempts: number;
    /** Time from the start of the gate. */
    readonly elapsedMs: number;
    /** How the last attempt failed, one line (exit status and the end of the output). */
    readonly lastFailure: string;
  }
  | {
    /** The signal aborted the gate. */
    readonly outcome: "aborted";
    /** Runs of the check started. */
    readonly attempts: number;
    /** Time from the start of the gate. */
    readonly elapsedMs: number;
  };

/** What one run of a check gave (see {@link runCheck}). */
export interface CheckOutcome {
  /** How the run ended: `success` (exit 0), `failure`, `timeout`, `error` (could not start), or `aborted`. */
  readonly result: CommandRunResult | "aborted";
  /** For `failure`, `timeout` and `error`: one line saying how (exit status and the end of the output, or the start error). */
  readonly failure?: string;
  /** `failure` without the run time: equal for runs that failed alike (to log a repeated failure once). */
  readonly sameAs?: string;
}

/** Settings of {@link runCheck}. */
export interface CheckOptions {
  /** The check to run. */
  readonly command: ParsedCommand;
  /** Timeout of the run. */
  readonly commandTimeoutMs: number;
  /** The check's environment (default: the runner's, only `PATH`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Runs the check (default {@link runCommand}). */
  readonly run?: CommandRunner;
  /** Stops the run early: the result is `aborted`. */
  readonly signal?: AbortSignal;
}

/**
 * Runs a check once and says whether it passed; never throws. A program
 * that cannot be started is an `error`, not a pass. One attempt of the
 * health gate, and the whole of the pre-reboot check
 * (`LOCKSMITHD_PRE_REBOOT_CHECK`: anything but `success` means "not now").
 */
export async function runCheck(options: CheckOptions): Promise<CheckOutcome> {
  const run = options.run ?? runCommand;
  const signal = options.signal ?? new AbortController().signal;
  try {
    const r = await run(options.command, {
      timeoutMs: options.commandTimeoutMs,
      signal,
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    if (r.aborted || signal.aborted) return { result: "aborted" };
    if (commandSucceeded(r)) return { result: "success" };
    return {
      failure: describeResult(r),
      sameAs: describeResult(r, { duration: false }),
      result: r.timedOut ? "timeout" : "failure",
    };
  } catch (error) {
    if (signal.aborted) return { result: "aborted" };
    return { failure: oneLine(error), sameAs: oneLine(error), result: "error" };
  }
}

/**
 * Runs the health check until it passes or `timeoutMs` has passed (see the
 * module documentation). Never throws for a failing or missing check.
 */
export async function runHealthGate(
  options: HealthGateOptions,
): Promise<HealthGateResult> {
  const clock = options.clock ?? realClock;
  const signal = options.signal ?? new AbortController().signal;
  const { log, command } = options;
  const name = `health check ${describeCommand(command)}`;
  const start = clock.now().getTime();
  const deadline = start + options.timeoutMs;
  const elapsed = () => clock.now().getTime() - start;
  for (let attempts = 1;; attempts++) {
    if (signal.aborted) {
      return {
        outcome: "aborted",
        attempts: attempts - 1,
        elapsedMs: elapsed(),
      };
    }
    const { failure, result } = await runCheck({ ...options, signal });
    if (result === "aborted") {
      return { outcome: "aborted", attempts, elapsedMs: elapsed() };
    }
    options.onAttempt?.(result);
    if (failure === undefined) {
      log.info(
        `${name} passed (attempt ${attempts}, after ${
          formatDuration(elapsed())
        })`,
      );
      return { outcome: "healthy", attempts, elapsedMs: elapsed() };
    }
    const remaining = deadline - clock.now().getTime();
    if (remaining <= 0) {
      log.error(
        `${name} still fails after ${
          formatDuration(elapsed())
        } and ${attempts} attempt(s), giving up: keeping the slot so that the rollout stops; last failure: ${failure}`,
      );
      return {
        outcome: "unhealthy",
        attempts,
        elapsedMs: elapsed(),
        lastFailure: failure,
      };
    }
    const wait = Math.min(options.intervalMs, remaining);
    log.warn(
      `${name} failed (attempt ${attempts}): ${failure}; next attempt in ${
        formatDuration(wait)
      }, giving up in ${formatDuration(remaining)}`,
    );
    if (!await clock.sleep(wait, signal)) {
      return { outcome: "aborted", attempts, elapsedMs: elapsed() };
    }
  }
}
