/**
 * Stale slots against a real etcd: a machine killed while holding a slot
 * with a slot TTL loses it to the first waiter after the TTL and not
 * before; a holder that renews is never reclaimed; racing reclaimers
 * reclaim once; a holder that renews between a reclaimer's read and its
 * write keeps its slot; a restarted daemon resumes its lease. Waiters run
 * the daemon's own acquire step with the real queue and lease keeper.
 */

import assert from "node:assert/strict";
import { until as untilHolds } from "./harness/until.ts";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import {
  type LeaseHolder,
  lockWithLease,
  startLeaseHolder,
} from "./harness/lease_holder.ts";
import { keyHistory } from "./harness/history.ts";
import { checkHistory } from "./harness/invariants.ts";
import { MemoryLog } from "./fakes.ts";
import { sendEveryTxnTwice } from "./harness/twice_txn.ts";
import { openEtcdStore } from "../lib/etcd/open.ts";
import type { EtcdLockStore } from "../lib/etcd/store/etcd_lock_store.ts";
import type { EtcdPort } from "../lib/etcd/client/port.ts";
import { LeaseSession } from "../lib/etcd/queue/lease_session.ts";
import { EtcdWaitQueue } from "../lib/etcd/queue/wait_queue.ts";
import { EtcdSlotLease } from "../lib/etcd/store/etcd_slot_lease.ts";
import { EtcdSemaphoreAdmin } from "../lib/etcd/store/semaphore_admin.ts";
import {
  readSemaphoreView,
  reclaimHolders,
} from "../lib/etcd/store/etcd_semaphore_view.ts";
import {
  lockSlot,
  setMaxSlots,
  unlockSlot,
} from "../lib/semaphore/lock_store.ts";
import {
  aliveKey,
  holderRecordKey,
  semaphoreKey,
} from "../lib/semaphore/keys.ts";
import { staleHolders } from "../lib/semaphore/semaphore_view.ts";
import { acquireSlot } from "../lib/daemon/loop/acquire.ts";
import { Run } from "../lib/daemon/loop/run.ts";
import { systemClock } from "../lib/daemon/wiring/daemon_main.ts";
import { noopRebootPorts } from "./harness/noop_reboot.ts";

const until = (
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
) => untilHolds(what, check, timeoutMs, 25);

/** A machine killed later with SIGKILL: holds a slot with a lease of `ttl` s, renewed every `renewMs`. */
function spawnHolder(
  etcd: EtcdCluster,
  group: string,
  id: string,
  ttl: number,
  renewMs: number,
): Promise<LeaseHolder> {
  return startLeaseHolder(etcd.endpoint, group, id, ttl, renewMs);
}

/**
 * Resolves once `waiter` has looked at the slots and waits in the queue
 * (its look for stale slots found none), and `holder`'s renewals have
 * covered `ms`: the time its slot outlived without being reclaimed.
 */
async function untilRenewedPast(
  waiter: DaemonWaiter,
  holder: LeaseHolder,
  renewMs: number,
  ms: number,
): Promise<void> {
  await until(
    "the waiter to wait in the queue",
    () => waiter.log.lines.some((l) => l.includes("no slot free")),
  );
  const renewals = holder.renewals() + Math.ceil(ms / renewMs);
  await until(
    `${renewals} renewals by the holder`,
    () => holder.renewals() >= renewals,
    ms * 3,
  );
}

interface DaemonWaiter {
  readonly store: EtcdLockStore;
  readonly log: MemoryLog;
  readonly lease: EtcdSlotLease;
  /** The daemon's acquire step; resolves when this machine holds a slot. */
  acquire(): Promise<string>;
  close(): Promise<void>;
}

