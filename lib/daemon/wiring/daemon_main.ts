/**
 * locksmithd wired to the real world: config files and environment, the
 * machine id, etcd or a FleetLock server (`fleetlock_wiring.ts`), the system bus (update_engine, logind), a sentinel file,
 * signals, and the log on stderr; with the safe-reboot features configured,
 * the commands, metrics and notifications (`safety_wiring.ts`).
 *
 * @module
 */

import { stopOnSignals } from "../../host/signals.ts";
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
import type { BootInfo, Clock, DaemonLog } from "../loop/ports.ts";
import { realClock } from "../../host/clock.ts";
import { bootTimeId, usesLock } from "../loop/decisions.ts";
import { exitCodeOf, oneLine, UsageError } from "../../common/errors.ts";
import { readMachineId } from "../../host/machine_id_file.ts";
import { anyRebootNeed, rebootNeedFrom } from "../../machine/reboot_need.ts";
import { SentinelFileSource } from "../../host/sentinel.ts";
import { daemonPermissionNeeds } from "./daemon_permissions.ts";
import { readGrantedEnv, requirePermissions } from "../../host/permissions.ts";
import type { LockStore } from "../../semaphore/lock_store.ts";
import { NO_METRICS } from "../observe/metrics_port.ts";
import {
  checkRunPermissions,
  chooseRebooter,
  openNotifier,
  serveMetrics,
  trackWindowOpen,
} from "./safety_wiring.ts";
import type { SlotQueue } from "../../semaphore/slot_queue.ts";
import type { SlotLease } from "../../semaphore/slot_lease.ts";
import { fleetLockHolderId, openFleetLockClient } from "./fleetlock_wiring.ts";

/** How long notifications still queued at exit may take to be sent. */
const NOTIFY_CLOSE_MS = 2_000;

/** The real clock: `setTimeout`, abortable; long sleeps are split into timers that fit. */
export const systemClock: Clock = realClock;

/** The etcd store, this machine's wait queue and the lease on its slot. */
async function openSemaphore(
  config: DaemonConfig,
  machineId: string,
  log: DaemonLog,
): Promise<{ store: LockStore; queue: SlotQueue; slotLease: SlotLease }> {
  const [
    { openEtcdStore },
    { LeaseSession },
    { EtcdWaitQueue },
    { EtcdSlotLease },
  ] = await Promise.all([
    import("../../etcd/open.ts"),
    import("../../etcd/lease_session.ts"),
    import("../../etcd/wait_queue.ts"),
    import("../../etcd/etcd_slot_lease.ts"),
  ]);
  const store = await openEtcdStore(config.etcd, config.group);
  const session = new LeaseSession(store.port, {
    timeoutMs: config.etcd.timeoutMs,
    log: (line) => log.warn(line),
  });
  const queue = new EtcdWaitQueue(store, {
    id: machineId,
    session,
    log: (line) => log.info(line),
  });
  const slotLease = new EtcdSlotLease(store, {
    id: machineId,
    log: (line) => log.warn(line),
  });
  return { store, queue, slotLease };
}

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

/**
 * Runs locksmithd with `args` until it asked for a reboot and was stopped,
 * was stopped, or has nothing to do. Returns the exit status: 0 after a
 * clean stop or with strategy `off`, 1 on a runtime failure (e.g. no system
 * bus), 2 on a usage or configuration error.
 */
