/**
 * The parts locksmithd opens at start (`main.ts`), each added to the
 * {@link Closers} as it opens: this machine's ids, the metrics server and
 * the notifier, the system bus with logind and the reboot-need sources,
 * and the etcd semaphore or the FleetLock client.
 *
 * @module
 */

import type { DaemonConfig } from "../../config/config.ts";
import type {
  BootInfo,
  DaemonDeps,
  DaemonLog,
  RebootNeed,
} from "../loop/ports.ts";
import type { SystemBus } from "../../dbus/system_bus.ts";
import type { LogindRebooter } from "../../dbus/logind.ts";
import { realClock } from "../../host/clock.ts";
import { usesLock } from "../loop/decisions.ts";
import { readMachineId } from "../../host/machine_id_file.ts";
import { anyRebootNeed, rebootNeedFrom } from "../../machine/reboot_need.ts";
import { SentinelFileSource } from "../../host/sentinel.ts";
import type { LockStore } from "../../semaphore/lock_store.ts";
import { type DaemonMetrics, NO_METRICS } from "../observe/metrics_port.ts";
import type { Notifier } from "../observe/notify.ts";
import type { Closers } from "./shutdown.ts";
import {
  openNotifier,
  serveMetrics,
  trackWindowOpen,
} from "./safety_wiring.ts";
import type { SlotQueue } from "../../semaphore/slot_queue.ts";
import type { SlotLease } from "../../semaphore/slot_lease.ts";
import { fleetLockHolderId, openFleetLockClient } from "./fleetlock_wiring.ts";

/** How long notifications still queued at exit may take to be sent. */
const NOTIFY_CLOSE_MS = 2_000;

/** The system bus module and the address, as the start checks resolved them. */
export interface BusPlan {
  /** The module, loaded once the configuration said a bus is needed. */
  readonly systemBus: typeof import("../../dbus/system_bus.ts");
  /** The system bus address. */
  readonly busAddress: string;
}

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
    import("../../etcd/queue/lease_session.ts"),
    import("../../etcd/queue/wait_queue.ts"),
    import("../../etcd/store/etcd_slot_lease.ts"),
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

/** This machine's ids: the host's machine id, and the holder id (Zincati's with FleetLock, if so configured). */
export async function machineIds(
  config: DaemonConfig,
): Promise<{ hostId: string; machineId: string }> {
  const hostId = config.machineId ?? await readMachineId();
  const machineId = config.strategy === "fleetlock"
    ? await fleetLockHolderId(config, hostId)
    : hostId;
  return { hostId, machineId };
}

/** The metrics server (with the window gauge) and the notifier, as configured. */
export async function openSafety(
  config: DaemonConfig,
  machineId: string,
  closers: Closers,
  log: DaemonLog,
): Promise<{ metrics: DaemonMetrics; notifier: Notifier | undefined }> {
  const served = await serveMetrics(config, log);
  const metrics = served?.metrics ?? NO_METRICS;
  if (served) {
    const gaugeStop = new AbortController();
    const gauge = trackWindowOpen(
      config.rebootSchedule,
      metrics,
      realClock,
      gaugeStop.signal,
    );
    closers.add("the metrics server", async () => {
      gaugeStop.abort();
      await gauge;
      await served.stop();
    });
  }
  const notifier = openNotifier(config, machineId, metrics, log);
  if (notifier) {
    closers.add(
      "the notifications",
      (budgetMs) => notifier.close(Math.min(NOTIFY_CLOSE_MS, budgetMs)),
    );
  }
  return { metrics, notifier };
}

/** The system bus, logind, and the reboot-need sources (update_engine, the sentinel file). */
export async function openBus(
  prepared: BusPlan & { readonly config: DaemonConfig },
  boot: BootInfo | undefined,
  closers: Closers,
  log: DaemonLog,
): Promise<{ bus: SystemBus; need: RebootNeed; logind: LogindRebooter }> {
  const { config, systemBus, busAddress } = prepared;
  const [{ LogindRebooter }, { UpdateEngineClient }] = await Promise.all([
    import("../../dbus/logind.ts"),
    import("../../dbus/update_engine.ts"),
  ]);
  const bus = await systemBus.connectSystemBus({
    address: busAddress,
    log: (line) => log.warn(line),
  });
  closers.add("the system bus connection", () => bus.close());
  const engine = new UpdateEngineClient(bus, {
    log: (line) => log.warn(line),
  });
  const sentinel = new SentinelFileSource(config.rebootSentinel, {
    log: (line) => log.warn(line),
    bootTime: boot?.time,
  });
  const need = anyRebootNeed(
    [rebootNeedFrom(engine), rebootNeedFrom(sentinel)],
    (line) => log.warn(line),
  );
  return { bus, need, logind: new LogindRebooter(bus) };
}

/** Where the slot comes from: the etcd semaphore, a FleetLock server, or nowhere. */
export async function openLock(
  config: DaemonConfig,
  ids: { hostId: string; machineId: string },
  closers: Closers,
  log: DaemonLog,
): Promise<Pick<DaemonDeps, "store" | "queue" | "slotLease" | "lockServer">> {
  const { machineId, hostId } = ids;
  const semaphore = usesLock(config.strategy)
    ? await openSemaphore(config, machineId, log)
    : undefined;
  if (semaphore) {
    closers.add("the etcd connection", () => semaphore.store.close());
    closers.add("the wait queue", () => semaphore.queue.close());
    closers.add("the lease on the slot", () => semaphore.slotLease.close());
  }
  const lockServer = config.strategy === "fleetlock"
    ? await openFleetLockClient(config, machineId)
    : undefined;
  if (lockServer) {
    closers.add("the FleetLock client", () => lockServer.close());
    if (machineId !== hostId) {
      log.info(
        `FleetLock id ${machineId}: Zincati's id of machine id ${hostId} (LOCKSMITHD_FLEETLOCK_ID=zincati)`,
      );
    }
  }
  return {
    store: semaphore?.store,
    queue: semaphore?.queue,
    slotLease: semaphore?.slotLease,
    lockServer,
  };
}