/** A waiting locksmithd's etcd side: store, queue, lease keeper, with `LOCKSMITHD_SLOT_TTL` = `ttl`. */
async function daemonWaiter(
  etcd: EtcdCluster,
  group: string,
  id: string,
  ttl: number,
): Promise<DaemonWaiter> {
  const store = await openEtcdStore({
    endpoints: etcd.endpoints,
    timeoutMs: 3_000,
  }, group);
  const log = new MemoryLog();
  const queue = new EtcdWaitQueue(store, {
    id,
    session: new LeaseSession(store.port, { timeoutMs: 3_000 }),
    log: (line) => log.info(line),
  });
  const lease = new EtcdSlotLease(store, {
    id,
    log: (line) => log.warn(line),
  });
  const stop = new AbortController();
  return {
    store,
    log,
    lease,
    acquire: () =>
      acquireSlot(
        new Run(
          {
            strategy: "etcd-lock",
            machineId: id,
            loginDelayMs: 0,
            slotTtlSeconds: ttl,
          },
          {
            store,
            queue,
            slotLease: lease,
            ...noopRebootPorts("test"),
            clock: systemClock,
            log,
            random: Math.random,
          },
          stop.signal,
        ),
        queue,
        undefined,
      ),
    close: async () => {
      stop.abort();
      await lease.release().catch(() => {});
      await queue.close().catch(() => {});
      await store.close();
    },
  };
}

