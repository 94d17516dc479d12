/** The compare-and-swap store against a real etcd. */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { grpcStarted } from "./harness/metrics.ts";
import { keyHistory } from "./harness/history.ts";
import { checkHistory } from "./harness/invariants.ts";
import {
  lockSlot,
  setMaxSlots,
  unlockSlot,
} from "../lib/semaphore/lock_store.ts";
import { EtcdLockStore } from "../lib/etcd/etcd_lock_store.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import {
  CorruptDocumentError,
  SemaphoreRefusedError,
} from "../lib/common/errors.ts";

const KV_METHODS = ["Range", "Txn", "Put"];

Deno.test("EtcdLockStore against a real etcd", async (t) => {
  const etcd = await startEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoints });
  const open = (group: string) =>
    new EtcdLockStore(
      new Etcd3({ hosts: etcd.endpoints }),
      semaphoreKey(group),
      {
        endpoints: etcd.endpoints,
        timeoutMs: 5_000,
      },
    );
  const metrics = etcd.members[0]!.metricsUrl;
  try {
    await t.step(
      "an uncontended lock or unlock costs one etcd request after the first",
      async () => {
        const store = open("cost");
        try {
          await lockSlot(store, "a");
          await unlockSlot(store, "a");
          const before = await grpcStarted(metrics, KV_METHODS);
          for (let i = 0; i < 20; i++) {
            await lockSlot(store, "a");
            await unlockSlot(store, "a");
          }
          const requests = (await grpcStarted(metrics, KV_METHODS)) - before;
          assert.equal(requests, 40);
        } finally {
          await store.close();
        }
      },
    );

    await t.step(
      "a stale cache never refuses: the store re-reads before saying full",
      async () => {
        const a = open("stale");
        const b = open("stale");
        try {
          await lockSlot(a, "a"); // a caches {holders: [a]}
          await unlockSlot(b, "a"); // a's cache is now stale
          await lockSlot(a, "c"); // would be "full" on the stale cache
          assert.deepEqual((await b.read()).doc.holders, ["c"]);
        } finally {
          await a.close();
          await b.close();
        }
      },
    );

    await t.step(
      "a write on a stale cache is caught by the revision guard and retried",
      async () => {
        const a = open("guard");
        const b = open("guard");
        try {
          await setMaxSlots(a, 2);
          await lockSlot(b, "b"); // a's cache is stale now
          const outcome = await lockSlot(a, "a");
          assert.equal(outcome.attempts, 2);
          assert.deepEqual(outcome.after, {
            semaphore: 0,
            max: 2,
            holders: ["a", "b"],
          });
        } finally {
          await a.close();
          await b.close();
        }
      },
    );

    await t.step(
      "read-only status never writes, even for an absent key",
      async () => {
        const store = open("readonly");
        try {
          assert.deepEqual((await store.read()).doc, {
            semaphore: 1,
            max: 1,
            holders: [],
          });
          assert.equal(await raw.get(semaphoreKey("readonly")).string(), null);
          assert.deepEqual((await setMaxSlots(store, 1)).written, false);
          assert.equal(await raw.get(semaphoreKey("readonly")).string(), null);
        } finally {
          await store.close();
        }
      },
    );

    await t.step("a corrupt document is never overwritten", async () => {
      const key = semaphoreKey("corrupt");
      await raw.put(key).value("not json");
      const store = open("corrupt");
      try {
        for (
          const op of [
            () => lockSlot(store, "x"),
            () => unlockSlot(store, "x"),
            () => setMaxSlots(store, 5),
          ]
        ) {
          await assert.rejects(
            op,
            (e) => e instanceof CorruptDocumentError && e.key === key,
          );
        }
        assert.equal(await raw.get(key).string(), "not json");
      } finally {
        await store.close();
      }
    });

    await t.step(
      "waitForChange() wakes on a change by another client, and times out otherwise",
      async () => {
        const waiter = open("wait");
        const other = open("wait");
        try {
          await lockSlot(other, "holder");
          await assert.rejects(lockSlot(waiter, "me"), SemaphoreRefusedError);
          const seen = waiter.revision;
          assert.equal(await waiter.waitForChange(seen, 200), "timeout");
          const woke = waiter.waitForChange(seen, 10_000);
          await unlockSlot(other, "holder");
          const started = Date.now();
          assert.equal(await woke, "changed");
          assert.ok(Date.now() - started < 2_000);
          await lockSlot(waiter, "me");
          const aborter = new AbortController();
          const aborted = waiter.waitForChange(
            waiter.revision,
            10_000,
            aborter.signal,
          );
          aborter.abort();
          assert.equal(await aborted, "aborted");
        } finally {
          await waiter.close();
          await other.close();
        }
      },
    );

    await t.step(
      "the wait queue counts those ahead, counts down as they leave, and notices an eviction",
      async () => {
        const [a, b, c] = [open("queue"), open("queue"), open("queue")];
        try {
          await lockSlot(a, "holder");
          await b.joinQueue("b");
          await c.joinQueue("c");
          assert.equal(b.waitersAhead(), 0);
          assert.equal(c.waitersAhead(), 1);
          assert.deepEqual(await c.readWaitersAhead(5), ["b"]);
          // c watches; b takes the freed slot and leaves the queue in the same write.
          const before = c.revision;
          const woke = c.waitForChange(before, 5_000);
          await unlockSlot(a, "holder");
          await b.read(); // b learns of the free slot (in the daemon, through its watch)
          const requests = await grpcStarted(metrics, KV_METHODS);
          await b.update(
            (d) => ({ ...d, semaphore: d.semaphore - 1, holders: ["b"] }),
            {
              maxAttempts: 1,
              leaveQueue: true,
            },
          );
          assert.equal(
            await grpcStarted(metrics, KV_METHODS) - requests,
            1,
            "one request for a queued lock",
          );
          assert.equal(await woke, "changed");
          await c.waitForChange(before, 2_000);
          for (let i = 0; i < 50 && c.waitersAhead() !== 0; i++) {
            await new Promise((r) => setTimeout(r, 20));
          }
          assert.equal(c.waitersAhead(), 0);
          assert.equal(b.waitersAhead(), undefined, "b left the queue");
          // An eviction by someone else is noticed: c must join again.
          await a.joinQueue("a");
          await a.update(
            (d) => ({ ...d, max: d.max + 1, semaphore: d.semaphore + 1 }),
            { evict: ["c"] },
          );
          for (let i = 0; i < 50 && c.waitersAhead() !== undefined; i++) {
            await new Promise((r) => setTimeout(r, 20));
          }
          assert.equal(c.waitersAhead(), undefined, "evicted");
          const doc = await c.leaveQueue("c");
          assert.deepEqual(doc.doc.holders, ["b"]);
          assert.deepEqual(
            await raw.getAll().prefix(`${semaphoreKey("queue")}/waiters/`)
              .keys(),
            [
              `${semaphoreKey("queue")}/waiters/a`,
            ],
          );
        } finally {
          await a.close();
          await b.close();
          await c.close();
        }
      },
    );

    await t.step(
      "the history checker itself catches an over-full document",
      async () => {
        const key = semaphoreKey("checker");
        await raw.put(key).value('{"semaphore":0,"max":1,"holders":["a"]}');
        await raw.put(key).value(
          '{"semaphore":-1,"max":1,"holders":["a","b"]}',
        );
        const report = checkHistory(
          key,
          await keyHistory(etcd.endpoints, key),
          [{ op: "lock", id: "a" }],
        );
        assert.equal(report.violations.length, 2, report.violations.join("\n"));
        assert.match(report.violations[0]!, /2 holders exceed max 1/);
        assert.match(report.violations[1]!, /b: clients saw 0 lock\(s\)/);
      },
    );
  } finally {
    raw.close();
    await etcd.close();
  }
});
