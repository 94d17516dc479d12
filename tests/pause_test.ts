/**
 * Pause and resume: no lock is stored after a pause was acknowledged, even
 * by writers racing it with stale caches; holders keep their slots and can
 * release them; the FleetLock server answers a paused group 409 with a
 * clear value. The store and the batcher against a real etcd; the
 * FleetLock handler with a fake store.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { until } from "./harness/until.ts";
import { sendEveryTxnTwice } from "./harness/twice_txn.ts";
import { keyHistory } from "./harness/history.ts";
import { checkHistory } from "./harness/invariants.ts";
import { FakeClock, FakeStore } from "./fakes.ts";
import { openEtcdStore } from "../lib/etcd/open.ts";
import type { EtcdLockStore } from "../lib/etcd/store/etcd_lock_store.ts";
import { EtcdSemaphoreAdmin } from "../lib/etcd/store/semaphore_admin.ts";
import {
  lockSlot,
  setMaxSlots,
  unlockSlot,
} from "../lib/semaphore/lock_store.ts";
import {
  aliveKey,
  holderRecordKey,
  pausedKey,
  semaphoreKey,
} from "../lib/semaphore/keys.ts";
import { parseSemaphore } from "../lib/semaphore/document.ts";
import { SemaphoreRefusedError } from "../lib/common/errors.ts";
import { SlotBatcher } from "../lib/serve/batch.ts";
import { GroupSemaphores } from "../lib/serve/semaphores.ts";
import { createFleetLockHandler } from "../lib/serve/handler.ts";

Deno.test("pause and resume against a real etcd", async (t) => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  const stores: EtcdLockStore[] = [];
  const open = async (group: string) => {
    const store = await openEtcdStore({
      endpoints: etcd.endpoints,
      timeoutMs: 5_000,
    }, group);
    stores.push(store);
    return store;
  };
  try {
    await t.step(
      "pause, resume and set-ttl report their own change when a hedged copy of the write committed first",
      async () => {
        const group = "hedged-admin";
        const store = await open(group);
        sendEveryTxnTwice(store);
        const admin = new EtcdSemaphoreAdmin(store);
        assert.equal(await admin.setPaused(true, "test"), true);
        // A pause of the same millisecond would write the same bytes.
        const pausedAt = Date.now();
        await until(
          "the clock's next millisecond",
          () => Date.now() > pausedAt,
          1_000,
          1,
        );
        assert.equal(await admin.setPaused(true, "test"), false);
        assert.equal(await admin.setPaused(false, "test"), true);
        assert.equal(await admin.setPaused(false, "test"), false);
        const set = await admin.setSlotTtl(600);
        assert.deepEqual([set.before.kind, set.after.kind], ["absent", "ok"]);
        const again = await admin.setSlotTtl(600);
        assert.deepEqual(again.before, again.after);
        const cleared = await admin.setSlotTtl(undefined);
        assert.notDeepEqual(cleared.before, cleared.after);
      },
    );

    await t.step(
      "no lock racing a pause is stored after the pause was acknowledged; every locker ends refused with 'paused'",
      async () => {
        const group = "pause-race";
        const key = semaphoreKey(group);
        const admin = new EtcdSemaphoreAdmin(await open(group));
        await setMaxSlots(await open(group), 100_000);
        const lockers = await Promise.all(
          Array.from({ length: 8 }, () => open(group)),
        );
        let pausedAt = Infinity;
        let locked = 0;
        const ends = lockers.map(async (store, i) => {
          for (let n = 0;; n++) {
            try {
              await lockSlot(store, `locker-${i}-${n}`);
              locked++;
            } catch (error) {
              if (error instanceof SemaphoreRefusedError) return error.reason;
              if ((error as Error).name !== "ContentionError") throw error;
            }
            if (n > 5_000) return "never paused";
          }
        });
        await until("more than 8 locks before the pause", () => locked > 8);
        assert.equal(await admin.setPaused(true, "test"), true);
        const acknowledged = Date.now();
        pausedAt = Number(
          (await client.get(pausedKey(key)).exec()).kvs[0]!.create_revision,
        );
        assert.deepEqual(await Promise.all(ends), Array(8).fill("paused"));
        const history = await keyHistory(etcd.endpoints, key);
        assert.deepEqual(checkHistory(key, history).violations, []);
        const grew = history.filter((v, i) =>
          i > 0 && v.value !== undefined &&
          parseSemaphore(v.value, key).holders.length >
            parseSemaphore(history[i - 1]!.value!, key).holders.length
        );
        assert.ok(
          grew.length > 8,
          `only ${grew.length} locks before the pause`,
        );
        const late = grew.filter((v) => v.revision > pausedAt);
        assert.deepEqual(late, [], `locks after the pause (${acknowledged})`);
      },
    );

    await t.step(
      "while paused, holders keep their slots and can release them, set-max works, and a new lock is refused until the resume",
      async () => {
        const group = "pause-hold";
        const store = await open(group);
        const admin = new EtcdSemaphoreAdmin(await open(group));
        await setMaxSlots(store, 3);
        await lockSlot(store, "holder-a", {
          record: { id: "holder-a", since: new Date().toISOString(), by: "t" },
        });
        await lockSlot(store, "holder-b");
        assert.equal(await admin.setPaused(true, "test"), true);
        assert.equal(await admin.setPaused(true, "test"), false); // already
        // The store's cache saw "not paused": the guard still refuses.
        await assert.rejects(
          lockSlot(store, "newcomer"),
          (e: unknown) =>
            e instanceof SemaphoreRefusedError && e.reason === "paused" &&
            e.message ===
              `the semaphore ${
                semaphoreKey(group)
              } is paused: no slot is given until 'locksmithctl resume'`,
        );
        // A holder locking again is still told it holds a slot.
        await assert.rejects(
          lockSlot(store, "holder-b"),
          (e: unknown) =>
            e instanceof SemaphoreRefusedError && e.reason === "holder_exists",
        );
        await unlockSlot(store, "holder-a");
        assert.equal(
          await client.get(holderRecordKey(semaphoreKey(group), "holder-a"))
            .string(),
          null,
        );
        await setMaxSlots(store, 5);
        const view = await admin.view();
        assert.equal(view.paused, true);
        assert.deepEqual(view.doc, {
          semaphore: 4,
          max: 5,
          holders: ["holder-b"],
        });
        assert.equal(await admin.setPaused(false, "test"), true);
        assert.equal(await admin.setPaused(false, "test"), false); // not paused
        await lockSlot(store, "newcomer");
        assert.deepEqual((await admin.view()).doc.holders, [
          "holder-b",
          "newcomer",
        ]);
      },
    );

    await t.step(
      "the FleetLock batcher refuses new slots of a paused group and still releases, deleting the holder's record and alive key",
      async () => {
        const group = "fleet-paused";
        const store = await open(group);
        const batcher = new SlotBatcher(store);
        await setMaxSlots(store, 2);
        await lockSlot(store, "daemon-held", {
          record: {
            id: "daemon-held",
            since: new Date().toISOString(),
            by: "t",
          },
        });
        await client.put(aliveKey(semaphoreKey(group), "daemon-held"))
          .value("x");
        const admin = new EtcdSemaphoreAdmin(await open(group));
        await admin.setPaused(true, "test");
        const verdicts = await Promise.all([
          batcher.submit({ op: "lock", id: "zincati-1" }),
          batcher.submit({ op: "unlock", id: "daemon-held" }),
        ]);
        assert.deepEqual(verdicts.map((v) => v.result), ["paused", "released"]);
        assert.equal(
          await client.get(holderRecordKey(semaphoreKey(group), "daemon-held"))
            .string(),
          null,
        );
        assert.equal(
          await client.get(aliveKey(semaphoreKey(group), "daemon-held"))
            .string(),
          null,
        );
        await admin.setPaused(false, "test");
        assert.equal(
          (await batcher.submit({ op: "lock", id: "zincati-1" })).result,
          "locked",
        );
      },
    );
  } finally {
    for (const store of stores) await store.close();
    client.close();
    await etcd.close();
  }
});

Deno.test("the FleetLock handler answers a pre-reboot of a paused group 409 semaphore full, saying it is paused and how to resume", async () => {
  const store = new FakeStore(new FakeClock(new Date(0)), {
    semaphore: 2,
    max: 2,
    holders: [],
  });
  store.paused = true;
  const semaphores = new GroupSemaphores({
    openStore: () => Promise.resolve(store),
  });
  const handle = createFleetLockHandler({
    service: {
      preReboot: (g, id) => semaphores.preReboot(g, id),
      steadyState: (g, id) => semaphores.steadyState(g, id),
      ping: () => semaphores.ping(),
    },
  });
  const post = (path: string, group: string) =>
    handle(
      new Request(`http://fleetlock.test/v1/${path}`, {
        method: "POST",
        headers: { "fleet-lock-protocol": "true" },
        body: JSON.stringify({ client_params: { id: "m1", group } }),
      }),
    );
  for (
    const [group, hint] of [
      ["default", "locksmithctl resume"],
      ["web", "locksmithctl --group web resume"],
    ]
  ) {
    const response = await post("pre-reboot", group!);
    assert.equal(response.status, 409);
    assert.deepEqual(await response.json(), {
      kind: "failed_lock_semaphore_full",
      value: `group ${group} is paused: no slot is given until '${hint}'`,
    });
  }
  const released = await post("steady-state", "default");
  assert.equal(released.status, 200);
  await released.body?.cancel();
  await semaphores.close();
});
