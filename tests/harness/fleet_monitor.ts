/**
 * Watches a semaphore and its wait queue during a fleet run, with the time
 * each change arrived, to check what the fleet promises beyond the
 * document's invariants: no slot stays free while a machine waits, and
 * machines take slots in the order they joined the queue.
 */

import { Etcd3 } from "etcd3";
import { parseSemaphore } from "../../lib/semaphore/document.ts";
import { waitersPrefix } from "../../lib/semaphore/keys.ts";
import { idOfCompanionKey } from "../../lib/semaphore/keys.ts";
import type { KeyVersion } from "./history.ts";
import { checkHistory, type HistoryReport } from "./invariants.ts";
import { fleetIds, type FleetResult } from "./fleet.ts";
import assert from "node:assert/strict";

/** One change seen, at a time. */
interface Sample {
  readonly at: number;
  readonly free: number;
  /** Machines waiting in the queue, not counting those known dead. */
  readonly waiters: number;
}

/** One machine becoming a holder. */
export interface FleetTake {
  /** The machine. */
  readonly id: string;
  /** Free slots in the document that made it a holder. */
  readonly freeAfter: number;
  /** Machines that joined the queue before it and were not holders yet, in join order. */
  readonly waitingAhead: readonly string[];
  /**
   * How long (ms) it took the slot after the queue first had room for it:
   * more free slots than entries ahead of it (dead ones included), so
   * that it could take one beside everyone ahead. `undefined` when it took
   * its slot without ever having had room (it stepped in for dead machines
   * ahead after the hand-over time).
   */
  readonly afterRoomMs: number | undefined;
}

/** What a run looked like. */
export interface FleetTimeline {
  /** Machine ids in the order they first joined the queue. */
  readonly joinOrder: string[];
  /** Machine ids in the order they first became holders. */
  readonly takeOrder: string[];
  /** Each first take, with who was waiting ahead of the taker. */
  readonly takes: FleetTake[];
  /** The longest time (ms) a slot stayed free while a machine was queued (not counting those known dead), and when it began. */
  readonly longestIdle: { ms: number; from: number };
  /** Every stretch (ms) a slot stayed free while a machine was queued (not counting those known dead), longest first. */
  readonly idle: number[];
  /** Every version of the document seen, in order (compactions cannot hide them from a live watch). */
  readonly versions: KeyVersion[];
}

/** A running monitor. */
export interface FleetMonitor {
  /** Stops watching and summarises. */
  stop(): Promise<FleetTimeline>;
}

/** Options of {@link startFleetMonitor}. */
export interface FleetMonitorOptions {
  /**
   * Machines killed while they wait: their queue entries still stand ahead
   * of others, but they are not counted as waiting in the idle figures.
   */
  readonly dead?: Iterable<string>;
}

