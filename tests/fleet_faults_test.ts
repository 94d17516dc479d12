/**
 * Issue 19, cases 5 and 6 and "several free slots", with fleets of real
 * locksmithd processes on a real etcd (tests/harness/fleet.ts): machines
 * killed (SIGKILL) while they wait, two and three in a row, with live
 * machines behind them; several free slots with dead machines at the head
 * in turn; a waiting machine whose queue entry is deleted by hand; an etcd
 * outage (frozen with SIGSTOP, or killed and restarted) while machines wait
 * and one has just rebooted. For every run: never more holders than `max`,
 * every live machine reboots exactly once, and the idle slot stays within
 * the bounds of docs/guarantees.md ("Bounds"), measured by a watch on the
 * semaphore (tests/harness/fleet_monitor.ts) with dead machines not counted
 * as waiting.
 *
 * The same cases with in-process queue clients and a short hand-over time:
 * tests/queue_liveness_test.ts.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { type FleetEvent, fleetIds, rollFleet } from "./harness/fleet.ts";
import {
  assertRolledThrough,
  type FleetTimeline,
  orderBreaks,
  startFleetMonitor,
} from "./harness/fleet_monitor.ts";
import { openEtcdStore } from "../lib/etcd/open.ts";
import { DEFAULTS, PROBE_MAX_MS } from "../lib/daemon/loop/run.ts";
import {
  lockSlot,
  setMaxSlots,
  unlockSlot,
} from "../lib/semaphore/lock_store.ts";
import {
  idOfCompanionKey,
  semaphoreKey,
  waitersPrefix,
} from "../lib/semaphore/keys.ts";

/** Hand-over time of locksmithd (not configurable): a free slot left this long by those ahead goes to the next. */
const HANDOVER_MS = DEFAULTS.handoverMs;
/** Added to every bound, for a loaded 2-core machine. */
const SLACK_MS = 2_000;

const seconds = (ms: number): string => `${(ms / 1_000).toFixed(2)} s`;

/** One log line of a machine, with when it arrived. */
interface Line {
  readonly at: number;
  readonly machine: string;
  readonly line: string;
}

/** Every log line of a fleet run, and a way to wait for one. */
class FleetLog {
  readonly lines: Line[] = [];
  readonly #listeners = new Set<() => void>();

  /** Notes an event of the fleet. */
  add(event: FleetEvent): void {
    if (event.kind !== "log") return;
    this.lines.push({
      at: performance.now(),
      machine: event.machine,
      line: event.line,
    });
    for (const wake of this.#listeners) wake();
  }

  /** The lines of `machine` (of any when `undefined`) matching `pattern`, arrived at or after `since`. */
  find(
    machine: string | undefined,
    pattern: RegExp,
    since = 0,
  ): Line[] {
    return this.lines.filter((l) =>
      (machine === undefined || l.machine === machine) && l.at >= since &&
      pattern.test(l.line)
    );
  }

  /** Resolves with the first such line, waiting for it up to `timeoutMs`. */
  next(
    machine: string | undefined,
    pattern: RegExp,
    since = 0,
    timeoutMs = 30_000,
  ): Promise<Line> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const [found] = this.find(machine, pattern, since);
        if (found === undefined) return false;
        clearTimeout(timer);
        this.#listeners.delete(wake);
        resolve(found);
        return true;
      };
      const wake = () => void check();
      const timer = setTimeout(() => {
        this.#listeners.delete(wake);
        reject(
          new Error(
            `no line of ${
              machine ?? "any machine"
            } matching ${pattern} within ${timeoutMs} ms; log:\n${this.dump()}`,
          ),
        );
      }, timeoutMs);
      this.#listeners.add(wake);
      check();
    });
  }

  /** The whole log, one line per line, with times relative to the first. */
  dump(): string {
    const t0 = this.lines[0]?.at ?? 0;
    return this.lines.map((l) =>
      `${((l.at - t0) / 1_000).toFixed(2).padStart(7)} ${l.machine}: ${l.line}`
    ).join("\n");
  }
}

/** What a run's `during` gets. */
interface Running {
  readonly etcd: EtcdCluster;
  readonly key: string;
  readonly log: FleetLog;
  /** Releases the slots held by the test (`blocker-<n>`); resolves with when the last was released. */
  freeBlockers(): Promise<number>;
}

/** One fleet run. */
interface Case {
  readonly group: string;
  readonly machines: number;
  readonly max: number;
  readonly dead?: readonly string[];
  /** Slots held by the test (`blocker-<n>`) from before any machine needs a reboot until `during` frees them. */
  readonly blockers?: number;
  /** Give up on the run after this long. */
  readonly timeoutMs: number;
  /** Runs once every machine is in the queue (see rollFleet's `during`). */
  readonly during?: (running: Running, signal: AbortSignal) => Promise<void>;
}

