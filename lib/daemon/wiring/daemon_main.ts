/**
 * locksmithd wired to the real world: config files and environment, the
 * machine id, etcd or a FleetLock server (`fleetlock_wiring.ts`), the
 * system bus (update_engine, logind), a sentinel file, signals, and the
 * log on stderr; with the safe-reboot features configured, the commands,
 * metrics and notifications (`safety_wiring.ts`). What it opens at start
 * is in `open_parts.ts`; how it stops within its bound, in `shutdown.ts`.
 *
 * @module
 */

import { type StopOnSignals, stopOnSignals } from "../../host/signals.ts";
import {
  DAEMON_CONFIG_KEYS,
  DAEMON_USAGE,
  type DaemonConfig,
  loadDaemonConfig,
  parseDaemonArgs,
} from "../../config/config.ts";
import {
  answerHelpOrVersion,
  reportFailure,
  stderrLog,
} from "../../host/program_io.ts";
import { type DaemonOutcome, runDaemonLoop } from "../loop/loop.ts";
import type {
  BootInfo,
  Clock,
  DaemonLog,
  DaemonSettings,
} from "../loop/ports.ts";
import type { SystemBus } from "../../dbus/system_bus.ts";
import { realClock } from "../../host/clock.ts";
import { bootTimeId } from "../loop/decisions.ts";
import { exitCodeOf, oneLine, UsageError } from "../../common/errors.ts";
import { daemonPermissionNeeds } from "./daemon_permissions.ts";
import {
  envWithPrefix,
  readGrantedEnv,
  requirePermissions,
} from "../../host/permissions.ts";
import {
  ABANDONED,
  Closers,
  STOP_BUDGET_MS,
  STOP_GRACE_MS,
  untilStopped,
} from "./shutdown.ts";
import { checkRunPermissions, chooseRebooter } from "./safety_wiring.ts";
import {
  type BusPlan,
  machineIds,
  openBus,
  openLock,
  openSafety,
} from "./open_parts.ts";

/** The real clock: `setTimeout`, abortable; long sleeps are split into timers that fit. */
export const systemClock: Clock = realClock;

/** The kernel's boot id file. */
export const BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id";

/**
 * This boot's id and start time. The id is `LOCKSMITHD_BOOT_ID` (the
 * systemd units pass `%b`), else the kernel's (reading `/proc` takes
 * `--allow-all` under Deno), else derived from the boot time. `undefined`
 * (with a warning) when not even the uptime may be read.
 */
async function readBoot(
  configured: string | undefined,
  log: DaemonLog,
): Promise<BootInfo | undefined> {
  let time: Date;
  try {
    time = new Date(Date.now() - Deno.osUptime() * 1_000);
  } catch (error) {
    log.warn(
      `cannot read the uptime: ${
        oneLine(error)
      } (add --allow-sys=osUptime); slots are released after boot when no reboot is pending, and reboot sentinels are not checked against the boot time`,
    );
    return undefined;
  }
  if (configured !== undefined) return { id: configured, time };
  try {
    const id = (await Deno.readTextFile(BOOT_ID_PATH)).trim();
    if (id !== "") return { id, time };
  } catch {
    // Not readable here: derive an id from the boot time.
  }
  return { id: bootTimeId(time), time };
}

/** Checks at start that the sentinel file can be checked: missing is fine, forbidden is a configuration error. */
async function checkSentinel(path: string): Promise<void> {
  try {
    await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    const hint = error instanceof Deno.errors.NotCapable
      ? `; add --allow-read=${path}`
      : "";
    throw new UsageError(
      `LOCKSMITHD_REBOOT_SENTINEL=${path} cannot be checked: ${
        oneLine(error)
      }${hint}`,
    );
  }
}

/** What the start checks resolved: the configuration and the system bus module. */
interface Prepared extends BusPlan {
  readonly config: DaemonConfig;
}

/**
 * Parses `args`, loads the configuration, checks the permissions: the
 * prepared daemon, or the exit status when there is nothing to run
 * (`--help`, strategy `off`, a usage or configuration error).
 */
async function prepare(
  args: readonly string[],
  log: DaemonLog,
): Promise<Prepared | number> {
  let config: DaemonConfig;
  try {
    const parsed = parseDaemonArgs(args);
    const answered = answerHelpOrVersion(parsed, DAEMON_USAGE);
    if (answered !== undefined) return answered;
    config = await loadDaemonConfig({
      configFiles: parsed.configFiles,
      // Every LOCKSMITHD_* variable when they may be listed, so that an
      // unknown one is warned about (with the nearest known key).
      env: {
        ...envWithPrefix("LOCKSMITHD_"),
        ...readGrantedEnv(DAEMON_CONFIG_KEYS),
      },
      flags: parsed.flags,
    });
  } catch (error) {
    return reportFailure("locksmithd", error);
  }
  for (const warning of config.warnings) log.warn(warning);
  if (config.strategy === "off") {
    log.info("strategy is off: locksmithd has nothing to do, exiting");
    return 0;
  }
  try {
    const systemBus = await import("../../dbus/system_bus.ts");
    const busAddress = systemBus.systemBusAddress();
    requirePermissions(daemonPermissionNeeds(
      config,
      systemBus.busPermissionNeeds(systemBus.parseBusAddress(busAddress)),
    ));
    await checkSentinel(config.rebootSentinel);
    checkRunPermissions(config);
    return { config, systemBus, busAddress };
  } catch (error) {
    return reportFailure("locksmithd", error);
  }
}

