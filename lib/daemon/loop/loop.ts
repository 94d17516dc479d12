/**
 * locksmithd's main loop: check this machine's slot at start (releasing it
 * once the health check passes), wait until a reboot is needed, then
 * (again after any setback) wait for the reboot schedule, ask the
 * pre-reboot check, take a slot, wait for logged-in users, ask the
 * pre-reboot check again, reboot. Every dependency is a parameter (see
 * `ports.ts`), so the loop is tested with fakes and a fake clock as well
 * as for real. Each phase is its own module: `startup.ts` (with
 * `health.ts`), `pre_reboot.ts`, `acquire.ts`, `reboot.ts`, `release.ts`;
 * with the `fleetlock` strategy, the slot comes from a FleetLock server
 * instead (`server_slot.ts`).
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import { acquireSlot } from "./acquire.ts";
import { acquireFromServer } from "./server_slot.ts";
import { type LockMode, lockMode, windowState } from "./decisions.ts";
import { backoffMs } from "../../common/backoff.ts";
import type { DaemonDeps, DaemonOutcome, DaemonSettings } from "./ports.ts";
import { PreRebootCheck } from "./pre_reboot.ts";
import { rebootNow, waitForUsers } from "./reboot.ts";
import { Run } from "./run.ts";
import {
  formatSchedule,
  type RebootSchedule,
} from "../../schedule/schedule.ts";
import { startupCheck } from "./startup.ts";

export type {
  BootInfo,
  Clock,
  DaemonDeps,
  DaemonLog,
  DaemonNotify,
  DaemonOutcome,
  DaemonSettings,
  Rebooter,
  RebootNeed,
  UserWarning,
} from "./ports.ts";

/** `reboot window Thu 04:00 for 1h (UTC)`, or `reboot schedule ...` for several entries. */
function describeSchedule(schedule: RebootSchedule): string {
  return `${
    schedule.entries.length === 1 ? "reboot window" : "reboot schedule"
  } ${formatSchedule(schedule)}`;
}

/** Runs locksmithd until it asked for a reboot, was stopped, or has nothing to do. */
export async function runDaemonLoop(
  settings: DaemonSettings,
  deps: DaemonDeps,
  signal: AbortSignal,
): Promise<DaemonOutcome> {
  const run = new Run(settings, deps, signal);
  const { strategy, machineId, schedule, group } = settings;
  const { log, need } = deps;
  if (strategy === "off") {
    log.info("strategy is off: locksmithd has nothing to do, exiting");
    return "off";
  }
  log.info(
    `starting: strategy ${strategy}, machine ${machineId}, ${
      deps.store ? `etcd ${run.endpoints}, group ${group || "(default)"}, ` : ""
    }${deps.lockServer ? `${deps.lockServer.name}, ` : ""}${
      schedule ? describeSchedule(schedule) : "no reboot window"
    }, reboot-needed source ${need.name}`,
  );
  const pending = await neededBy(run);
  // The start-up check runs beside the wait for a reboot; it is stopped
  // before taking a slot (the lock step then finds a slot still held).
  const checkStop = new AbortController();
  const check = startupCheck(
    run,
    pending !== undefined,
    AbortSignal.any([signal, checkStop.signal]), // aborted at once if `signal` is
  );
  try {
    let source = pending;
    if (source === undefined) {
      source = await need.waitUntilNeeded(
        signal,
        () => log.info(`waiting for a reboot to be needed (${need.name})`),
      );
      if (source === undefined) return "stopped";
    }
    log.info(`reboot needed (${source})`);
    run.metrics.setRebootNeeded(true);
    run.metrics.setWaitingSince(deps.clock.now());
    run.notify("reboot-needed", { source });
    return await rebootWhenAllowed(run, check, checkStop);
  } finally {
    checkStop.abort();
    await check;
  }
}

async function neededBy(run: Run): Promise<string | undefined> {
  try {
    return await run.deps.need.neededBy();
  } catch (error) {
    run.deps.log.warn(
      `cannot tell whether a reboot is needed: ${oneLine(error)}`,
    );
    return undefined;
  }
}

