/**
 * No stall in the wait queue, whatever others write and however waiters
 * die, against a real etcd: entries without a lease, dead waiters one
 * behind the other (two and three in a row), several free slots with dead
 * waiters between live ones, a machine removed from the queue, and a
 * release after etcd stopped answering for a while. Live waiters run the
 * daemon's own acquire step (`acquireSlot`); dead ones joined the queue
 * and do nothing more (their leases stay alive, as a killed daemon's does
 * until its TTL runs out).
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { MemoryLog } from "./fakes.ts";
import { openEtcdStore } from "../lib/etcd/open.ts";
import type { EtcdLockStore } from "../lib/etcd/store/etcd_lock_store.ts";
import { LeaseSession } from "../lib/etcd/queue/lease_session.ts";
import { EtcdWaitQueue } from "../lib/etcd/queue/wait_queue.ts";
import { lockSlot, unlockSlot } from "../lib/semaphore/lock_store.ts";
import { semaphoreKey, waitersPrefix } from "../lib/semaphore/keys.ts";
import { acquireSlot } from "../lib/daemon/loop/acquire.ts";
import { releaseSlot } from "../lib/daemon/loop/release.ts";
import { Run } from "../lib/daemon/loop/run.ts";
import { systemClock } from "../lib/daemon/wiring/daemon_main.ts";
import { noopRebootPorts } from "./harness/noop_reboot.ts";
import { until } from "./harness/until.ts";

/** The hand-over time of these tests (locksmithd's is 10 s): each dead waiter ahead may cost this once. */
const HANDOVER_MS = 2_000;

interface Waiter {
  readonly id: string;
  readonly store: EtcdLockStore;
  readonly queue: EtcdWaitQueue;
  readonly log: MemoryLog;
  /** A run of the daemon's loop state for this machine. */
  readonly run: Run;
  /** Runs the daemon's acquire step; resolves with the time it took the slot. */
  acquire(): Promise<number>;
  close(): Promise<void>;
}

async function waiter(
  endpoints: readonly string[],
  group: string,
  id: string,
  options: { graceMs?: number; random?: () => number } = {},
): Promise<Waiter> {
  const store = await openEtcdStore({ endpoints, timeoutMs: 2_000 }, group);
  const log = new MemoryLog();
  const queue = new EtcdWaitQueue(store, {
    id,
    session: new LeaseSession(store.port, { timeoutMs: 2_000 }),
    log: (line) => log.info(line),
    ownerlessGraceMs: options.graceMs,
  });
  const stop = new AbortController();
  const run = new Run(
    {
      strategy: "etcd-lock",
      machineId: id,
      loginDelayMs: 0,
      handoverMs: HANDOVER_MS,
    },
    {
      store,
      queue,
      ...noopRebootPorts("test"),
      clock: systemClock,
      log,
      random: options.random ?? Math.random,
    },
    stop.signal,
  );
  return {
    id,
    store,
    queue,
    log,
    run,
    acquire: async () => {
      assert.equal(await acquireSlot(run, queue, undefined), "held");
      return Date.now();
    },
    close: async () => {
      stop.abort();
      await queue.close().catch(() => {});
      await store.close();
    },
  };
}

/** Sets the semaphore of `group` to `max` slots, every one held by `holder-<n>`. */
async function fullSemaphore(
  w: Waiter,
  max: number,
): Promise<string[]> {
  await w.store.update((d) => ({ ...d, max, semaphore: max }));
  const holders = Array.from({ length: max }, (_, i) => `holder-${i + 1}`);
  for (const h of holders) await lockSlot(w.store, h);
  return holders;
}

function seconds(ms: number): string {
  return `${(ms / 1_000).toFixed(2)} s`;
}

