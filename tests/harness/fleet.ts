/**
 * A fleet of simulated machines rolling through a reboot: every machine is
 * told that a reboot is needed; each one that asks logind to reboot is
 * "rebooted" (its daemon restarted with no reboot pending, which releases its
 * slot). Shared by the fleet test and `deno task demo`.
 */

import { type Machine, startMachine } from "./machine.ts";
import { openEtcdStore } from "../../lib/etcd/open.ts";
import { EtcdSemaphoreAdmin } from "../../lib/etcd/store/semaphore_admin.ts";

/** Something that happened in the fleet, for a live view. */
export type FleetEvent =
  | { kind: "log"; machine: string; line: string }
  | { kind: "reboot-requested"; machine: string }
  | { kind: "rebooted"; machine: string }
  | { kind: "done"; reboots: Record<string, number> };

/** Options of {@link rollFleet}. */
export interface FleetOptions {
  /** Number of machines. */
  readonly machines: number;
  /** etcd endpoints, comma separated. */
  readonly endpoint: string;
  /** Semaphore group of the fleet (`LOCKSMITHD_GROUP`). */
  readonly group?: string;
  /** How long a simulated reboot takes, in ms (default 500). */
  readonly rebootMs?: number;
  /** Give up after this long, in ms (default 120 s). */
  readonly timeoutMs?: number;
  /** Called for each event as it happens. */
  readonly onEvent?: (event: FleetEvent) => void;
  /** Extra update.conf keys for every machine. */
  readonly config?: Record<string, string>;
  /** More update.conf keys per machine (e.g. a strategy), after {@link FleetOptions.config}. */
  readonly configOf?: (id: string) => Record<string, string>;
  /**
   * Machines killed with SIGKILL as they join the queue (not expected to
   * finish): each waits dead in the queue behind the machines before it in
   * id order and ahead of those after it, without ever taking a slot.
   */
  readonly dead?: readonly string[];
  /** Runs beside the rolling reboot, from the moment every machine was told to reboot. */
  readonly during?: (signal: AbortSignal) => Promise<void>;
}

/** The outcome of a rolling reboot. */
export interface FleetResult {
  /** Reboot requests per machine id. */
  readonly reboots: Record<string, number>;
  /** Machine ids in the order they asked to reboot. */
  readonly order: string[];
}

/** Machine ids of a fleet: `machine-01`, `machine-02`, ... */
export function fleetIds(n: number): string[] {
  return Array.from(
    { length: n },
    (_, i) => `machine-${String(i + 1).padStart(2, "0")}`,
  );
}

/**
 * Starts the machines, tells all of them to reboot, reboots each one when it
 * asks, and returns once every machine has rebooted and its restarted daemon
 * has released its slot. Always stops every machine.
 */
export async function rollFleet(options: FleetOptions): Promise<FleetResult> {
  const emit = options.onEvent ?? (() => {});
  const reboots: Record<string, number> = {};
  const order: string[] = [];
  const released = new Set<string>();
  const rebooting: Promise<void>[] = [];
  let fail: (e: Error) => void = () => {};
  let allDone: () => void = () => {};
  const failed = new Promise<never>((_, reject) => (fail = reject));
  const finished = new Promise<void>((resolve) => (allDone = resolve));
  const ids = fleetIds(options.machines);
  const dead = new Set(options.dead ?? []);
  const live = ids.filter((id) => !dead.has(id));
  const checkDone = () => {
    if (live.every((id) => released.has(id))) allDone();
  };

  // The SIGKILL of each dead machine, sent as it logs that it joined.
  const kills = new Map<string, Promise<number>>();
  const onLine = (line: string, machine: Machine) => {
    emit({ kind: "log", machine: machine.id, line });
    if (dead.has(machine.id) && /joined the wait queue/.test(line)) {
      if (!kills.has(machine.id)) {
        const kill = machine.stopDaemon("SIGKILL");
        kill.catch((e) => fail(e));
        kills.set(machine.id, kill);
      }
      return;
    }
    if (/reboot requested$/.test(line)) {
      reboots[machine.id] = (reboots[machine.id] ?? 0) + 1;
      order.push(machine.id);
      emit({ kind: "reboot-requested", machine: machine.id });
      rebooting.push(
        (async () => {
          await new Promise((r) => setTimeout(r, options.rebootMs ?? 500));
          await machine.reboot();
          emit({ kind: "rebooted", machine: machine.id });
        })().catch((e) => fail(e)),
      );
    }
    if (/released the slot held by .*: the reboot has happened/.test(line)) {
      released.add(machine.id);
      checkDone();
    }
  };

  const machines: Machine[] = [];
  try {
    for (const id of ids) {
      machines.push(
        await startMachine({
          id,
          endpoint: options.endpoint,
          config: {
            ...(options.group ? { LOCKSMITHD_GROUP: options.group } : {}),
            ...options.config,
            ...options.configOf?.(id),
          },
          onLine,
        }),
      );
    }
    for (const m of machines) m.startDaemon();
    await Promise.all(
      machines.map((m) => m.waitForLine(/waiting for a reboot to be needed/)),
    );
    await askToReboot(machines, dead, kills, options);
    const stopDuring = new AbortController();
    const during = options.during?.(stopDuring.signal).catch((e) => fail(e));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new Error(`fleet did not finish: ${JSON.stringify(reboots)}`)),
        options.timeoutMs ?? 120_000,
      );
    });
    try {
      await Promise.race([finished, failed, timeout]);
    } finally {
      clearTimeout(timer);
      stopDuring.abort();
      await during;
    }
    await Promise.all(rebooting);
    emit({ kind: "done", reboots });
    return { reboots, order };
  } finally {
    await Promise.all(machines.map((m) => m.close()));
  }
}

/**
 * Makes update_engine ask every machine to reboot. Without dead machines,
 * all at once. With them, in id order: each run of live machines all at
 * once, until each has joined the queue; then each run of dead machines
 * one by one while the semaphore is paused (as `locksmithctl pause` does,
 * so that none of them can take a slot, whatever the slots), each asked
 * once the one before it is dead in the queue, and killed as it joins. So
 * dead machines wait one behind the other, between the live machines
 * before and after them in id order.
 */
async function askToReboot(
  machines: readonly Machine[],
  dead: ReadonlySet<string>,
  kills: ReadonlyMap<string, Promise<number>>,
  options: FleetOptions,
): Promise<void> {
  if (dead.size === 0) {
    await Promise.all(machines.map((m) => m.needReboot()));
    return;
  }
  const joined = /joined the wait queue/;
  const store = await openEtcdStore(
    { endpoints: options.endpoint.split(","), timeoutMs: 5_000 },
    options.group,
  );
  const admin = new EtcdSemaphoreAdmin(store);
  try {
    let run: Machine[] = [];
    const flush = async () => {
      if (run.length === 0) return;
      if (dead.has(run[0]!.id)) {
        await admin.setPaused(true, "fleet harness: placing dead machines");
        for (const m of run) {
          await m.needReboot();
          await m.waitForLine(joined, 20_000, true);
          await kills.get(m.id);
        }
        await admin.setPaused(false, "fleet harness: placing dead machines");
      } else {
        await Promise.all(run.map((m) => m.needReboot()));
        await Promise.all(run.map((m) => m.waitForLine(joined, 20_000, true)));
      }
      run = [];
    };
    for (const machine of machines) {
      if (run.length > 0 && dead.has(run[0]!.id) !== dead.has(machine.id)) {
        await flush();
      }
      run.push(machine);
    }
    await flush();
  } finally {
    await store.close();
  }
}
