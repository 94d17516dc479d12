/**
 * A fleet of simulated machines rolling through a reboot: every machine is
 * told that a reboot is needed; each one that asks logind to reboot is
 * "rebooted" (its daemon restarted with no reboot pending, which releases its
 * slot). Shared by the fleet test and `deno task demo`.
 */

import { type Machine, startMachine } from "./machine.ts";

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
  /** Machines killed with SIGKILL as they join the queue, behind full slots and ahead of live machines (not expected to finish). */
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

  // Whether every slot was held at the last take or release seen: a
  // machine meant to die while it waits asks to reboot only then, so that
  // it cannot take a slot before the kill.
  let full = false;
  const onLine = (line: string, machine: Machine) => {
    emit({ kind: "log", machine: machine.id, line });
    const took = /took a slot: (\d+) of (\d+) held/.exec(line);
    if (took) full = took[1] === took[2];
    if (/released the slot held by/.test(line)) full = false;
    if (dead.has(machine.id) && /joined the wait queue/.test(line)) {
      machine.stopDaemon("SIGKILL").catch((e) => fail(e));
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
    await askToReboot(machines, dead, () => full);
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

/** Resolves once `condition()` holds; rejects after `timeoutMs`. */
async function until(
  condition: () => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`fleet: ${what} did not happen within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Makes update_engine ask every machine to reboot. Without dead machines,
 * all at once. With them, in groups in id order: the live machines before a
 * dead one all at once, until each has joined the queue; then, once every
 * slot is held, the dead one (killed as it joins, so it waits dead in the
 * middle of the queue, with live machines behind it).
 */
async function askToReboot(
  machines: readonly Machine[],
  dead: ReadonlySet<string>,
  full: () => boolean,
): Promise<void> {
  if (dead.size === 0) {
    await Promise.all(machines.map((m) => m.needReboot()));
    return;
  }
  const joined = /joined the wait queue/;
  let group: Machine[] = [];
  const flush = async () => {
    await Promise.all(group.map((m) => m.needReboot()));
    await Promise.all(group.map((m) => m.waitForLine(joined, 20_000, true)));
    group = [];
  };
  for (const machine of machines) {
    if (!dead.has(machine.id)) {
      group.push(machine);
      continue;
    }
    await flush();
    await until(full, `every slot held before ${machine.id} joins`);
    await machine.needReboot();
    await machine.waitForLine(joined, 20_000, true);
  }
  await flush();
}