/** What a run showed. */
interface Outcome {
  readonly timeline: FleetTimeline;
  readonly log: FleetLog;
  /** Idle stretches (ms), longest first, for the figures. */
  readonly idle: string;
}

/**
 * Rolls a fleet through `run` and checks what every run promises: each live
 * machine rebooted exactly once, never more holders than `max`, the
 * document's invariants at every revision.
 */
async function roll(etcd: EtcdCluster, run: Case): Promise<Outcome> {
  const key = semaphoreKey(run.group);
  const store = await openEtcdStore(
    { endpoints: etcd.endpoints, timeoutMs: 5_000 },
    run.group,
  );
  const blockers = Array.from(
    { length: run.blockers ?? 0 },
    (_, i) => `blocker-${i + 1}`,
  );
  try {
    await setMaxSlots(store, run.max);
    for (const id of blockers) await lockSlot(store, id);
    const dead = new Set(run.dead ?? []);
    const monitor = await startFleetMonitor(etcd.endpoints, key, { dead });
    const log = new FleetLog();
    const running: Running = {
      etcd,
      key,
      log,
      async freeBlockers() {
        for (const id of blockers) await unlockSlot(store, id);
        return performance.now();
      },
    };
    let result;
    try {
      result = await rollFleet({
        machines: run.machines,
        endpoint: etcd.endpoint,
        group: run.group,
        rebootMs: 300,
        timeoutMs: run.timeoutMs,
        dead: run.dead,
        onEvent: (event) => log.add(event),
        during: run.during && ((signal) => run.during!(running, signal)),
      });
    } catch (error) {
      await monitor.stop().catch(() => {});
      throw new Error(
        `${(error as Error).message}\nfleet log:\n${log.dump()}`,
      );
    }
    const timeline = await monitor.stop();
    assertRolledThrough(result, timeline, { key, ...run, dead });
    const idle = timeline.idle.map(seconds).join(", ") || "none";
    return { timeline, log, idle };
  } finally {
    await store.close();
  }
}

Deno.test("fleets of real daemons, max 1: live machines behind dead waiters in a row get the free slot within 1 s plus the hand-over time per dead waiter", async (t) => {
  const etcd = await startEtcd();
  try {
    for (const deadCount of [2, 3]) {
      await t.step(
        `${deadCount} dead in a row between live machines`,
        async () => {
          // machine-01 takes the slot; machine-02.. die in the queue one
          // behind the other; the two after them live.
          const dead = fleetIds(deadCount + 1).slice(1);
          const bound = 1_000 + deadCount * HANDOVER_MS;
          const { timeline, log, idle } = await roll(etcd, {
            group: `dead-in-a-row-${deadCount}`,
            machines: deadCount + 3,
            max: 1,
            dead,
            timeoutMs: bound + 30_000,
          });
          // The first live machine behind them stepped in for all of
          // them at once.
          const stepIns = log.find(
            undefined,
            new RegExp(`removing ${dead.join(", ")} from the queue$`),
          );
          // The taker's own measure, and when its line arrived after
          // machine-01's release line: beside the monitor's figure, they
          // tell a late decision from a late write or a late watch.
          const [release] = log.find(
            "machine-01",
            /released the slot held by machine-01/,
          );
          const [stepIn] = stepIns;
          console.log(
            `  ${deadCount} dead in a row, max 1: longest idle slot ${
              seconds(timeline.longestIdle.ms)
            } (bound ${seconds(bound)}); idle stretches: ${idle}; the taker: ${
              /stayed free for (\S+)/.exec(stepIn?.line ?? "")?.[1] ?? "?"
            }, its line ${
              release && stepIn ? seconds(stepIn.at - release.at) : "?"
            } after the release's`,
          );
          assert.equal(
            stepIns.length,
            1,
            `one machine removed ${dead.join(", ")}:\n${log.dump()}`,
          );
          assert.deepEqual(
            orderBreaks(timeline, new Set(dead)),
            [],
            "machines took slots in the order they joined the queue",
          );
          assert.ok(
            timeline.longestIdle.ms < bound + SLACK_MS,
            `a slot stayed free for ${
              seconds(timeline.longestIdle.ms)
            } while a live machine waited (idle stretches: ${idle}):\n${log.dump()}`,
          );
        },
      );
    }
  } finally {
    await etcd.close();
  }
});

