/**
 * The reboot command (`LOCKSMITHD_REBOOT_COMMAND`) as a `Rebooter`: run
 * instead of logind's `Reboot` (to drain first, to kexec, on hosts without
 * logind). Exit status 0 means the reboot was requested; anything else (a
 * status, a timeout, a program that cannot start) is a failed request,
 * which the reboot step retries like a refused logind reboot: the same
 * backoff, schedule re-check and retry limit. Logged-in sessions are still
 * counted by logind.
 *
 * @module
 */

import {
  commandSucceeded,
  describeCommand,
  describeResult,
  type ParsedCommand,
} from "../../host/command.ts";
import { type CommandRunner, runCommand } from "../../host/command_run.ts";
import type { CommandRunResult } from "../observe/metrics_port.ts";
import type { Rebooter } from "../../machine/machine_ports.ts";

/** Settings of a {@link CommandRebooter}. */
export interface CommandRebooterOptions {
  /** The reboot command. */
  readonly command: ParsedCommand;
  /** Limit of each run. */
  readonly timeoutMs: number;
  /** The command's whole environment. */
  readonly env: Readonly<Record<string, string>>;
  /** Counts logged-in sessions (logind). */
  readonly sessions: Pick<Rebooter, "activeSessions">;
  /** Logs how a successful run ended (failures are thrown, and logged by the caller). */
  readonly log: { info(message: string): void };
  /** Runs the command (default {@link runCommand}). */
  readonly run?: CommandRunner;
  /** Told how each run ended (for `locksmithd_commands_total`). */
  readonly onRun?: (result: CommandRunResult) => void;
}

/** A `Rebooter` that runs the reboot command (see the module documentation). */
export class CommandRebooter implements Rebooter {
  /** For log lines: `running LOCKSMITHD_REBOOT_COMMAND (/usr/local/sbin/drain)`. */
  readonly action: string;
  readonly #options: CommandRebooterOptions;

  /**
   * Creates a `CommandRebooter`.
   *
   * @param options the command, its limit and environment, the session count
   */
  constructor(options: CommandRebooterOptions) {
    this.#options = options;
    this.action = `running ${describeCommand(options.command)}`;
  }

  /**
   * Runs the command once; resolves when it exits 0, throws one line naming
   * the key, the program and how it failed (with the end of its output).
   */
  async reboot(signal?: AbortSignal): Promise<void> {
    const { command, timeoutMs, env, log, onRun } = this.#options;
    const run = this.#options.run ?? runCommand;
    let result;
    try {
      result = await run(command, {
        timeoutMs,
        env,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      onRun?.("error");
      throw error; // a CommandStartError: one line naming the key and the program
    }
    const described = `${describeCommand(command)} ${describeResult(result)}`;
    if (commandSucceeded(result)) {
      onRun?.("success");
      log.info(described);
      return;
    }
    if (!result.aborted) onRun?.(result.timedOut ? "timeout" : "failure");
    throw new Error(described);
  }

  /** Counts logged-in sessions through logind. */
  activeSessions(): Promise<number> {
    return this.#options.sessions.activeSessions();
  }
}
