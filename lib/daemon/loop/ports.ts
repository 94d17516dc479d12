/**
 * What locksmithd's loop needs from the world, as narrow interfaces (the
 * lock store, the wait queue and the lock server are in `lib/semaphore/`), and what it was
 * configured to do. The adapters (logind, update_engine, the sentinel file,
 * etcd) implement these; the tests use fakes.
 *
 * @module
 */

import type { MonotonicClock, SafetyClock } from "../../host/clock.ts";
import type { RebootStrategy } from "../../config/config.ts";
import type { RebootSchedule } from "../../schedule/schedule.ts";
import type { ParsedCommand } from "../../host/command.ts";
import type { CommandRunner } from "../../host/command_run.ts";
import type { DaemonMetrics } from "../observe/metrics_port.ts";
import type { NotifyEvent } from "../observe/notify.ts";
import type { LockStore } from "../../semaphore/lock_store.ts";
import type { SlotQueue } from "../../semaphore/slot_queue.ts";
import type { SlotLease } from "../../semaphore/slot_lease.ts";
import type { LockServer } from "../../semaphore/lock_server.ts";
import type {
  BootInfo,
  DaemonLog,
  Rebooter,
  UserWarning,
} from "../../machine/machine_ports.ts";
import type { RebootNeed } from "../../machine/reboot_need.ts";

export type { BootInfo, DaemonLog, Rebooter, RebootNeed, UserWarning };

/**
 * Time, injectable for tests: "now", an abortable sleep, and a monotonic
 * clock for ages that a pause or a clock step must not shorten
 * (`lib/host/clock.ts`).
 */
export type Clock = SafetyClock & MonotonicClock;

/** Where events go (a JSON POST per event, see `notify.ts`); never blocks. */
export interface DaemonNotify {
  /** Queues an event; returns at once and never throws. */
  notify(event: NotifyEvent, details?: Readonly<Record<string, unknown>>): void;
  /** Waits at most `timeoutMs` for the queued events to be sent; whether they were. */
  flush(timeoutMs: number): Promise<boolean>;
}

/** What locksmithd was configured to do. */
export interface DaemonSettings {
  /** The reboot strategy. */
  readonly strategy: RebootStrategy;
  /** This machine's id, the holder id in the semaphore. */
  readonly machineId: string;
  /** Reboot only while this schedule is open (a single window is a one-entry schedule); any time without one. */
  readonly schedule?: RebootSchedule | undefined;
  /** Delay before rebooting while users are logged in; 0 disables. */
  readonly loginDelayMs: number;
  /** The etcd endpoints, for log lines. */
  readonly endpoints?: readonly string[] | undefined;
  /** The semaphore group, for log lines (empty for the default group). */
  readonly group?: string | undefined;
  /** Longest wait for a slot between two re-reads when no change is seen (default 5 min). */
  readonly safetyRecheckMs?: number;
  /** How long a free slot is left to a head that does not take it before the second takes it (default 10 s). */
  readonly handoverMs?: number;
  /** best-effort: how long to try reaching etcd before deciding it is not there (default 30 s). */
  readonly bestEffortWaitMs?: number;
  /** How long logind may refuse to reboot before the slot is released (default 30 min). */
  readonly rebootRetryLimitMs?: number;
  /** Run before taking a slot and before rebooting; anything but exit 0 means not now. */
  readonly preRebootCheck?: ParsedCommand | undefined;
  /** Run after boot: the slot is released only once it exits 0. */
  readonly healthCheck?: ParsedCommand | undefined;
  /** Time between failed health checks (default 30 s). */
  readonly healthCheckIntervalMs?: number;
  /** Time after which a failing health check is reported and the slot kept (default 15 min). */
  readonly healthCheckTimeoutMs?: number;
  /** Limit of each run of a check (default 5 min). */
  readonly commandTimeoutMs?: number;
  /** Slot TTL in seconds when none is stored with the semaphore; `0` or absent for none (`LOCKSMITHD_SLOT_TTL`). */
  readonly slotTtlSeconds?: number | undefined;
}

/** What locksmithd needs from the world. */
export interface DaemonDeps {
  /** The semaphore; `undefined` for the `reboot` and `off` strategies. */
  readonly store: LockStore | undefined;
  /** This machine's place in the wait queue; present with the store. */
  readonly queue: SlotQueue | undefined;
  /** The FleetLock server of the `fleetlock` strategy (instead of store and queue). */
  readonly lockServer?: LockServer | undefined;
  /** Reboots the machine. */
  readonly rebooter: Rebooter;
  /** Tells when a reboot is needed. */
  readonly need: RebootNeed;
  /** Time. */
  readonly clock: Clock;
  /** Decision log. */
  readonly log: DaemonLog;
  /** Random source in [0, 1). */
  readonly random: () => number;
  /** This boot, when known (recorded with the slot). */
  readonly boot?: BootInfo | undefined;
  /** Where state and counters go (default: nowhere). */
  readonly metrics?: DaemonMetrics | undefined;
  /** Where events go (default: nowhere). */
  readonly notifier?: DaemonNotify | undefined;
  /** Warns logged-in users before a reboot (default: nobody is warned). */
  readonly warning?: UserWarning | undefined;
  /** Runs the checks (default `runCommand`, a real process). */
  readonly runCommand?: CommandRunner | undefined;
  /** The lease on this machine's slot and the reclaim of stale ones; absent: no slot TTL at all. */
  readonly slotLease?: SlotLease | undefined;
}

/** How the loop ended. */
export type DaemonOutcome = "off" | "rebooted" | "stopped";
