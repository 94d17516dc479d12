/**
 * A simulated machine inside the benchmark process: locksmithd's real etcd
 * stack (a `GatewayPort` with its own HTTP client, hence its own
 * connections, an `EtcdLockStore`, a `LeaseSession` and an `EtcdWaitQueue`)
 * and locksmithd's real phases (`acquireSlot`, `startupCheck`) on the real
 * clock with the default settings. Only the reboot is simulated: the
 * machine that took a slot shuts down as locksmithd does on SIGTERM (its
 * queue closes, revoking its lease), and a new {@link SimMachine} with the
 * same id and a new boot id plays the next boot, whose start-up check
 * releases the slot.
 */

import {
  type AcquireOutcome,
  acquireSlot,
} from "../lib/daemon/loop/acquire.ts";
import { realClock } from "../lib/host/clock.ts";
import { Run } from "../lib/daemon/loop/run.ts";
import { startupCheck } from "../lib/daemon/loop/startup.ts";
import { EtcdLockStore } from "../lib/etcd/store/etcd_lock_store.ts";
import { GatewayPort } from "../lib/etcd/gateway/gateway.ts";
import { LeaseSession } from "../lib/etcd/queue/lease_session.ts";
import { EtcdWaitQueue } from "../lib/etcd/queue/wait_queue.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { lockSlot, setMaxSlots } from "../lib/semaphore/lock_store.ts";
import { openEtcdStore } from "../lib/etcd/open.ts";
import { CountingPort } from "./counting_port.ts";
import { noopRebootPorts } from "../tests/harness/noop_reboot.ts";

/** etcd request deadline of the simulated machines (locksmithd's default). */
export const TIMEOUT_MS = 5_000;

/** Options of a {@link SimMachine}. */
export interface SimMachineOptions {
  /** The etcd endpoints. */
  readonly endpoints: readonly string[];
  /** The semaphore group. */
  readonly group: string;
  /** The machine's id. */
  readonly id: string;
  /** This boot's id (default: a fresh one). */
  readonly bootId?: string;
  /** Where warnings go (daemon log warnings and the queue's own lines). */
  readonly onWarning?: (line: string) => void;
}

/** One simulated machine; see the module documentation. */
export class SimMachine {
  /** Its etcd port, counting what it sends (see {@link SimMachine.requests}). */
  readonly port: CountingPort;
  /** Its wait queue. */
  readonly queue: EtcdWaitQueue;
  /** The run of locksmithd's loop whose phases it runs. */
  readonly run: Run;
  readonly #store: EtcdLockStore;
  readonly #stop = new AbortController();
  #closed: Promise<void> | undefined;

  /**
   * Opens the machine's etcd stack; nothing is sent yet.
   *
   * @param options endpoints, group, id, boot id, warning sink
   */
  constructor(options: SimMachineOptions) {
    const warn = options.onWarning ?? (() => {});
    const etcd = { endpoints: options.endpoints, timeoutMs: TIMEOUT_MS };
    this.port = new CountingPort(
      new GatewayPort(etcd, Deno.createHttpClient({})),
    );
    this.#store = new EtcdLockStore(
      this.port,
      semaphoreKey(options.group),
      etcd,
    );
    const session = new LeaseSession(this.port, {
      timeoutMs: TIMEOUT_MS,
      log: warn,
    });
    this.queue = new EtcdWaitQueue(this.#store, {
      id: options.id,
      session,
      log: (line) => warn(`${options.id}: ${line}`),
    });
    this.run = new Run(
      { strategy: "etcd-lock", machineId: options.id, loginDelayMs: 0 },
      {
        store: this.#store,
        queue: this.queue,
        ...noopRebootPorts("benchmark"),
        clock: realClock,
        log: {
          info: () => {},
          warn: (m) => warn(`${options.id}: ${m}`),
          error: (m) => warn(`${options.id}: ${m}`),
        },
        random: Math.random,
        boot: {
          id: options.bootId ?? crypto.randomUUID(),
          time: new Date(),
        },
      },
      this.#stop.signal,
    );
  }

  /** Requests this machine sent so far, by kind (see `counting_port.ts`). */
  requests(): Readonly<Record<string, number>> {
    return { ...this.port.counts };
  }

  /** Takes a slot as locksmithd does: join the queue, wait for the turn, take. */
  acquire(): Promise<AcquireOutcome> {
    return acquireSlot(this.run, this.queue, undefined);
  }

  /** The next boot's start-up check (releases the slot the last boot took). */
  bootCheck(): Promise<void> {
    return startupCheck(this.run, false, this.#stop.signal);
  }

  /** Stops as locksmithd does: ends waiting, closes the queue (revoking the lease) and the port. */
  shutdown(): Promise<void> {
    this.#closed ??= (async () => {
      this.#stop.abort();
      await this.queue.close().catch(() => {});
      await this.#store.close();
    })();
    return this.#closed;
  }
}

/** Adds request counts by kind: `into += add - minus`. */
export function addRequests(
  into: Record<string, number>,
  add: Readonly<Record<string, number>>,
  minus: Readonly<Record<string, number>> = {},
): void {
  for (const [k, v] of Object.entries(add)) {
    const d = v - (minus[k] ?? 0);
    if (d !== 0) into[k] = (into[k] ?? 0) + d;
  }
}

/** Sets `group`'s semaphore to `max` slots, held by `holders` (through a store of its own). */
export async function prepareSemaphore(
  endpoints: readonly string[],
  group: string,
  max: number,
  holders: readonly string[] = [],
): Promise<void> {
  const store = await openEtcdStore(
    { endpoints, timeoutMs: TIMEOUT_MS },
    group,
  );
  try {
    await setMaxSlots(store, max);
    for (const id of holders) await lockSlot(store, id);
  } finally {
    await store.close();
  }
}
