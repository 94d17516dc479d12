/** The compare-and-swap store against a real etcd. */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { grpcStarted } from "./harness/metrics.ts";
import { startBlackHole } from "./harness/black_hole.ts";
import { keyHistory } from "./harness/history.ts";
import { checkHistory } from "./harness/invariants.ts";
import {
  lockSlot,
  type LockStore,
  setMaxSlots,
  unlockSlot,
} from "../lib/semaphore/lock_store.ts";
import type { EtcdLockStore } from "../lib/etcd/store/etcd_lock_store.ts";
import { openEtcdLockStore, openEtcdStore } from "../lib/etcd/open.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import {
  CorruptDocumentError,
  EtcdUnavailableError,
  SemaphoreRefusedError,
} from "../lib/common/errors.ts";
import { sendEveryTxnTwice } from "./harness/twice_txn.ts";

const KV_METHODS = ["Range", "Txn", "Put"];

Deno.test("EtcdLockStore against a real etcd", async (t) => {
  const etcd = await startEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoints });
  const open = (group: string) =>
    openEtcdLockStore({ endpoints: etcd.endpoints, timeoutMs: 5_000 }, group);
  const metrics = etcd.members[0]!.metricsUrl;
  try {
    await t.step(
      "an uncontended lock or unlock costs one etcd request after the first",
      async () => {
        const store = await open("cost");
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
        const a = await open("stale");
        const b = await open("stale");
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
        const a = await open("guard");
        const b = await open("guard");
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
        const store = await open("readonly");
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
      const store = await open("corrupt");
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
      "with a black hole listed first, lock, unlock, read and set-max succeed 20 times out of 20 within a 2 s timeout",
      async () => {
        const hole = startBlackHole();
        try {
          for (let i = 0; i < 20; i++) {
            // A fresh store each time, as each locksmithctl command starts afresh.
            const store = await openEtcdLockStore({
              endpoints: [hole.url, ...etcd.endpoints],
              timeoutMs: 2_000,
            }, "black-hole");
            try {
              await lockSlot(store, "m");
              await assert.rejects(
                lockSlot(store, "other"),
                (e) =>
                  e instanceof SemaphoreRefusedError &&
                  e.reason === "semaphore_full",
              );
              await unlockSlot(store, "m");
              assert.deepEqual((await store.read()).doc.holders, []);
              assert.equal((await setMaxSlots(store, 2)).after.max, 2);
              assert.equal((await setMaxSlots(store, 1)).after.max, 1);
            } finally {
              await store.close();
            }
          }
        } finally {
          await hole.close();
        }
      },
    );

    /**
     * Runs `check` with a store of `group` (max 3) whose every write goes
     * out twice, and another client of the same group that takes and gives
     * back slot "b" between the two copies (then runs `after`), so that the
     * answering copy's guard fails on a document two versions on.
     */
    const hiddenByLaterWrites = async (
      group: string,
      check: (store: EtcdLockStore, other: LockStore) => Promise<void>,
      after: (revision: number) => Promise<unknown> = () => Promise.resolve(),
    ): Promise<void> => {
      const other = await open(group);
      const store = await openEtcdStore(
        { endpoints: etcd.endpoints, timeoutMs: 5_000 },
        group,
      );
      try {
        await setMaxSlots(other, 3);
        sendEveryTxnTwice(store, async () => {
          await lockSlot(other, "b");
          await after((await unlockSlot(other, "b")).revision);
        });
        await check(store, other);
      } finally {
        await store.close();
        await other.close();
      }
    };

    await t.step(
      "a lock and an unlock whose re-sent copy committed first report themselves done, though later writes hide them",
      () =>
        hiddenByLaterWrites("hedged-hidden", async (store, other) => {
          const locked = await lockSlot(store, "a");
          assert.equal(locked.written, true);
          assert.deepEqual(locked.after.holders, ["a"]);
          assert.deepEqual((await other.read()).doc.holders, ["a"]);
          const unlocked = await unlockSlot(store, "a");
          assert.equal(unlocked.written, true);
          assert.deepEqual((await other.read()).doc.holders, []);
        }),
    );

    await t.step(
      "a re-sent write hidden by later writes whose history was compacted away is an unknown outcome, never a refusal",
      () =>
        hiddenByLaterWrites(
          "hedged-compacted",
          async (store, other) => {
            await assert.rejects(
              lockSlot(store, "a"),
              (error: Error) =>
                error instanceof EtcdUnavailableError &&
                /outcome of a write to .*hedged-compacted.* is unknown.*compacted/
                  .test(error.message),
            );
            // It did land: a read after the unknown outcome tells.
            assert.deepEqual((await other.read()).doc.holders, ["a"]);
          },
          (revision) => raw.kv.compact({ revision: String(revision) }),
        ),
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
