/**
 * locksmithd's loop with a slot TTL and a pause, with fakes and a virtual
 * clock (pure unit tests): who reclaims what, when the lease is prepared,
 * attached, resumed and released, and how a paused semaphore is waited out.
 */

import assert from "node:assert/strict";
import { until } from "./harness/until.ts";
import { type DaemonSettings, runDaemonLoop } from "../lib/daemon/loop/loop.ts";
import {
  confirmationVerdict,
  decideReclaim,
  onLockFailure,
} from "../lib/daemon/loop/decisions.ts";
import { SemaphoreRefusedError } from "../lib/common/errors.ts";
import type { HolderRecord } from "../lib/semaphore/holder_record.ts";
import {
  FakeClock,
  FakeNeed,
  FakeQueue,
  FakeRebooter,
  FakeStore,
  MemoryLog,
} from "./fakes.ts";
import { FakeSlotLease } from "./slot_lease_fake.ts";

const ME = "0123456789abcdef0123456789abcdef";
const DEAD = "deadbeefdeadbeefdeadbeefdeadbeef";
const T0 = new Date("2026-03-05T10:00:00Z");
const BOOT = { id: "boot-2", time: new Date("2026-03-05T09:00:00Z") };

function setup(
  settings: Partial<DaemonSettings> = {},
  options: {
    needed?: boolean;
    doc?: ConstructorParameters<typeof FakeStore>[1];
  } = {},
) {
  const clock = new FakeClock(T0);
  const store = new FakeStore(clock, options.doc);
  const queue = new FakeQueue(store, ME);
  const lease = new FakeSlotLease(store);
  const rebooter = new FakeRebooter(clock);
  const need = new FakeNeed(options.needed ?? true);
  const log = new MemoryLog();
  const abort = new AbortController();
  const run = () =>
    runDaemonLoop({
      strategy: "etcd-lock",
      machineId: ME,
      loginDelayMs: 0,
      ...settings,
    }, {
      store,
      queue,
      slotLease: lease,
      rebooter,
      need,
      clock,
      log,
      random: () => 0.5,
      boot: BOOT,
    }, abort.signal);
  const text = () => log.lines.join("\n");
  return { clock, store, queue, lease, rebooter, log, abort, run, text };
}

/** A holder record as locksmithd writes it with a slot TTL. */
function leased(id: string, lease: string, since: string): HolderRecord {
  return {
    id,
    since,
    by: "locksmithd",
    boot: `boot-of-${id}`,
    lease,
    ttl: 600,
  };
}

const FULL = { semaphore: 0, max: 1, holders: [DEAD] };

Deno.test("first in line with every slot held by a holder whose lease expired, the daemon reclaims it, logs the holder's id and age, takes the slot and reboots", async () => {
  const t = setup({ slotTtlSeconds: 600 }, { doc: FULL });
  t.store.records.set(DEAD, leased(DEAD, "99", "2026-03-05T07:58:30Z"));
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.lease.reclaims, [[DEAD]]);
  assert.deepEqual(t.store.doc.holders, [ME]);
  assert.ok(
    t.log.lines.includes(
      `warn: reclaimed the slot of ${DEAD}: its lease 99 expired (no renewal within the slot TTL 10m); it held the slot for 2h1m (boot boot-of-${DEAD})`,
    ),
    t.text(),
  );
  // The slot it took is renewed with a lease of the TTL in force.
  const record = t.store.records.get(ME)!;
  assert.equal(record.lease, "1001");
  assert.equal(record.ttl, 600);
  assert.equal(t.lease.attached?.record.lease, "1001");
  assert.equal(t.rebooter.reboots.length, 1);
});

Deno.test("a slot TTL stored with the semaphore wins over the daemon's own", async () => {
  // Stored 15m, daemon 10m: the take's lease has the stored TTL.
  const t = setup({ slotTtlSeconds: 600 }, { doc: FULL });
  t.lease.stored = { kind: "ok", settings: { slotTtlSeconds: 900 } };
  t.store.records.set(DEAD, leased(DEAD, "99", "2026-03-05T09:00:00Z"));
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.store.records.get(ME)?.ttl, 900);
  assert.match(t.text(), /within the slot TTL 15m/);
});