Deno.test("a fleet of real daemons, max 3, with dead machines at the head in turn: a live machine with room for everyone ahead takes a slot within 1 s", async () => {
  const etcd = await startEtcd();
  try {
    // Queue behind 3 slots held by the test: dead, live, live, dead, live,
    // live, dead, live. Freeing the 3 slots at once leaves room for the
    // first two live machines beside the dead head; each release after a
    // reboot makes room for the next; the last one, behind three dead
    // machines, steps in for them after the hand-over time.
    const dead = ["machine-01", "machine-04", "machine-07"];
    const { timeline, idle } = await roll(etcd, {
      group: "several-free",
      machines: 8,
      max: 3,
      dead,
      blockers: 3,
      timeoutMs: 90_000,
      during: async (running) => void await running.freeBlockers(),
    });
    const withRoom = timeline.takes.filter((t) => t.afterRoomMs !== undefined);
    console.log(
      `  max 3, dead at the head in turn: ${
        withRoom.map((t) => `${t.id} took ${seconds(t.afterRoomMs!)}`).join(
          ", ",
        )
      } after it had room for everyone ahead; longest idle slot ${
        seconds(timeline.longestIdle.ms)
      }; idle stretches: ${idle}`,
    );
    // The three slots came free together with one dead machine ahead of
    // machine-02 and machine-03.
    assert.deepEqual(
      withRoom.slice(0, 2).map((t) => t.id).sort(),
      ["machine-02", "machine-03"],
      "the first two live machines had room as the slots came free",
    );
    for (const take of withRoom) {
      assert.ok(
        take.afterRoomMs! < 1_000 + SLACK_MS,
        `${take.id} took its slot ${
          seconds(take.afterRoomMs!)
        } after there was room for everyone ahead of it`,
      );
    }
    assert.deepEqual(
      orderBreaks(timeline, new Set(dead)),
      [],
      "machines took slots in the order they joined the queue",
    );
    // machine-08, with three dead ahead and at most three slots free,
    // waits one hand-over time at most once the slots are free.
    assert.ok(
      timeline.longestIdle.ms < 1_000 + HANDOVER_MS + SLACK_MS,
      `a slot stayed free for ${
        seconds(timeline.longestIdle.ms)
      } while a live machine waited (idle stretches: ${idle})`,
    );
  } finally {
    await etcd.close();
  }
});

Deno.test("a fleet of real daemons, max 1: the first in line, its queue entry deleted while it waits, joins again at once and still reboots", async () => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    const machines = 4;
    let first = "";
    let rejoinMs = 0;
    let rejoinedAt = 0;
    const { timeline, log, idle } = await roll(etcd, {
      group: "entry-deleted",
      machines,
      max: 1,
      blockers: 1,
      timeoutMs: 60_000,
      during: async (running) => {
        for (const id of fleetIds(machines)) {
          await running.log.next(id, /joined the wait queue/);
        }
        // Behind the slot the test holds, the first in line loses its
        // entry, as when a machine behind it evicts it.
        const prefix = waitersPrefix(running.key);
        const queue = (await client.getAll().prefix(prefix).exec()).kvs;
        assert.equal(queue.length, machines, "every machine in the queue");
        const head = queue.reduce((a, b) =>
          Number(a.create_revision) < Number(b.create_revision) ? a : b
        );
        first = idOfCompanionKey(prefix, head.key.toString())!;
        const deletedAt = performance.now();
        const gone = await client.delete().key(head.key).exec();
        assert.equal(gone.deleted, "1", `${first} was in the queue`);
        const rejoined = await running.log.next(
          first,
          /joined the wait queue/,
          deletedAt,
          20_000,
        );
        rejoinMs = rejoined.at - deletedAt;
        rejoinedAt = rejoined.at;
        await running.freeBlockers();
      },
    });
    console.log(
      `  ${first}'s entry deleted to joined again: ${
        seconds(rejoinMs)
      }; longest idle slot ${
        seconds(timeline.longestIdle.ms)
      }; idle stretches: ${idle}`,
    );
    assert.ok(
      rejoinMs < 1_000 + SLACK_MS,
      `${first} joined again ${
        seconds(rejoinMs)
      } after its entry was deleted:\n${log.dump()}`,
    );
    assert.deepEqual(
      log.find(first, /in line behind \d+ or more machines/),
      [],
      `${first} never claimed a place in a line it was not in`,
    );
    // It joined again at the back; the others went first, in their order.
    const others = timeline.joinOrder.filter((id) => id !== first);
    assert.match(
      log.find(first, /joined the wait queue/, rejoinedAt)[0]!.line,
      new RegExp(`in line behind ${others.join(", ")}$`),
    );
    assert.deepEqual(timeline.takeOrder, [...others, first]);
    assert.ok(
      timeline.longestIdle.ms < 1_000 + SLACK_MS,
      `a slot stayed free for ${
        seconds(timeline.longestIdle.ms)
      } while a machine waited (idle stretches: ${idle})`,
    );
  } finally {
    client.close();
    await etcd.close();
  }
});