/** The loop's settings, from the configuration. */
function loopSettings(config: DaemonConfig, machineId: string): DaemonSettings {
  return {
    strategy: config.strategy,
    machineId,
    schedule: config.rebootSchedule,
    loginDelayMs: config.loginDelayMs,
    endpoints: config.etcd.endpoints,
    group: config.group,
    bestEffortWaitMs: config.bestEffortWaitMs,
    rebootRetryLimitMs: config.rebootRetryLimitMs,
    preRebootCheck: config.preRebootCheck,
    healthCheck: config.healthCheck,
    healthCheckIntervalMs: config.healthCheckIntervalMs,
    healthCheckTimeoutMs: config.healthCheckTimeoutMs,
    commandTimeoutMs: config.commandTimeoutMs,
    slotTtlSeconds: config.slotTtlSeconds,
  };
}

/**
 * Opens what the daemon needs (adding each to `closers`) and runs the
 * loop until it ends or `signal` aborts; the exit status: 1 when the
 * system bus was lost, else 0.
 */
async function openAndRun(
  prepared: Prepared,
  signal: AbortSignal,
  closers: Closers,
  log: DaemonLog,
): Promise<number> {
  const { config } = prepared;
  const ids = await machineIds(config);
  const boot = await readBoot(config.bootId, log);
  const { metrics, notifier } = await openSafety(
    config,
    ids.machineId,
    closers,
    log,
  );
  const { bus, need, logind } = await openBus(prepared, boot, closers, log);
  const lock = await openLock(config, ids, closers, log);
  const busLoss = watchBusLoss(bus, signal, log);
  const stopped = AbortSignal.any([signal, busLoss.lost]);
  try {
    const outcome: DaemonOutcome = await runDaemonLoop(
      loopSettings(config, ids.machineId),
      {
        ...lock,
        boot,
        rebooter: chooseRebooter(config, logind, ids.machineId, metrics, log),
        warning: logind,
        need,
        clock: systemClock,
        log,
        random: Math.random,
        metrics,
        notifier,
      },
      stopped,
    );
    if (outcome === "rebooted") {
      log.info("waiting for the system to go down");
      await new Promise<void>((resolve) => {
        if (stopped.aborted) return resolve();
        stopped.addEventListener("abort", () => resolve(), { once: true });
      });
    }
    return busLoss.lost.aborted ? 1 : 0;
  } finally {
    busLoss.end();
  }
}

/**
 * A lost system bus cannot be recovered in-process: `lost` aborts when the
 * connection closes while the daemon runs (not by its own stop), so that
 * it stops and systemd restarts it. `end()` stops watching.
 */
function watchBusLoss(
  bus: SystemBus,
  signal: AbortSignal,
  log: DaemonLog,
): { lost: AbortSignal; end(): void } {
  const lost = new AbortController();
  let running = true;
  bus.closed.then(() => {
    if (signal.aborted || !running) return; // closed by the stop, or after the end
    log.warn(
      "the system bus connection closed: stopping so that systemd restarts locksmithd",
    );
    lost.abort();
  });
  return { lost: lost.signal, end: () => running = false };
}

/**
 * Runs locksmithd with `args` until it asked for a reboot and was stopped,
 * was stopped, or has nothing to do. Returns the exit status: 0 after a
 * clean stop or with strategy `off`, 1 on a runtime failure (e.g. no system
 * bus), 2 on a usage or configuration error. `stop` is the program's
 * signal listener when it was installed before this module loaded (see
 * `daemon.ts`); without it, one is installed now. A stop ends the daemon
 * with status 0 within {@link STOP_BUDGET_MS} of the signal, whatever it
 * waits on (`shutdown.ts`).
 */
export async function runDaemon(
  args: readonly string[],
  stop: StopOnSignals = stopOnSignals({ onHangup: () => {} }),
): Promise<number> {
  const log = stderrLog();
  let stoppedAt: number | undefined;
  // SIGHUP is logged and ignored: the configuration is read at start only.
  stop.handle({
    onStop: (name, first) => {
      if (!first) return;
      stoppedAt = performance.now();
      log.info(`${name} received: stopping`);
    },
    onHangup: () =>
      log.info(
        "SIGHUP received: locksmithd reads its configuration at start only; restart it to apply changes",
      ),
  });
  const closers = new Closers(log);
  try {
    const prepared = await prepare(args, log);
    if (typeof prepared === "number") return prepared;
    if (stop.signal.aborted) return 0; // stopped before anything was opened
    const status = await untilStopped(
      openAndRun(prepared, stop.signal, closers, log),
      stop.signal,
      STOP_GRACE_MS,
      log,
    );
    return status === ABANDONED ? 0 : status;
  } catch (error) {
    if (stop.signal.aborted) {
      // Closing under a step in flight makes it fail: that is the stop.
      log.info(`stopping: ${oneLine(error)}`);
      return 0;
    }
    log.error(oneLine(error));
    return exitCodeOf(error);
  } finally {
    stop.dispose();
    await closers.closeAll(
      stoppedAt === undefined ? undefined : stoppedAt + STOP_BUDGET_MS,
    );
  }
}
