/**
 * The state one run of locksmithd's loop shares between its phases: the
 * settings, the dependencies, the stop signal, and what it learned (whether
 * etcd has ever answered).
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import { backoffMs } from "../../common/backoff.ts";
import type { DaemonDeps, DaemonSettings } from "./ports.ts";
import type { ParsedCommand } from "../../host/command.ts";
import {
  commandEnv,
  DEFAULT_COMMAND_TIMEOUT_MS,
  runCommand,
} from "../../host/command_run.ts";
import {
  DEFAULT_BEST_EFFORT_WAIT_MS,
  DEFAULT_REBOOT_RETRY_LIMIT_MS,
} from "../../config/config_keys.ts";
import {
  DEFAULT_HEALTH_CHECK_INTERVAL_MS,
  DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
} from "../../config/config_keys_safety.ts";
import type { CheckOptions } from "../safety/health_gate.ts";
import {
  type DaemonMetrics,
  NO_METRICS,
  timeEtcdRequest,
} from "../observe/metrics_port.ts";
import type { NotifyEvent } from "../observe/notify.ts";

/** Defaults of the tunable settings (those of config keys are the keys' defaults). */
export const DEFAULTS = {
  safetyRecheckMs: 300_000,
  handoverMs: 10_000,
  bestEffortWaitMs: DEFAULT_BEST_EFFORT_WAIT_MS,
  rebootRetryLimitMs: DEFAULT_REBOOT_RETRY_LIMIT_MS,
  healthCheckIntervalMs: DEFAULT_HEALTH_CHECK_INTERVAL_MS,
  healthCheckTimeoutMs: DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
  commandTimeoutMs: DEFAULT_COMMAND_TIMEOUT_MS,
} as const;

/** One run of the loop; see the module documentation. */
export class Run {
  /** What locksmithd was configured to do. */
  readonly settings: DaemonSettings;
  /** The world. */
  readonly deps: DaemonDeps;
  /** Aborts when locksmithd must stop. */
  readonly signal: AbortSignal;
  /** Whether etcd has answered any request since start. */
  etcdAnswered = false;
  /** Whether the health gate after boot still holds this machine's slot. */
  healthPending = false;
  /** Where state and counters go. */
  readonly metrics: DaemonMetrics;
  #slotHeld = false;

  /**
   * Creates a run.
   *
   * @param settings configuration
   * @param deps dependencies
   * @param signal stop signal
   */
  constructor(settings: DaemonSettings, deps: DaemonDeps, signal: AbortSignal) {
    this.settings = settings;
    this.deps = deps;
    this.signal = signal;
    this.metrics = deps.metrics ?? NO_METRICS;
  }

  /** Whether this machine holds a slot, as far as this run knows (kept in the metrics too). */
  get slotHeld(): boolean {
    return this.#slotHeld;
  }

  set slotHeld(held: boolean) {
    this.#slotHeld = held;
    this.metrics.setSlotHeld(held);
  }

  /**
   * Notes a slot taken: the metrics, and the `slot-taken` event (with the
   * free slots and `max` when known: a FleetLock server need not say).
   */
  noteTaken(doc: { semaphore: number; max: number } | undefined): void {
    this.slotHeld = true;
    this.notify(
      "slot-taken",
      doc === undefined ? {} : { available: doc.semaphore, max: doc.max },
    );
  }

  /** Notes a slot released: the metrics, and the `slot-released` event. */
  noteReleased(why: string): void {
    this.slotHeld = false;
    this.notify("slot-released", { reason: why });
  }

  /** Queues a notification; never blocks, never throws. */
  notify(
    event: NotifyEvent,
    details: Readonly<Record<string, unknown>> = {},
  ): void {
    try {
      this.deps.notifier?.notify(event, details);
    } catch (error) {
      this.deps.log.warn(`notification ${event} not queued: ${oneLine(error)}`);
    }
  }

  /**
   * How to run `command` as a check: the command timeout, the commands'
   * environment (`PATH`, `LOCKSMITH_MACHINE_ID`, `LOCKSMITH_GROUP`), the
   * injected runner (or real processes), stopped by `signal`.
   */
  checkOptions(
    command: ParsedCommand,
    signal: AbortSignal = this.signal,
  ): CheckOptions {
    return {
      command,
      commandTimeoutMs: this.tuning("commandTimeoutMs"),
      env: commandEnv(this.id, this.settings.group ?? ""),
      run: this.deps.runCommand ?? runCommand,
      signal,
    };
  }

  /** Whether locksmithd was asked to stop. */
  get stopped(): boolean {
    return this.signal.aborted;
  }

  /** This machine's holder id. */
  get id(): string {
    return this.settings.machineId;
  }

  /** A tunable setting, or its default. */
  tuning(name: keyof typeof DEFAULTS): number {
    return this.settings[name] ?? DEFAULTS[name];
  }

  /** The endpoints, for log lines. */
  get endpoints(): string {
    return (this.settings.endpoints ?? []).join(",") || "the default endpoint";
  }

  /**
   * Runs an etcd call; notes that etcd answered when it did (even with a
   * refusal), and records its duration under `op` in the metrics.
   */
  async etcd<T>(call: () => Promise<T>, op = "request"): Promise<T> {
    try {
      const value = await timeEtcdRequest(this.metrics, op, call);
      this.etcdAnswered = true;
      return value;
    } catch (error) {
      if (
        error instanceof Error && error.name !== "EtcdUnavailableError" &&
        error.name !== "Error"
      ) {
        this.etcdAnswered = true; // refusals, corrupt documents: etcd answered
      }
      throw error;
    }
  }

  /** Sleeps `ms`; `false` when stopped. */
  sleep(ms: number, signal: AbortSignal = this.signal): Promise<boolean> {
    return this.deps.clock.sleep(ms, signal);
  }

  /**
   * Logs a failure and sleeps the backoff of `attempt`; `false` when stopped.
   * `what` says what failed, e.g. "cannot take a slot".
   */
  async backoff(
    what: string,
    error: unknown,
    attempt: number,
    signal: AbortSignal = this.signal,
  ): Promise<boolean> {
    const delay = backoffMs(attempt, this.deps.random);
    this.deps.log.warn(
      `${what}: ${oneLine(error)}; retrying in ${formatDuration(delay)}`,
    );
    return await this.sleep(delay, signal);
  }
}