/** An etcd outage: how it begins, and how it ends (resolving with when etcd answers again). */
interface Outage {
  readonly name: string;
  /** Whether every waiter fails at once (its watch is cut), not only the holder. */
  readonly cutsWatches: boolean;
  begin(etcd: EtcdCluster): Promise<void>;
  end(etcd: EtcdCluster): Promise<number>;
}

const OUTAGES: readonly Outage[] = [
  {
    name: "frozen (SIGSTOP)",
    cutsWatches: false,
    begin: (etcd) => Promise.resolve(etcd.members[0]!.pause()),
    end: (etcd) => {
      etcd.members[0]!.resume();
      return Promise.resolve(performance.now());
    },
  },
  {
    name: "killed and restarted",
    cutsWatches: true,
    begin: (etcd) => etcd.members[0]!.kill(),
    end: async (etcd) => {
      await etcd.members[0]!.start();
      await etcd.waitHealthy();
      return performance.now();
    },
  },
];

/** Milliseconds of a duration as locksmithd logs it (`formatDuration`: `12s304ms`, `1m5s`). */
function parseLogged(text: string): number {
  const unit = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
  let ms = 0;
  for (const [, n, u] of text.matchAll(/(\d+)(ms|h|m|s)/g)) {
    ms += Number(n) * unit[u as keyof typeof unit];
  }
  return ms;
}

/**
 * The outage ends once the rebooted holder has logged a retry at least
 * this far off (its third failure: 5 s doubling, jittered to 50-100 %), so
 * that waiting out the backoff would miss the bound by far; when the outage
 * cuts the watches, once every waiter has too.
 */
const LONG_RETRY_MS = 10_000;

Deno.test("fleets of real daemons, max 1, through an etcd outage while machines wait and one reboots: the release and the next take go out as soon as etcd answers again", async (t) => {
  for (const outage of OUTAGES) {
    await t.step(`etcd ${outage.name}`, async () => {
      const etcd = await startEtcd();
      try {
        let answeredAt = 0;
        let outageMs = 0;
        let retry = "";
        let holder = "";
        const { timeline, log, idle } = await roll(etcd, {
          group: "outage",
          machines: 4,
          max: 1,
          timeoutMs: 120_000,
          during: async (running) => {
            // The first holder asked logind to reboot: etcd goes away
            // before its daemon comes back to release the slot, and
            // answers again while that daemon (and every waiter whose
            // watch was cut) waits out a long backoff.
            const requested = await running.log.next(
              undefined,
              /reboot requested$/,
            );
            holder = requested.machine;
            await outage.begin(etcd);
            const began = performance.now();
            const waitLong = async (id: string, what: string) => {
              const failed = new RegExp(`${what}: .*; retrying in (\\w+)`);
              for (let since = began;;) {
                const line = await running.log.next(id, failed, since, 60_000);
                const delay = failed.exec(line.line)![1]!;
                if (parseLogged(delay) >= LONG_RETRY_MS) return delay;
                since = line.at + 0.001;
              }
            };
            const waiters = outage.cutsWatches
              ? fleetIds(4).filter((id) => id !== holder)
              : [];
            [retry] = await Promise.all([
              waitLong(holder, "cannot check this machine's slot"),
              ...waiters.map((id) => waitLong(id, "cannot take a slot")),
            ]);
            answeredAt = await outage.end(etcd);
            outageMs = answeredAt - began;
          },
        });
        const released = log.find(
          holder,
          /released the slot held by .*: the reboot has happened/,
        )[0]!;
        const releaseMs = released.at - answeredAt;
        const nextTake = log.find(undefined, /took a slot/, released.at)[0]!;
        // Nothing changed in etcd during the outage: every idle stretch
        // began after it answered again.
        console.log(
          `  etcd ${outage.name} for ${
            seconds(outageMs)
          } (until ${holder} was to retry in ${retry}): ${holder} released its slot ${
            seconds(releaseMs)
          } after etcd answered again, ${nextTake.machine} took it ${
            seconds(nextTake.at - answeredAt)
          } after; longest idle slot ${
            seconds(timeline.longestIdle.ms)
          }; idle stretches: ${idle}`,
        );
        assert.ok(
          releaseMs < PROBE_MAX_MS + SLACK_MS,
          `${holder} released its slot ${
            seconds(releaseMs)
          } after etcd answered again:\n${log.dump()}`,
        );
        assert.ok(
          timeline.longestIdle.ms < PROBE_MAX_MS + 1_000 + SLACK_MS,
          `a slot stayed free for ${
            seconds(timeline.longestIdle.ms)
          } while a machine waited (idle stretches: ${idle}):\n${log.dump()}`,
        );
      } finally {
        await etcd.close();
      }
    });
  }
});
