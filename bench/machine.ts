/**
 * One simulated machine for the benchmark: its own etcd client (its own TCP
 * connections, as a separate machine would have) and the real locksmithd
 * loop (`runDaemonLoop` from lib/daemon/loop.ts, with the real clock), whose
 * reboot is replaced by "report that the slot is held".
 */

import { Etcd3 } from "etcd3";
import { etcdClientOptions } from "../lib/etcd/grpc_client.ts";
import { EtcdLockStore } from "../lib/etcd/etcd_lock_store.ts";
import { runDaemonLoop } from "../lib/daemon/loop.ts";
import type { LockStore } from "../lib/semaphore/lock_store.ts";
import { systemClock } from "../lib/daemon/main.ts";

/** etcd request deadline of the simulated machines (locksmithd's default). */
export const TIMEOUT_MS = 5_000;

let machines = 0;

/**
 * Opens a store with locksmithd's client options. grpc-js shares one
 * connection between all clients of a process whose target and channel
 * options are equal; a channel option unique to each store (grpc-js ignores
 * unknown ones) gives each store its own connection, shared by its KV and
 * Watch clients, exactly as one locksmithd process has.
 */
export async function openMachineStore(
  endpoints: readonly string[],
  key: string,
  ownConnection = true,
  maxAttempts?: number,
): Promise<EtcdLockStore> {
  const options = {
    endpoints,
    timeoutMs: TIMEOUT_MS,
    ...(maxAttempts === undefined ? {} : { maxAttempts }),
  };
  const clientOptions = await etcdClientOptions(options);
  if (ownConnection) {
    clientOptions.grpcOptions = { "locksmith.bench.machine": ++machines };
  }
  return new EtcdLockStore(new Etcd3(clientOptions), key, options);
}

/** Options of {@link takeSlotLikeLocksmithd}. */
export interface MachineOptions {
  /** Called each time the loop logs that no slot is free and it starts waiting. */
  readonly onWaiting?: () => void;
  /** Called with each warning of the loop (etcd trouble, retries). */
  readonly onWarning?: (message: string) => void;
  /** Stops the loop. */
  readonly signal?: AbortSignal;
}

/**
 * Runs locksmithd's loop with a reboot already needed and no reboot window,
 * until it takes a slot (resolves `true`) or is stopped (`false`).
 */
export async function takeSlotLikeLocksmithd(
  store: LockStore,
  machineId: string,
  options: MachineOptions = {},
): Promise<boolean> {
  const outcome = await runDaemonLoop(
    {
      strategy: "etcd-lock",
      machineId,
      loginDelayMs: 0,
    },
    {
      store,
      rebooter: {
        reboot: () => Promise.resolve(),
        activeSessions: () => Promise.resolve(0),
      },
      need: {
        name: "benchmark",
        isNeeded: () => Promise.resolve(true),
        waitUntilNeeded: () => Promise.resolve(true),
      },
      clock: systemClock,
      log: {
        info: (m) => {
          if (m.startsWith("no slot free")) options.onWaiting?.();
        },
        warn: (m) => options.onWarning?.(m),
      },
      random: Math.random,
    },
    options.signal ?? new AbortController().signal,
  );
  return outcome === "rebooted";
}