/** Starts watching the semaphore at `key` (and its queue) on `endpoints`. */
export async function startFleetMonitor(
  endpoints: readonly string[],
  key: string,
  options: FleetMonitorOptions = {},
): Promise<FleetMonitor> {
  const client = new Etcd3({ hosts: [...endpoints] });
  const prefix = waitersPrefix(key);
  const dead = new Set(options.dead ?? []);
  /** Queued ids with the create revision of their entry (the queue's order). */
  const queued = new Map<string, number>();
  /** Since when each queued machine has had room (see {@link FleetTake.afterRoomMs}). */
  const roomSince = new Map<string, number>();
  const joinOrder: string[] = [];
  const takeOrder: string[] = [];
  const takes: FleetTake[] = [];
  const taken = new Set<string>();
  const samples: Sample[] = [];
  const versions: KeyVersion[] = [];
  let free = 0;
  const sample = () => {
    const at = performance.now();
    let waiters = 0;
    for (const [id, created] of queued) {
      if (!dead.has(id)) waiters++;
      let ahead = 0;
      for (const other of queued.values()) if (other < created) ahead++;
      if (free <= ahead) roomSince.delete(id);
      else if (!roomSince.has(id)) roomSince.set(id, at);
    }
    samples.push({ at, free, waiters });
  };
  const initial = await client.get(key).string();
  if (initial !== null) {
    const doc = parseSemaphore(initial, key);
    free = doc.semaphore;
    // Holders before the watch began (slots held by the test) took no slot in it.
    for (const id of doc.holders) taken.add(id);
  }
  sample();
  const watcher = await client.watch().prefix(key).create();
  watcher.on("put", (kv) => {
    const name = kv.key.toString();
    if (name === key) {
      versions.push({
        revision: Number(kv.mod_revision),
        value: kv.value.toString(),
      });
      const doc = parseSemaphore(kv.value.toString(), key);
      free = doc.semaphore;
      const fresh = doc.holders.filter((id) => !taken.has(id));
      const now = performance.now();
      for (const id of fresh) {
        const joined = joinOrder.indexOf(id);
        const room = roomSince.get(id);
        takes.push({
          afterRoomMs: room === undefined ? undefined : now - room,
          id,
          freeAfter: doc.semaphore,
          waitingAhead: joinOrder.slice(0, joined < 0 ? 0 : joined).filter(
            (other) => !taken.has(other) && !fresh.includes(other),
          ),
        });
      }
      for (const id of fresh) {
        taken.add(id);
        takeOrder.push(id);
      }
    } else {
      const id = idOfCompanionKey(prefix, name);
      if (id === undefined) return;
      if (!queued.has(id) && !joinOrder.includes(id)) joinOrder.push(id);
      if (!queued.has(id)) roomSince.delete(id); // (re)joined: a new wait
      queued.set(id, Number(kv.create_revision));
    }
    sample();
  });
  watcher.on("delete", (kv) => {
    const id = idOfCompanionKey(prefix, kv.key.toString());
    if (id === undefined) return;
    queued.delete(id);
    sample();
  });
  return {
    async stop() {
      // The watch may lag behind (its member was paused, say): write a
      // marker under the key and wait until the watch delivers it, so that
      // every change before it has been seen.
      const marker = `${key}/fleet-monitor-end`;
      const caughtUp = new Promise<void>((resolve) =>
        watcher.on("put", (kv) => {
          if (kv.key.toString() === marker) resolve();
        })
      );
      await client.put(marker).value(String(Date.now()));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        caughtUp,
        new Promise((r) => (timer = setTimeout(r, 20_000))),
      ]);
      clearTimeout(timer);
      await watcher.cancel();
      await client.delete().key(marker);
      client.close();
      const idle: number[] = [];
      let from: number | undefined;
      let longest = { ms: 0, from: 0 };
      for (const s of samples) {
        const stalled = s.free > 0 && s.waiters > 0;
        if (stalled && from === undefined) from = s.at;
        if (!stalled && from !== undefined) {
          idle.push(s.at - from);
          if (s.at - from > longest.ms) longest = { ms: s.at - from, from };
          from = undefined;
        }
      }
      idle.sort((a, b) => b - a);
      return {
        joinOrder,
        takeOrder,
        takes,
        longestIdle: longest,
        idle,
        versions,
      };
    },
  };
}

/**
 * The takes that broke the queue's order: a machine became a holder while
 * live machines that joined before it still waited and the slots left
 * were too few for all of them. (With enough free slots for everyone
 * ahead, a machine may take one first: the daemons' rule, so that a free
 * slot never waits for a slower machine ahead that will get one anyway.)
 * `dead` machines, killed while they waited, are not counted as waiting.
 */
export function orderBreaks(
  timeline: FleetTimeline,
  dead: ReadonlySet<string> = new Set(),
): string[] {
  return timeline.takes.flatMap((take) => {
    const ahead = take.waitingAhead.filter((id) => !dead.has(id));
    return ahead.length > take.freeAfter
      ? [
        `${take.id} took a slot, leaving ${take.freeAfter} free, while ${
          ahead.join(", ")
        } waited ahead of it`,
      ]
      : [];
  });
}

/** What a fleet run is checked against by {@link assertRolledThrough}. */
export interface FleetExpectation {
  /** The semaphore key. */
  readonly key: string;
  /** Number of machines in the fleet. */
  readonly machines: number;
  /** The semaphore's max. */
  readonly max: number;
  /** Machines killed while they waited (they neither reboot nor count as waiting). */
  readonly dead?: ReadonlySet<string>;
}

/**
 * Asserts what every fleet run promises: each live machine rebooted
 * exactly once; the document's invariants held at every version the
 * monitor saw live (compactions cannot hide them from a watch); never more
 * than `max` holders. Returns the history report.
 */
export function assertRolledThrough(
  result: FleetResult,
  timeline: FleetTimeline,
  expected: FleetExpectation,
): HistoryReport {
  const dead = expected.dead ?? new Set<string>();
  const live = fleetIds(expected.machines).filter((id) => !dead.has(id));
  assert.deepEqual(
    result.reboots,
    Object.fromEntries(live.map((id) => [id, 1])),
    "every live machine rebooted exactly once",
  );
  const report = checkHistory(expected.key, timeline.versions);
  assert.deepEqual(report.violations, [], "the document's invariants");
  assert.ok(
    report.maxHolders <= expected.max,
    `${report.maxHolders} holders, max ${expected.max}`,
  );
  return report;
}
