/**
 * Many concurrent clients, each with its own etcd connection (as separate
 * machines would have), against one real etcd: never more holders than max,
 * no lost update, checked at every revision of the key's history.
 */

import assert from "node:assert/strict";
import { startEtcd } from "./harness/etcd.ts";
import { keyHistory } from "./harness/history.ts";
import { checkHistory, type SeenOperation } from "./harness/invariants.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import {
  lockSlot,
  setMaxSlots,
  unlockSlot,
} from "../lib/semaphore/lock_store.ts";
import { EtcdLockStore } from "../lib/etcd/store/etcd_lock_store.ts";
import { openEtcdPort } from "../lib/etcd/open.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { SemaphoreRefusedError } from "../lib/common/errors.ts";

const CLIENTS = 50;

function openStores(
  endpoints: string[],
  key: string,
  n: number,
): Promise<EtcdLockStore[]> {
  const options = { endpoints, timeoutMs: 20_000, maxAttempts: 1_000 };
  return Promise.all(
    Array.from(
      { length: n },
      async () => new EtcdLockStore(await openEtcdPort(options), key, options),
    ),
  );
}

Deno.test("50 concurrent clients against max = 3: exactly 3 win, then a storm keeps every invariant", async (t) => {
  const etcd = await startEtcd();
  const key = semaphoreKey("concurrency");
  const stores = await openStores(etcd.endpoints, key, CLIENTS);
  const seen: SeenOperation[] = [];
  try {
    await setMaxSlots(stores[0]!, 3);

    await t.step("exactly 3 of 50 simultaneous locks succeed", async () => {
      const results = await Promise.allSettled(
        stores.map((s, i) => lockSlot(s, `m${i}`)),
      );
      const won = results.flatMap((r, i) =>
        r.status === "fulfilled" ? [`m${i}`] : []
      );
      for (const r of results) {
        if (r.status === "rejected") {
          assert.ok(
            r.reason instanceof SemaphoreRefusedError &&
              r.reason.reason === "semaphore_full",
            String(r.reason),
          );
        }
      }
      assert.equal(won.length, 3);
      for (const id of won) seen.push({ op: "lock", id });
      const { doc } = await stores[0]!.read();
      assert.deepEqual(doc, { semaphore: 0, max: 3, holders: won.sort() });
    });

    await t.step(
      "a mixed storm of lock and unlock loses no update",
      async () => {
        let refused = 0;
        await Promise.all(stores.map(async (store, i) => {
          const id = `m${i}`;
          for (let round = 0; round < 12; round++) {
            const op = Math.random() < 0.5 ? "lock" : "unlock";
            try {
              await (op === "lock"
                ? lockSlot(store, id)
                : unlockSlot(store, id));
              seen.push({ op, id });
            } catch (error) {
              if (!(error instanceof SemaphoreRefusedError)) throw error;
              refused++;
            }
          }
          // Leave nothing held.
          try {
            await unlockSlot(store, id);
            seen.push({ op: "unlock", id });
          } catch (error) {
            if (!(error instanceof SemaphoreRefusedError)) throw error;
          }
        }));
        assert.ok(refused > 0, "the storm should have met a full semaphore");
        const { doc } = await stores[0]!.read();
        assert.deepEqual(doc, { semaphore: 3, max: 3, holders: [] });
      },
    );

    await t.step(
      "every revision keeps holders <= max and semaphore == max - holders",
      async () => {
        const history = await keyHistory(etcd.endpoints, key);
        const report = checkHistory(key, history, seen);
        assert.deepEqual(report.violations, []);
        assert.equal(report.maxHolders, 3);
        assert.ok(
          report.versions > seen.length,
          `${report.versions} versions for ${seen.length} ops`,
        );
      },
    );
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    await etcd.close();
  }
});

Deno.test("12 concurrent locksmithctl processes against max = 3: exactly 3 exit 0", async () => {
  const etcd = await startEtcd();
  try {
    const base = ["--endpoint", etcd.endpoint, "--group", "procs"];
    assert.equal((await runCtlProcess(["set-max", "3", ...base])).code, 0);
    const results = await Promise.all(
      Array.from(
        { length: 12 },
        (_, i) => runCtlProcess(["lock", `p${i}`, ...base]),
      ),
    );
    const codes = results.map((r) => r.code).sort();
    assert.deepEqual(codes, [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    for (const r of results.filter((r) => r.code === 1)) {
      assert.equal(
        r.stderr,
        "Error locking: semaphore is at 0: all 3 slot(s) are held\n",
      );
    }
    const report = checkHistory(
      semaphoreKey("procs"),
      await keyHistory(etcd.endpoints, semaphoreKey("procs")),
    );
    assert.deepEqual(report.violations, []);
  } finally {
    await etcd.close();
  }
});