Deno.test("no stall in the wait queue against a real etcd", async (t) => {
  const etcd: EtcdCluster = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  const open: Waiter[] = [];
  const join = async (
    group: string,
    id: string,
    options?: { graceMs?: number },
  ) => {
    const w = await waiter(etcd.endpoints, group, id, options);
    open.push(w);
    return w;
  };
  /** A waiter that joins and then does nothing: a dead machine whose lease lives on. */
  const dead = async (group: string, id: string) => {
    const w = await join(group, id);
    await w.queue.join();
    return w;
  };
  /** Starts a live waiter acquiring; resolves once it is in the queue, with its take. */
  const live = async (w: Waiter): Promise<{ taken: Promise<number> }> => {
    const taken = w.acquire();
    await until(
      `${w.id} joined`,
      () => w.log.lines.some((l) => /joined the wait queue/.test(l)),
    );
    return { taken };
  };
  try {
    await t.step(
      "two entries without a lease ahead are passed over at once and removed after the grace period, with one warning each",
      async () => {
        const group = "leaseless";
        const prefix = waitersPrefix(semaphoreKey(group));
        const admin = await join(group, "admin", { graceMs: 1_500 });
        await fullSemaphore(admin, 1);
        for (const ghost of ["ghost-1", "ghost-2"]) {
          // As `etcdctl put` or a key mirror writes them: no lease.
          await client.put(`${prefix}${ghost}`).value(
            JSON.stringify({ id: ghost, since: new Date().toISOString() }),
          );
        }
        const w = await join(group, "w", { graceMs: 1_500 });
        const { taken } = await live(w);
        const freed = Date.now();
        await unlockSlot(admin.store, "holder-1");
        const idle = (await taken) - freed;
        console.log(
          `  idle with two lease-less entries ahead: ${seconds(idle)}`,
        );
        assert.ok(idle < 1_000, `took ${idle} ms`);
        // The next waiter removes them once they have been passed over for the grace period.
        const x = await join(group, "x", { graceMs: 1_500 });
        await lockSlot(admin.store, "holder-2").catch(() => {});
        await x.queue.join();
        // One warning per entry, from whichever waiter removed it (logged
        // once its delete was answered).
        const removals = () =>
          [...w.log.lines, ...x.log.lines].filter((l) =>
            /removed .* from the wait queue: it has no lease/.test(l)
          );
        await until(
          "a warning for each lease-less entry removed",
          () => removals().length >= 2,
          10_000,
        );
        assert.equal(
          (await client.getAll().prefix(prefix).keys()).sort().join(),
          `${prefix}x`,
        );
        assert.equal(
          removals().length,
          2,
          [...w.log.lines, ...x.log.lines].join("\n"),
        );
        assert.match(removals().join("\n"), /ghost-1/);
        assert.match(removals().join("\n"), /ghost-2/);
      },
    );

    for (const deadCount of [2, 3]) {
      await t.step(
        `max 1: a live waiter behind ${deadCount} dead waiters in a row takes the freed slot within 1 s plus the hand-over time per dead waiter`,
        async () => {
          const group = `dead-${deadCount}`;
          const admin = await join(group, "admin");
          await fullSemaphore(admin, 1);
          for (let i = 1; i <= deadCount; i++) await dead(group, `dead-${i}`);
          const w = await join(group, "w");
          const { taken } = await live(w);
          const freed = Date.now();
          await unlockSlot(admin.store, "holder-1");
          const idle = (await taken) - freed;
          console.log(
            `  idle with ${deadCount} dead waiters ahead: ${
              seconds(idle)
            } (hand-over ${seconds(HANDOVER_MS)})`,
          );
          assert.ok(
            idle >= deadCount * HANDOVER_MS &&
              idle < deadCount * HANDOVER_MS + 1_000,
            `took ${idle} ms`,
          );
          assert.deepEqual(
            await client.getAll().prefix(waitersPrefix(semaphoreKey(group)))
              .keys(),
            [],
            "the dead waiters were removed from the queue",
          );
        },
      );
    }

    await t.step(
      "max 3 with 2 free: live waiters between dead ones take the free slots within 1 s plus the hand-over time per dead waiter ahead",
      async () => {
        const group = "several-free";
        const admin = await join(group, "admin");
        await fullSemaphore(admin, 3);
        await dead(group, "dead-1");
        const live1 = await join(group, "live-1");
        const { taken: taken1 } = await live(live1);
        await dead(group, "dead-2");
        const live2 = await join(group, "live-2");
        const { taken: taken2 } = await live(live2);
        const freed = Date.now();
        await unlockSlot(admin.store, "holder-1");
        await unlockSlot(admin.store, "holder-2");
        const idle1 = (await taken1) - freed;
        const idle2 = (await taken2) - freed;
        console.log(
          `  2 of 3 free, dead-1 live-1 dead-2 live-2: live-1 after ${
            seconds(idle1)
          }, live-2 after ${seconds(idle2)} (hand-over ${
            seconds(HANDOVER_MS)
          })`,
        );
        assert.ok(
          idle1 < 1_000,
          `live-1 took ${idle1} ms (1 dead ahead, 2 free)`,
        );
        assert.ok(
          idle2 < 2 * HANDOVER_MS + 1_000,
          `live-2 took ${idle2} ms (2 dead ahead)`,
        );
      },
    );

    await t.step(
      "a machine removed from the queue while it waits joins again at once",
      async () => {
        const group = "removed";
        const admin = await join(group, "admin");
        await fullSemaphore(admin, 1);
        const w = await join(group, "w");
        const { taken } = await live(w);
        assert.equal(w.queue.state().place, "head");
        const removedAt = Date.now();
        // As a second in line evicting a head it thought silent does.
        await client.delete().key(`${waitersPrefix(semaphoreKey(group))}w`);
        await until(
          "w to join again",
          () =>
            w.log.lines.filter((l) => /joined the wait queue/.test(l))
              .length === 2,
          5_000,
        );
        const rejoin = Date.now() - removedAt;
        console.log(`  out of the queue to joined again: ${seconds(rejoin)}`);
        assert.ok(rejoin < 1_000, `${rejoin} ms`);
        assert.doesNotMatch(w.log.lines.join("\n"), /2 or more machines/);
        const freed = Date.now();
        await unlockSlot(admin.store, "holder-1");
        assert.ok((await taken) - freed < 1_000);
      },
    );

    await t.step(
      "the position in line counts only the machines that joined before this one, also after a re-read",
      async () => {
        const group = "position";
        const waiters = [];
        for (const id of ["a", "b", "c", "d", "e", "f", "g"]) {
          const w = await join(group, id);
          await w.queue.join();
          waiters.push(w);
        }
        const e = waiters[4]!;
        assert.equal((await e.queue.refresh()).ahead, 4);
        assert.equal(e.queue.state().ahead, 4);
        await waiters[0]!.queue.leave();
        assert.equal((await e.queue.refresh()).ahead, 3);
      },
    );
  } finally {
    for (const w of open) await w.close().catch(() => {});
    client.close();
    await etcd.close();
  }
});

Deno.test("a release that failed while etcd was stopped goes out as soon as etcd answers again, not at the end of its backoff", async () => {
  const etcd = await startEtcd();
  // The longest jitter: 5 s, 10 s, 20 s between attempts without the fix.
  const w = await waiter(etcd.endpoints, "pause", "w", { random: () => 0.999 });
  try {
    await lockSlot(w.store, "w");
    etcd.members[0]!.pause();
    let resumedAt = 0;
    const resumed = (async () => {
      await until(
        () => `the second attempt to fail; the log:\n${w.log.lines.join("\n")}`,
        () =>
          w.log.lines.filter((l) => /cannot release the slot/.test(l))
            .length >= 2,
        30_000,
      );
      etcd.members[0]!.resume();
      resumedAt = Date.now();
    })();
    assert.equal(await releaseSlot(w.run, "test"), "released");
    const releasedAt = Date.now();
    await resumed;
    const late = releasedAt - resumedAt;
    console.log(`  release after etcd answers again: ${seconds(late)}`);
    assert.ok(late < 3_000, `released ${late} ms after etcd was resumed`);
  } finally {
    etcd.members[0]!.resume();
    await w.close();
    await etcd.close();
  }
});