async function neverReclaims(t: ReturnType<typeof setup>): Promise<void> {
  let waits = 0;
  t.queue.onWait = () => {
    if (++waits === 5) t.abort.abort();
  };
  assert.equal(await t.run(), "stopped");
  assert.deepEqual(t.lease.reclaims, []);
  assert.deepEqual(t.store.doc.holders, [DEAD]);
  assert.equal(t.rebooter.reboots.length, 0);
}

Deno.test("without a slot TTL a holder whose lease expired is never reclaimed", async () => {
  const t = setup({}, { doc: FULL });
  t.store.records.set(DEAD, leased(DEAD, "99", "2026-03-01T00:00:00Z"));
  await neverReclaims(t);
});

Deno.test("a stored 'off' wins over LOCKSMITHD_SLOT_TTL: nothing is reclaimed", async () => {
  const t = setup({ slotTtlSeconds: 600 }, { doc: FULL });
  t.lease.stored = { kind: "ok", settings: { slotTtlSeconds: 0 } };
  t.store.records.set(DEAD, leased(DEAD, "99", "2026-03-01T00:00:00Z"));
  await neverReclaims(t);
});

Deno.test("settings that do not parse mean no TTL: nothing is reclaimed", async () => {
  const t = setup({ slotTtlSeconds: 600 }, { doc: FULL });
  t.lease.stored = { kind: "corrupt", defect: "not valid JSON" };
  t.store.records.set(DEAD, leased(DEAD, "99", "2026-03-01T00:00:00Z"));
  await neverReclaims(t);
});

Deno.test("a holder whose record names no lease (locksmithctl lock, FleetLock, older versions) is never reclaimed", async () => {
  const t = setup({ slotTtlSeconds: 600 }, { doc: FULL });
  t.store.records.set(DEAD, {
    id: DEAD,
    since: "2026-03-01T00:00:00Z",
    by: "locksmithctl",
  });
  await neverReclaims(t);
});

Deno.test("a holder without any record is never reclaimed", async () => {
  const t = setup({ slotTtlSeconds: 600 }, { doc: FULL });
  await neverReclaims(t);
});

Deno.test("a live holder (its alive key exists) is not reclaimed; once it releases, the waiter takes the slot", async () => {
  const t = setup({ slotTtlSeconds: 600 }, { doc: FULL });
  t.store.records.set(DEAD, leased(DEAD, "99", "2026-03-05T09:00:00Z"));
  t.lease.alive.add(DEAD);
  let waits = 0;
  t.queue.onWait = () => {
    if (++waits === 3) {
      t.store.records.delete(DEAD);
      t.store.set({ semaphore: 1, max: 1, holders: [] });
    }
  };
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.lease.reclaims, []);
  assert.deepEqual(t.store.doc.holders, [ME]);
});

Deno.test("without a TTL in force the take writes a record without a lease and prepares none", async () => {
  const t = setup({}, { doc: { semaphore: 1, max: 1, holders: [] } });
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.store.records.get(ME)?.lease, undefined);
  assert.deepEqual(t.lease.granted, []);
});

Deno.test("while paused, the take is refused and the daemon waits for a change (one attempt per wake), then takes after the resume", async () => {
  const t = setup({}, { doc: { semaphore: 1, max: 1, holders: [] } });
  t.store.paused = true;
  let waits = 0;
  t.queue.onWait = () => {
    if (++waits === 3) {
      t.store.paused = false;
      t.store.revision++; // the resume, seen by the watch
    }
  };
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.store.doc.holders, [ME]);
  // One refused take per wake, never a tight loop.
  assert.equal(t.queue.takes.length, 4);
  assert.equal(
    t.log.lines.filter((l) => l.includes("the semaphore is paused")).length,
    1,
  );
});