/** best-effort: uses the semaphore when etcd answered since start, or answers within the budget. */
async function decideLockMode(run: Run): Promise<LockMode> {
  const { store, log, clock } = run.deps;
  const mode = lockMode(run.settings.strategy, run.etcdAnswered);
  if (mode === "fleetlock") {
    // Never a reboot without a 2xx: a missing server is a wiring bug.
    if (run.deps.lockServer === undefined) {
      throw new Error("strategy fleetlock needs a lock server");
    }
    return mode;
  }
  if (mode !== "probe") return store ? mode : "no-slot";
  if (store === undefined) return "no-slot";
  const budget = run.tuning("bestEffortWaitMs");
  const until = clock.now().getTime() + budget;
  let last: unknown;
  for (let attempt = 1; !run.stopped; attempt++) {
    try {
      await run.etcd(() => store.read(), "read");
      log.info("etcd answers: best-effort takes a slot of the semaphore");
      return "etcd-lock";
    } catch (error) {
      if (run.etcdAnswered) return "etcd-lock"; // it answered, with a refusal
      last = error;
    }
    const left = until - clock.now().getTime();
    if (left <= 0) break;
    if (!await run.sleep(Math.min(left, backoffMs(attempt, run.deps.random)))) {
      break;
    }
  }
  if (!run.stopped) {
    log.warn(
      `best-effort: no etcd endpoint (${run.endpoints}) has answered since locksmithd started, nor within ${
        formatDuration(budget)
      } (${
        oneLine(last)
      }): this machine is not part of an etcd cluster; rebooting without a slot`,
    );
  }
  return "no-slot";
}

/**
 * Loops: schedule, pre-reboot check, slot, login delay, pre-reboot check,
 * reboot; again after the schedule closed, a veto, or a refused reboot.
 * The start-up check must be done before a slot is taken (a slot of an
 * earlier boot is released first, once healthy); without the semaphore
 * it is abandoned.
 */
async function rebootWhenAllowed(
  run: Run,
  check: Promise<void>,
  checkStop: AbortController,
): Promise<DaemonOutcome> {
  const { schedule } = run.settings;
  const { log, clock, queue } = run.deps;
  const preReboot = new PreRebootCheck(run);
  let mode: LockMode | undefined;
  let setbacks = 0;
  while (!run.stopped) {
    const state = windowState(schedule, clock.now());
    run.metrics.setWindowOpen(state.open);
    if (!state.open) {
      log.info(
        `waiting for the ${describeSchedule(schedule!)}: it opens at ${
          formatInZone(state.opensAt, schedule!.timeZone)
        }`,
      );
      if (!await sleepUntil(run, state.opensAt)) return "stopped";
      continue;
    }
    mode ??= await decideLockMode(run);
    if (run.stopped) return "stopped";
    if (mode === "no-slot") checkStop.abort();
    if (run.healthPending) {
      log.info(
        "waiting for the health check to pass before queueing for this reboot (the slot of the last reboot is still held)",
      );
    }
    await check;
    let holding = false;
    const lockServer = mode === "fleetlock" ? run.deps.lockServer : undefined;
    if ((mode === "etcd-lock" && queue) || lockServer) {
      const verdict = await preReboot.check("before-lock");
      if (verdict === "stopped") return "stopped";
      if (verdict === "vetoed") continue;
      const got = lockServer
        ? await acquireFromServer(run, lockServer, state.closesAt)
        : await acquireSlot(run, queue!, state.closesAt);
      if (got === "stopped") return "stopped";
      if (got === "window-closed") continue;
      holding = true;
    }
    if (!await waitForUsers(run)) return "stopped";
    const verdict = await preReboot.check("before-reboot");
    if (verdict === "stopped") return "stopped";
    if (verdict === "vetoed") continue;
    const outcome = await rebootNow(run, holding);
    if (outcome === "rebooted") return "rebooted";
    if (outcome === "stopped") return "stopped";
    // "slot-lost": queue again at once; "window-closed": wait for the next.
    if (outcome === "gave-up") {
      const delay = backoffMs(++setbacks + 3, run.deps.random);
      log.info(`trying again in ${formatDuration(delay)}`);
      if (!await run.sleep(delay)) return "stopped";
    }
  }
  return "stopped";
}

async function sleepUntil(run: Run, when: Date): Promise<boolean> {
  const ms = when.getTime() - run.deps.clock.now().getTime();
  return ms <= 0 ? !run.stopped : await run.sleep(ms);
}

/** `2026-03-05 04:00 Europe/Berlin (03:00 UTC)`: a time in the window's zone. */
export function formatInZone(when: Date, timeZone: string): string {
  const local = Temporal.Instant.fromEpochMilliseconds(when.getTime())
    .toZonedDateTimeISO(timeZone);
  const pad = (n: number) => String(n).padStart(2, "0");
  const text = `${local.year}-${pad(local.month)}-${pad(local.day)} ${
    pad(local.hour)
  }:${pad(local.minute)}`;
  return `${text} ${timeZone} (${when.toISOString()})`;
}