export async function runDaemon(args: readonly string[]): Promise<number> {
  const log = stderrLog();
  let config: DaemonConfig;
  try {
    const parsed = parseDaemonArgs(args);
    const answered = answerHelpOrVersion(parsed, DAEMON_USAGE);
    if (answered !== undefined) return answered;
    config = await loadDaemonConfig({
      configFiles: parsed.configFiles,
      env: readGrantedEnv(DAEMON_CONFIG_KEYS),
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

  let systemBus: typeof import("../../dbus/system_bus.ts");
  let busAddress: string;
  try {
    systemBus = await import("../../dbus/system_bus.ts");
    busAddress = systemBus.systemBusAddress();
    requirePermissions(daemonPermissionNeeds(
      config,
      systemBus.busPermissionNeeds(systemBus.parseBusAddress(busAddress)),
    ));
    await checkSentinel(config.rebootSentinel);
    checkRunPermissions(config);
  } catch (error) {
    return reportFailure("locksmithd", error);
  }

  // SIGHUP is logged and ignored: the configuration is read at start only.
  const { signal, dispose } = stopOnSignals({
    onStop: (name, first) => first && log.info(`${name} received: stopping`),
    onHangup: () =>
      log.info(
        "SIGHUP received: locksmithd reads its configuration at start only; restart it to apply changes",
      ),
  });
  const closers: (() => Promise<void>)[] = [];
  try {
    const hostId = config.machineId ?? await readMachineId();
    const machineId = config.strategy === "fleetlock"
      ? await fleetLockHolderId(config, hostId)
      : hostId;
    const boot = await readBoot(config.bootId, log);
    const served = await serveMetrics(config, log);
    const metrics = served?.metrics ?? NO_METRICS;
    if (served) {
      const gaugeStop = new AbortController();
      const gauge = trackWindowOpen(
        config.rebootSchedule,
        metrics,
        systemClock,
        gaugeStop.signal,
      );
      closers.push(async () => {
        gaugeStop.abort();
        await gauge;
        await served.stop();
      });
    }
    const notifier = openNotifier(config, machineId, metrics, log);
    if (notifier) closers.push(() => notifier.close(NOTIFY_CLOSE_MS));
    const [{ LogindRebooter }, { UpdateEngineClient }] = await Promise.all([
      import("../../dbus/logind.ts"),
      import("../../dbus/update_engine.ts"),
    ]);
    const bus = await systemBus.connectSystemBus({
      address: busAddress,
      log: (line) => log.warn(line),
    });
    closers.push(() => bus.close());
    const engine = new UpdateEngineClient(bus, {
      log: (line) => log.warn(line),
    });
    const sentinel = new SentinelFileSource(config.rebootSentinel, {
      log: (line) => log.warn(line),
      bootTime: boot?.time,
    });
    const need = anyRebootNeed([
      rebootNeedFrom(engine),
      rebootNeedFrom(sentinel),
    ]);
    const semaphore = usesLock(config.strategy)
      ? await openSemaphore(config, machineId, log)
      : undefined;
    if (semaphore) {
      closers.push(() => semaphore.store.close());
      closers.push(() => semaphore.queue.close());
      closers.push(() => semaphore.slotLease.close());
    }
    const lockServer = config.strategy === "fleetlock"
      ? await openFleetLockClient(config, machineId)
      : undefined;
    if (lockServer) {
      closers.push(() => lockServer.close());
      if (machineId !== hostId) {
        log.info(
          `FleetLock id ${machineId}: Zincati's id of machine id ${hostId} (LOCKSMITHD_FLEETLOCK_ID=zincati)`,
        );
      }
    }
    // A lost system bus cannot be recovered in-process: stop, and let systemd restart us.
    const busLost = new AbortController();
    bus.closed.then(() => {
      if (!signal.aborted) {
        log.warn(
          "the system bus connection closed: stopping so that systemd restarts locksmithd",
        );
        busLost.abort();
      }
    });
    const stopped = AbortSignal.any([signal, busLost.signal]);
    const logind = new LogindRebooter(bus);
    const outcome: DaemonOutcome = await runDaemonLoop({
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
    }, {
      store: semaphore?.store,
      queue: semaphore?.queue,
      slotLease: semaphore?.slotLease,
      lockServer,
      boot,
      rebooter: chooseRebooter(config, logind, machineId, metrics, log),
      warning: logind,
      need,
      clock: systemClock,
      log,
      random: Math.random,
      metrics,
      notifier,
    }, stopped);
    if (outcome === "rebooted") {
      log.info("waiting for the system to go down");
      await new Promise<void>((resolve) => {
        if (stopped.aborted) return resolve();
        stopped.addEventListener("abort", () => resolve(), { once: true });
      });
    }
    return busLost.signal.aborted ? 1 : 0;
  } catch (error) {
    log.error(oneLine(error));
    return exitCodeOf(error);
  } finally {
    dispose();
    for (const close of closers.reverse()) await close().catch(() => {});
  }
}