Deno.test("at start, holding a slot with a lease: the lease is resumed before the release and released after it", async () => {
  const t = setup({}, {
    needed: false,
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  t.store.records.set(ME, {
    ...leased(ME, "7", "2026-03-05T08:00:00Z"),
    boot: "boot-1",
  });
  const running = t.run();
  await until("the slot's release", () => t.lease.releases > 0);
  assert.equal(t.lease.resumes, 1);
  assert.deepEqual(t.store.doc.holders, []);
  assert.equal(t.lease.releases, 1);
  assert.match(t.text(), /renewing the lease on this machine's slot/);
  t.abort.abort();
  await running;
});

Deno.test("a slot whose lease may have expired is not rebooted on; the daemon looks at its slot again first", async () => {
  const t = setup({ slotTtlSeconds: 600 }, {
    doc: { semaphore: 1, max: 1, holders: [] },
  });
  t.lease.isCovered = false;
  t.clock.onSleep = () => (t.lease.isCovered = true);
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.rebooter.reboots.length, 1);
  assert.match(
    t.text(),
    /the lease on this machine's slot may have expired .*: not rebooting on it/,
  );
  assert.match(t.text(), /already holds a slot/);
});

Deno.test("the last check before the reboot renews the lease and reads the semaphore; a check grown old before the call is asked again", async () => {
  const t = setup({ slotTtlSeconds: 600 }, {
    doc: { semaphore: 1, max: 1, holders: [] },
  });
  const confirm = t.lease.confirm.bind(t.lease);
  t.lease.confirm = async () => {
    const answer = await confirm();
    // A pause right after the first check: 151 s, over a quarter of 10m.
    if (t.lease.confirms === 1) t.clock.advance(151_000);
    return answer;
  };
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.lease.confirms, 2);
  assert.equal(t.rebooter.reboots.length, 1);
  assert.match(
    t.text(),
    /the last check of this machine's slot is too old to act on .*: checking again/,
  );
});

Deno.test("a slot found reclaimed at the last check is not rebooted on: the daemon queues again and reboots on a new slot", async () => {
  const t = setup({ slotTtlSeconds: 600 }, {
    doc: { semaphore: 1, max: 1, holders: [] },
  });
  const confirm = t.lease.confirm.bind(t.lease);
  t.lease.confirm = () => {
    if (t.lease.confirms === 0) {
      // While the notifications were flushed, the lease expired and a
      // waiter reclaimed the slot, then gave it back.
      t.lease.alive.delete(ME);
      t.store.set({ semaphore: 1, max: 1, holders: [] });
    }
    return confirm();
  };
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.rebooter.reboots.length, 1);
  assert.equal(t.lease.confirms, 2);
  assert.match(
    t.text(),
    /warn: not rebooting: the last check before the reboot found that this machine no longer holds its slot/,
  );
  assert.equal(t.queue.takes.length, 2);
});

Deno.test("confirmationVerdict() acts only on a holding confirmation younger than a quarter of the TTL", () => {
  const held = { held: true, ttlSeconds: 60, sentAtMs: 1_000 };
  assert.equal(confirmationVerdict(held, 1_000), "reboot");
  assert.equal(confirmationVerdict(held, 15_999), "reboot");
  assert.equal(confirmationVerdict(held, 16_000), "check-again");
  assert.equal(confirmationVerdict(held, 3_600_000), "check-again");
  assert.equal(confirmationVerdict(held, 999), "check-again");
  assert.equal(confirmationVerdict(undefined, 1_000), "check-again");
  assert.equal(confirmationVerdict({ ...held, held: false }, 1_000), "lost");
  assert.equal(
    confirmationVerdict({ held: true, ttlSeconds: 0, sentAtMs: 0 }, 1e9),
    "reboot",
  );
});

Deno.test("decideReclaim() picks only holders that renew by a lease whose alive key is gone, and only with a TTL", () => {
  const now = Date.parse("2026-03-05T10:00:00Z");
  const holders = [
    {
      id: "a",
      record: leased("a", "1", "2026-03-05T09:00:00Z"),
      recordRevision: 3,
      alive: false,
    },
    {
      id: "b",
      record: leased("b", "2", "2026-03-05T09:00:00Z"),
      recordRevision: 4,
      alive: true,
    },
    {
      id: "c",
      record: { id: "c", since: "2026-03-05T09:00:00Z", by: "locksmithctl" },
      recordRevision: 5,
      alive: false,
    },
    { id: "d", recordRevision: 0, alive: false },
  ];
  assert.deepEqual(decideReclaim({ holders, ttlSeconds: 600, now }), [
    { id: "a", lease: "1", heldMs: 3_600_000, boot: "boot-of-a" },
  ]);
  assert.deepEqual(decideReclaim({ holders, ttlSeconds: 0, now }), []);
});

Deno.test("onLockFailure() waits on a paused semaphore instead of looking again at once", () => {
  assert.equal(
    onLockFailure(new SemaphoreRefusedError("paused", "paused")),
    "paused",
  );
  assert.equal(
    onLockFailure(new SemaphoreRefusedError("semaphore_full", "full")),
    "look-again",
  );
});