Deno.test("stale slots against a real etcd", async (t) => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  const children: Deno.ChildProcess[] = [];
  const closers: (() => Promise<void>)[] = [];
  const open = async (group: string): Promise<EtcdLockStore> => {
    const store = await openEtcdStore({
      endpoints: etcd.endpoints,
      timeoutMs: 3_000,
    }, group);
    closers.push(() => store.close());
    return store;
  };
  const kill = async (child: Deno.ChildProcess) => {
    child.kill("SIGKILL");
    await child.status;
  };
  try {
    await t.step(
      "a SIGKILLed holder's slot is reclaimed by the first waiter after the TTL and not before",
      async () => {
        const group = "killed";
        const holder = await spawnHolder(etcd, group, "dead-holder", 3, 250);
        children.push(holder);
        const waiter = await daemonWaiter(etcd, group, "waiter", 3);
        closers.push(() => waiter.close());
        let heldAt = 0;
        const acquiring = waiter.acquire().then((r) => {
          heldAt = Date.now();
          return r;
        });
        // While the holder renews, its slot stays its own: past its TTL,
        // the waiter waiting.
        await untilRenewedPast(waiter, holder, 250, 4_000);
        assert.equal(heldAt, 0, waiter.log.lines.join("\n"));
        await kill(holder);
        const killedAt = Date.now();
        assert.equal(await acquiring, "held");
        const after = heldAt - killedAt;
        // Its last renewal was at most 250 ms before the kill; the lease
        // ends 3 s after it (etcd checks expiry every 500 ms).
        assert.ok(after >= 2_600, `reclaimed ${after} ms after the kill`);
        assert.ok(after <= 6_000, `reclaimed ${after} ms after the kill`);
        const line = waiter.log.lines.find((l) => l.includes("reclaimed"));
        assert.match(
          line ?? "",
          /^warn: reclaimed the slot of dead-holder: its lease \d+ expired \(no renewal within the slot TTL 3s\); it held the slot for \d+s \(boot boot-of-the-holder\)$/,
        );
        const view = await readSemaphoreView(waiter.store);
        assert.deepEqual(view.doc.holders, ["waiter"]);
        assert.equal(view.holders[0]?.alive, true);
        assert.equal(
          await client.get(holderRecordKey(semaphoreKey(group), "dead-holder"))
            .string(),
          null,
        );
        const history = await keyHistory(etcd.endpoints, semaphoreKey(group));
        assert.deepEqual(
          checkHistory(semaphoreKey(group), history).violations,
          [],
        );
      },
    );

    await t.step(
      "a live holder that renews is never reclaimed, and the waiter takes the slot once it is released",
      async () => {
        const group = "live";
        const holder = await spawnHolder(etcd, group, "live-holder", 2, 300);
        children.push(holder);
        const waiter = await daemonWaiter(etcd, group, "patient", 2);
        closers.push(() => waiter.close());
        let held = false;
        const acquiring = waiter.acquire().then((r) => (held = true, r));
        await untilRenewedPast(waiter, holder, 300, 7_000); // 3.5 TTLs
        assert.equal(held, false);
        assert.ok(
          !waiter.log.lines.some((l) => l.includes("reclaimed")),
          waiter.log.lines.join("\n"),
        );
        // The holder gives its slot back as a daemon would after boot.
        const store = await open(group);
        const { unlockSlot } = await import("../lib/semaphore/lock_store.ts");
        await unlockSlot(store, "live-holder");
        assert.equal(await acquiring, "held");
        await kill(holder);
        assert.equal(
          await client.get(aliveKey(semaphoreKey(group), "live-holder"))
            .string(),
          null,
        );
      },
    );

    await t.step(
      "ten reclaimers racing for one stale slot reclaim it exactly once",
      async () => {
        const group = "race";
        const holder = await spawnHolder(etcd, group, "racer-dead", 2, 200);
        children.push(holder);
        await kill(holder);
        const stores = await Promise.all(
          Array.from({ length: 10 }, () => open(group)),
        );
        await until("the holder's lease to expire", async () => {
          const view = await readSemaphoreView(stores[0]!);
          return staleHolders(view).length === 1;
        });
        // Every reclaimer reads the same stale view, then all write at once.
        const views = await Promise.all(stores.map(readSemaphoreView));
        const results = await Promise.all(
          stores.map((s, i) => reclaimHolders(s, views[i]!, ["racer-dead"])),
        );
        assert.equal(results.filter(Boolean).length, 1, String(results));
        const doc = (await readSemaphoreView(stores[0]!)).doc;
        assert.deepEqual(doc, { semaphore: 1, max: 1, holders: [] });

        // The same through the operator's reclaim, which reads again.
        const again = await spawnHolder(etcd, group, "racer-dead-2", 2, 200);
        children.push(again);
        await kill(again);
        await until("the second holder's lease to expire", async () => {
          const view = await readSemaphoreView(stores[0]!);
          return staleHolders(view).length === 1;
        });
        const admins = stores.map((s) => new EtcdSemaphoreAdmin(s));
        const reclaimed = await Promise.all(
          admins.map((a) => a.reclaimStale()),
        );
        assert.deepEqual(
          reclaimed.filter((r) => r.length > 0).map((r) => r.map((h) => h.id)),
          [["racer-dead-2"]],
        );
        const history = await keyHistory(etcd.endpoints, semaphoreKey(group));
        assert.deepEqual(
          checkHistory(semaphoreKey(group), history).violations,
          [],
        );
      },
    );

    await t.step(
      "more stale holders than one transaction may compare are reclaimed in rounds",
      async () => {
        const group = "many";
        const store = await open(group);
        await setMaxSlots(store, 70);
        const ids = Array.from({ length: 60 }, (_, i) => `dead-${i}`);
        for (const id of ids) {
          const lease = new EtcdSlotLease(store, {
            id,
            keepAliveMs: 3_600_000,
          });
          await lockWithLease(store, lease, id, 2);
          await lease.close();
        }
        await until("every lease to expire", async () => {
          const view = await readSemaphoreView(store);
          return staleHolders(view).length === 60;
        });
        const admin = new EtcdSemaphoreAdmin(await open(group));
        const reclaimed = await admin.reclaimStale();
        assert.deepEqual(reclaimed.map((h) => h.id).sort(), [...ids].sort());
        assert.deepEqual((await readSemaphoreView(store)).doc, {
          semaphore: 70,
          max: 70,
          holders: [],
        });
      },
    );

    await t.step(
      "a reclaim reports the slot it freed when a hedged copy of its write committed first, though later writes hide it",
      async () => {
        const group = "hedged-reclaim";
        const store = await open(group);
        const lease = new EtcdSlotLease(store, {
          id: "gone",
          keepAliveMs: 3_600_000,
        });
        await lockWithLease(store, lease, "gone", 2);
        await lease.close();
        await until("the lease to expire", async () => {
          const view = await readSemaphoreView(store);
          return staleHolders(view).length === 1;
        });
        const reclaimer = await open(group);
        // Another machine takes and gives back a slot between the copies.
        sendEveryTxnTwice(reclaimer, async () => {
          await lockSlot(store, "other");
          await unlockSlot(store, "other");
        });
        const reclaimed = await new EtcdSemaphoreAdmin(reclaimer)
          .reclaimStale();
        assert.deepEqual(reclaimed.map((h) => h.id), ["gone"]);
        assert.deepEqual((await readSemaphoreView(store)).doc.holders, []);
      },
    );

    await t.step(
      "a holder whose lease expired but who renews before the reclaim commits keeps its slot; one who renews after it has lost it",
      async () => {
        const group = "renew-race";
        const store = await open(group);
        await setMaxSlots(store, 2);
        // Two holders whose renewals stopped (a daemon that froze), TTL 2 s.
        const holders = ["late-a", "late-b"];
        for (const id of holders) {
          const lease = new EtcdSlotLease(store, {
            id,
            keepAliveMs: 3_600_000,
          });
          await lockWithLease(store, lease, id, 2);
          await lease.close().catch(() => {}); // no revoke: attached
        }
        const reader = await open(group);
        await until("both leases to expire", async () => {
          const view = await readSemaphoreView(reader);
          return staleHolders(view).length === 2;
        });
        const stale = await readSemaphoreView(reader);
        // late-a's daemon comes back first and renews: a new lease, re-attached.
        const a = new EtcdSlotLease(await open(group), { id: "late-a" });
        closers.push(() => a.release());
        assert.equal(await a.resume(), "replaced");
        assert.equal(a.covered(), true);
        // The waiter's reclaim was computed before: it must not apply.
        assert.equal(
          await reclaimHolders(reader, stale, ["late-a", "late-b"]),
          false,
        );
        // Read again: only late-b is stale; reclaim it.
        const fresh = await readSemaphoreView(reader);
        assert.deepEqual(staleHolders(fresh).map((h) => h.id), ["late-b"]);
        assert.equal(await reclaimHolders(reader, fresh, ["late-b"]), true);
        // late-b's daemon comes back after that: its slot is gone.
        const b = new EtcdSlotLease(await open(group), { id: "late-b" });
        assert.equal(await b.resume(), "untracked"); // its record is gone
        const view = await readSemaphoreView(reader);
        assert.deepEqual(view.doc.holders, ["late-a"]);
        assert.equal(view.holders[0]?.alive, true);
        assert.equal(
          view.holders[0]?.record?.lease !== undefined &&
            view.holders[0]?.record?.lease !==
              stale.holders[0]?.record?.lease,
          true,
        );
      },
    );

    await t.step(
      "a renewal that commits through one copy of its write keeps its slot when the other copy's failed guard answers first",
      async () => {
        const group = "hedged-renewal";
        const store = await open(group);
        const frozen = new EtcdSlotLease(store, {
          id: "hedged",
          keepAliveMs: 3_600_000,
        });
        await lockWithLease(store, frozen, "hedged", 2);
        await frozen.close().catch(() => {}); // no revoke: attached
        await until("the lease to expire", async () => {
          const view = await readSemaphoreView(store);
          return staleHolders(view).length === 1;
        });
        // A port that sends each transaction twice and answers with the
        // second copy, as hedging does when a slow member's copy commits
        // first: the guard of the copy that answers fails.
        const resumed = await open(group);
        sendEveryTxnTwice(resumed);
        const lease = new EtcdSlotLease(resumed, { id: "hedged" });
        closers.push(() => lease.release());
        assert.equal(await lease.resume(), "replaced");
        assert.equal(lease.covered(), true);
        const view = await readSemaphoreView(store);
        assert.deepEqual(view.holders.map((h) => [h.id, h.alive]), [[
          "hedged",
          true,
        ]]);
      },
    );

    await t.step(
      "a lease that expires while its holder's daemon runs is renewed with a new one unless the slot was reclaimed",
      async () => {
        const group = "lost";
        const store = await open(group);
        const lines: string[] = [];
        const lease = new EtcdSlotLease(store, {
          id: "partitioned",
          keepAliveMs: 6_000, // slower than the TTL: the lease lapses between renewals
          log: (line) => lines.push(line),
        });
        closers.push(() => lease.close());
        await lockWithLease(store, lease, "partitioned", 2);
        const reader = await open(group);
        await until("the lease to expire", async () => {
          const view = await readSemaphoreView(reader);
          return staleHolders(view).length === 1;
        });
        const view = await readSemaphoreView(reader);
        assert.equal(await reclaimHolders(reader, view, ["partitioned"]), true);
        // Its next renewal finds the lease gone and the slot reclaimed.
        await until(
          "the holder to notice",
          () => lines.some((l) => l.includes("the slot was reclaimed")),
          10_000,
        );
        assert.equal(lease.covered(), false);
        assert.deepEqual((await readSemaphoreView(reader)).doc.holders, []);
      },
    );

    await t.step(
      "a restarted daemon resumes its live lease and keeps renewing it",
      async () => {
        const group = "restart";
        const store = await open(group);
        const first = new EtcdSlotLease(store, { id: "restarted" });
        const leaseId = await first.prepare(2);
        const record = {
          id: "restarted",
          since: new Date().toISOString(),
          by: "locksmithd",
          lease: leaseId,
          ttl: 2,
        };
        const { revision } = await lockSlot(store, "restarted", { record });
        first.attach(record, revision);
        await first.close(); // the old process ends: one last renewal, no revoke
        const reopened = await open(group);
        let renewals = 0;
        const real = reopened.port;
        (reopened as { port: EtcdPort }).port = new Proxy(real, {
          get(target, name) {
            const value = Reflect.get(target, name);
            if (typeof value !== "function") return value;
            if (name !== "leaseKeepAlive") return value.bind(target);
            return async (...args: unknown[]) => {
              const ttl = await value.apply(target, args);
              if (ttl > 0) renewals++;
              return ttl;
            };
          },
        });
        const second = new EtcdSlotLease(reopened, { id: "restarted" });
        closers.push(() => second.release());
        assert.equal(await second.resume(), "renewed");
        // Renewed every second (a third of the TTL, at least 1 s): five
        // more renewals span two and a half TTLs.
        await until("five more renewals", () => renewals >= 6);
        const view = await readSemaphoreView(store);
        assert.deepEqual(view.holders.map((h) => [h.id, h.alive]), [[
          "restarted",
          true,
        ]]);
        assert.equal(view.holders[0]?.record?.lease, leaseId);
      },
    );

    await t.step(
      "a restarted daemon resumes from the record its start-up read found, without reading it again",
      async () => {
        const group = "restart-one-read";
        const store = await open(group);
        const first = new EtcdSlotLease(store, { id: "reader" });
        await lockWithLease(store, first, "reader", 5);
        await first.close();
        const reopened = await open(group);
        const session = new LeaseSession(reopened.port, { timeoutMs: 5_000 });
        const queue = new EtcdWaitQueue(reopened, { id: "reader", session });
        closers.push(() => queue.close());
        const { doc, stored } = await queue.startupRead();
        assert.deepEqual(doc.holders, ["reader"]);
        assert.ok(stored.record?.lease !== undefined && stored.revision > 0);
        const sent: string[] = [];
        const real = reopened.port;
        (reopened as { port: EtcdPort }).port = new Proxy(real, {
          get(target, name) {
            const value = Reflect.get(target, name);
            if (typeof value !== "function") return value;
            return (...args: unknown[]) => {
              sent.push(String(name));
              return value.apply(target, args);
            };
          },
        });
        const second = new EtcdSlotLease(reopened, { id: "reader" });
        closers.push(() => second.release());
        assert.equal(await second.resume(stored), "renewed");
        assert.deepEqual(sent, ["leaseKeepAlive"]);
      },
    );
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
    }
    for (const close of closers.reverse()) await close().catch(() => {});
    client.close();
    await etcd.close();
  }
});
