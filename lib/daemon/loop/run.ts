/**
 * The state one run of locksmithd's loop shares between its phases: the
 * settings, the dependencies, the stop signal, and what it learned (whether
 * etcd has ever answered; whether the peer, etcd or the FleetLock server,
 * answers again after an outage, which ends the backoffs waiting for it).
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import {
  Backoff,
  BACKOFF_MAX_MS,
  BACKOFF_MIN_MS,
  backoffMs,
} from "../../common/backoff.ts";
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
import type { LockServerAnswer } from "../../semaphore/lock_server.ts";

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

/**
 * While a retry waits out its backoff because the peer did not answer, it
 * is asked again (etcd: one read of the document; a FleetLock server: its
 * probe) after this long, doubling to {@link PROBE_MAX_MS}: once it
 * answers, the waiting retries go out at once.
 */
export const PROBE_MIN_MS = 1_000;
/** See {@link PROBE_MIN_MS}. */
export const PROBE_MAX_MS = 4_000;

/** Whether `error` means etcd did not answer (as opposed to answering with a refusal). */
function unanswered(error: unknown): boolean {
  return !(error instanceof Error) || error.name === "EtcdUnavailableError" ||
    error.name === "Error";
}

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
   * Answers of the peer so far (the backoffs reset when it moves):
   * successful etcd calls; the FleetLock server's grants, "full" answers,
   * answered probes, and any answer of its own after it did not answer.
   */
  #answers = 0;
  /** Whether the FleetLock server's last answer (or probe) was none. */
  #serverSilent = false;
  readonly #onAnswer = new Set<() => void>();

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
      this.#answered();
      return value;
    } catch (error) {
      if (!unanswered(error)) {
        this.etcdAnswered = true; // refusals, corrupt documents: etcd answered
      }
      throw error;
    }
  }

  /**
   * Notes the FleetLock server's answer to a call: a grant or a "full"
   * answer (the server works), or any answer of its own after none (the
   * server is back), counts as an answer of the peer; a refusal after
   * refusals does not, so that refusals in a row still back off.
   */
  noteServerAnswer(answer: LockServerAnswer): void {
    const answered = answer.ok || answer.answered;
    if (answer.ok || answer.full || (answered && this.#serverSilent)) {
      this.#answered();
    }
    this.#serverSilent = !answered;
  }

  /** Counts an answer of the peer and ends the sleeps waiting for one. */
  #answered(): void {
    this.#answers++;
    for (const wake of this.#onAnswer) wake();
  }

  /** The peer, for log lines: the FleetLock server, or etcd. */
  get #peer(): string {
    return this.deps.lockServer === undefined ? "etcd" : "the FleetLock server";
  }

  /**
   * A backoff for retrying calls to the peer, etcd or the FleetLock server
   * (5 s doubling to 5 min, jittered), which starts again from 5 s once the
   * peer has answered since the last failure (see {@link Run.noteServerAnswer}).
   */
  peerBackoff(): Backoff {
    return new Backoff({
      minMs: BACKOFF_MIN_MS,
      maxMs: BACKOFF_MAX_MS,
      jitter: "half",
      random: this.deps.random,
      answers: () => this.#answers,
    });
  }

  /** Sleeps `ms`; `false` when stopped. */
  sleep(ms: number, signal: AbortSignal = this.signal): Promise<boolean> {
    return this.deps.clock.sleep(ms, signal);
  }

  /**
   * Logs a failure and sleeps the backoff: of failure `attempt`, or the
   * next delay of `backoff` (from {@link Run.peerBackoff}); `false` when
   * stopped. `what` says what failed, e.g. "cannot take a slot". With a
   * peer backoff, when the peer did not answer (etcd: read from `error`;
   * the FleetLock server: `options.answered`), the sleep ends as soon as it
   * answers again: any call of this run, or a probe sent after 1 s, 2 s,
   * then every 4 s while the sleep lasts. `options.atMostMs` cuts the sleep
   * short (a reboot window closing), not the delay logged.
   */
  async backoff(
    what: string,
    error: unknown,
    attempt: number | Backoff,
    signal: AbortSignal = this.signal,
    options: { readonly answered?: boolean; readonly atMostMs?: number } = {},
  ): Promise<boolean> {
    const delay = typeof attempt === "number"
      ? backoffMs(attempt, this.deps.random)
      : attempt.next();
    const probing = typeof attempt !== "number" &&
      !(options.answered ?? !unanswered(error));
    this.deps.log.warn(
      `${what}: ${oneLine(error)}; retrying in ${formatDuration(delay)}${
        probing ? ` (or once ${this.#peer} answers again)` : ""
      }`,
    );
    const sleep = Math.max(0, Math.min(delay, options.atMostMs ?? delay));
    return probing
      ? await this.#sleepUntilAnswered(sleep, signal)
      : await this.sleep(sleep, signal);
  }

  async #sleepUntilAnswered(
    delay: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    const done = new AbortController();
    const end = () => done.abort();
    signal.addEventListener("abort", end, { once: true });
    this.#onAnswer.add(end);
    let slept = false;
    const sleeping = this.sleep(delay, done.signal).finally(() => {
      slept = true;
    });
    // A sleep that ended at once (an injected clock) needs no probe.
    await Promise.resolve();
    const probing = slept ? Promise.resolve() : this.#probe(done.signal);
    try {
      await sleeping;
    } finally {
      done.abort();
      signal.removeEventListener("abort", end);
      this.#onAnswer.delete(end);
      await probing;
    }
    return !signal.aborted;
  }

  /**
   * Asks the peer now and then (etcd: reads the document; a FleetLock
   * server: its probe) until it answers or `signal` aborts.
   */
  async #probe(signal: AbortSignal): Promise<void> {
    const { store, lockServer } = this.deps;
    if (store === undefined && lockServer === undefined) return;
    const probes = new Backoff({
      minMs: PROBE_MIN_MS,
      maxMs: PROBE_MAX_MS,
      jitter: "half",
      random: this.deps.random,
    });
    while (await this.sleep(probes.next(), signal)) {
      if (store === undefined) {
        let answered: boolean;
        try {
          answered = await lockServer!.probe(signal);
        } catch {
          return; // stopped, or the sleep ended
        }
        this.#serverSilent = !answered;
        if (!answered) continue; // still no answer: ask again later
        this.#answered();
        return;
      }
      try {
        await this.etcd(() => store.read(), "probe");
        return;
      } catch (error) {
        if (unanswered(error)) continue; // still no answer: ask again later
        // etcd answered, with a refusal: the retry goes out and reports it.
        for (const wake of this.#onAnswer) wake();
        return;
      }
    }
  }
}
