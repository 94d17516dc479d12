import assert from "node:assert/strict";
import { type DaemonSettings, runDaemonLoop } from "../lib/daemon/loop.ts";
import { backoffMs, decideTurn, windowState } from "../lib/daemon/decisions.ts";
import { ContentionError } from "../lib/common/errors.ts";
import { parseRebootWindow } from "../lib/daemon/reboot_window.ts";
import {
  ETCD_DOWN,
  FakeClock,
  FakeNeed,
  FakeRebooter,
  FakeStore,
  MemoryLog,
} from "./fakes.ts";

const ME = "0123456789abcdef0123456789abcdef";
const T0 = new Date("2026-03-05T10:00:00Z"); // a Thursday

function setup(
  settings: Partial<DaemonSettings> = {},
  options: {
    needed?: boolean;
    doc?: ConstructorParameters<typeof FakeStore>[1];
    noStore?: boolean;
  } = {},
) {
  const clock = new FakeClock(T0);
  const store = new FakeStore(clock, options.doc);
  const rebooter = new FakeRebooter(clock);
  const need = new FakeNeed(options.needed ?? true);
  const log = new MemoryLog();
  const abort = new AbortController();
  const full: DaemonSettings = {
    strategy: "etcd-lock",
    machineId: ME,
    loginDelayMs: 0,
    ...settings,
  };
  const run = () =>
    runDaemonLoop(full, {
      store: options.noStore ? undefined : store,
      rebooter,
      need,
      clock,
      log,
      random: () => 0.5,
    }, abort.signal);
  return { clock, store, rebooter, need, log, abort, run };
}

Deno.test("strategy off logs and ends without touching etcd or logind", async () => {
  const t = setup({ strategy: "off" });
  assert.equal(await t.run(), "off");
  assert.equal(t.rebooter.reboots.length, 0);
  assert.equal(t.store.writes.length, 0);
  assert.match(t.log.lines.join("\n"), /strategy is off/);
});

Deno.test("strategy reboot reboots at once without a slot", async () => {
  const t = setup({ strategy: "reboot" }, { noStore: true });
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.rebooter.reboots.length, 1);
  assert.equal(t.store.writes.length, 0);
});

Deno.test("etcd-lock takes a free slot, then reboots", async () => {
  const t = setup();
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.store.doc.holders, [ME]);
  assert.equal(t.rebooter.reboots.length, 1);
  assert.match(t.log.lines.join("\n"), /took a slot: 1 of 1 held/);
});

Deno.test("at start a held slot with no reboot pending is released, then the daemon waits", async () => {
  const t = setup({}, {
    needed: false,
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  const running = t.run();
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(t.store.doc.holders, []);
  assert.match(
    t.log.lines.join("\n"),
    /released the slot held by .*: the reboot has happened/,
  );
  t.abort.abort();
  assert.equal(await running, "stopped");
  assert.equal(t.rebooter.reboots.length, 0);
});

Deno.test("at start a held slot with a reboot still pending is kept and used", async () => {
  const t = setup({}, {
    needed: true,
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.store.doc.holders, [ME]);
  assert.equal(t.store.writes.length, 0);
  assert.match(t.log.lines.join("\n"), /already holds a slot/);
});

Deno.test("startup release retries with backoff while etcd is down", async () => {
  const t = setup({}, {
    needed: false,
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  t.store.down = ETCD_DOWN;
  let sleeps = 0;
  t.clock.onSleep = () => {
    if (++sleeps === 3) t.store.down = undefined;
  };
  const running = t.run();
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(t.store.doc.holders, []);
  assert.deepEqual(t.clock.sleeps, [3_750, 7_500, 15_000]);
  t.abort.abort();
  assert.equal(await running, "stopped");
});

Deno.test("a reboot signal after start leads to a reboot", async () => {
  const t = setup({}, { needed: false });
  const running = t.run();
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(t.rebooter.reboots.length, 0);
  t.need.trigger();
  assert.equal(await running, "rebooted");
});

Deno.test("a full semaphore is waited on until another machine releases", async () => {
  const t = setup({}, { doc: { semaphore: 0, max: 1, holders: ["other"] } });
  let waits = 0;
  t.store.onWait = () => {
    if (++waits === 2) t.store.set({ semaphore: 1, max: 1, holders: [] });
  };
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.store.doc.holders, [ME]);
  const log = t.log.lines.join("\n");
  assert.equal(
    log.match(/no slot free/g)?.length,
    1,
    "the wait is logged once",
  );
  assert.match(
    log,
    /no slot free for this machine \(max 1, held by other, 0 waiting ahead\)/,
  );
});

Deno.test("a change that frees no slot sends no lock request", async () => {
  const t = setup({}, { doc: { semaphore: 0, max: 2, holders: ["a", "b"] } });
  let waits = 0;
  t.store.onWait = () => {
    waits++;
    if (waits === 1) t.store.set({ semaphore: 0, max: 2, holders: ["a", "c"] }); // b -> c
    if (waits === 2) t.store.set({ semaphore: 1, max: 2, holders: ["c"] });
  };
  let attempts = 0;
  const update = t.store.update.bind(t.store);
  t.store.update = (change) => {
    attempts++;
    return update(change);
  };
  assert.equal(await t.run(), "rebooted");
  assert.equal(attempts, 1, "no attempt while full, one when a slot was free");
});

Deno.test("outside the window the daemon sleeps until it opens, then reboots inside it", async () => {
  const window = parseRebootWindow("Thu 22:00", "1h", "UTC");
  const t = setup({ window });
  assert.equal(await t.run(), "rebooted");
  assert.equal(
    t.rebooter.reboots[0]!.toISOString(),
    "2026-03-05T22:00:00.000Z",
  );
  assert.match(
    t.log.lines.join("\n"),
    /waiting for the reboot window Thu 22:00 for 1h \(UTC\): it opens at 2026-03-05T22:00:00.000Z/,
  );
});

Deno.test("a window that closes while waiting for a slot is never used late", async () => {
  const window = parseRebootWindow("10:00", "30m", "UTC");
  const t = setup({ window, safetyRecheckMs: 10 * 60_000 }, {
    doc: { semaphore: 0, max: 1, holders: ["other"] },
  });
  let waits = 0;
  t.store.onWait = () => {
    // The slot frees only after the window has closed.
    if (++waits === 4) t.store.set({ semaphore: 1, max: 1, holders: [] });
  };
  assert.equal(await t.run(), "rebooted");
  const at = t.rebooter.reboots[0]!;
  assert.equal(
    windowState(window, at).open,
    true,
    `rebooted at ${at.toISOString()}`,
  );
  assert.equal(at.toISOString(), "2026-03-06T10:00:00.000Z");
  assert.match(t.log.lines.join("\n"), /window closed before a slot was free/);
});

Deno.test("a window that closes during the login delay returns the slot", async () => {
  const window = parseRebootWindow("10:00", "10m", "UTC");
  const t = setup({ window, loginDelayMs: 15 * 60_000 });
  t.rebooter.sessions = 2;
  let sleeps = 0;
  t.clock.onSleep = () => {
    if (++sleeps === 1) t.rebooter.sessions = 0; // users log out overnight
  };
  assert.equal(await t.run(), "rebooted");
  const log = t.log.lines.join("\n");
  assert.match(log, /2 user session\(s\) logged in: rebooting in 15m/);
  assert.match(log, /released the slot: the reboot window closed/);
  assert.equal(
    t.rebooter.reboots[0]!.toISOString(),
    "2026-03-06T10:00:00.000Z",
  );
  assert.deepEqual(t.store.doc.holders, [ME]);
});

Deno.test("best-effort reboots without a slot when etcd does not answer", async () => {
  const t = setup({ strategy: "best-effort" });
  t.store.down = ETCD_DOWN;
  assert.equal(await t.run(), "rebooted");
  assert.match(t.log.lines.join("\n"), /best-effort: rebooting without a slot/);
});

Deno.test("etcd-lock survives an etcd outage, logging once per backoff step", async () => {
  const t = setup();
  t.store.down = ETCD_DOWN;
  t.clock.onSleep = () => {
    if (t.clock.sleeps.length === 4) t.store.down = undefined;
  };
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.clock.sleeps, [3_750, 7_500, 15_000, 30_000]);
  assert.equal(
    t.log.lines.filter((l) => l.startsWith("warn: cannot take a slot")).length,
    4,
  );
  assert.deepEqual(t.store.doc.holders, [ME]);
});

Deno.test("a corrupt document is retried, never overwritten", async () => {
  const t = setup({}, { doc: "garbage" });
  t.clock.onSleep = () => {
    if (t.clock.sleeps.length === 2) {
      t.store.set({ semaphore: 1, max: 1, holders: [] });
    }
  };
  assert.equal(await t.run(), "rebooted");
  assert.match(
    t.log.lines.join("\n"),
    /cannot take a slot: semaphore document at fake\/semaphore is corrupt: not valid JSON/,
  );
  assert.equal(t.store.writes.length, 1);
});

Deno.test("users logged in delay the reboot by the login delay", async () => {
  const t = setup({ loginDelayMs: 300_000 });
  t.rebooter.sessions = 1;
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.rebooter.reboots[0]!.getTime() - T0.getTime(), 300_000);
});

Deno.test("a failed reboot request is retried", async () => {
  const t = setup();
  t.rebooter.failures = 2;
  assert.equal(await t.run(), "rebooted");
  assert.equal(
    t.log.lines.filter((l) => l.includes("reboot request failed")).length,
    2,
  );
});

Deno.test("stopping while waiting for a slot ends at once without a reboot", async () => {
  const t = setup({}, { doc: { semaphore: 0, max: 1, holders: ["other"] } });
  t.store.onWait = () => t.abort.abort();
  assert.equal(await t.run(), "stopped");
  assert.equal(t.rebooter.reboots.length, 0);
});

Deno.test("a waiter behind another leaves a free slot to it, then takes it when it has gone", async () => {
  const t = setup({ handoverMs: 60_000 }, {
    doc: { semaphore: 0, max: 1, holders: ["holder"] },
  });
  t.store.queue = ["first"];
  let waits = 0;
  t.store.onWait = () => {
    waits++;
    if (waits === 1) t.store.set({ semaphore: 1, max: 1, holders: [] }); // holder releases
    if (waits === 2) {
      t.store.set({ semaphore: 0, max: 1, holders: ["first"] }); // first takes it
      t.store.dequeue("first");
    }
    if (waits === 3) t.store.set({ semaphore: 1, max: 1, holders: [] }); // first releases
  };
  assert.equal(await t.run(), "rebooted");
  const tries = t.store.updates.filter((u) => u?.leaveQueue);
  assert.equal(tries.length, 1, "one lock attempt, when it was our turn");
  assert.deepEqual(tries[0]!.evict, []);
  assert.deepEqual(t.store.queue, []);
  assert.match(t.log.lines.join("\n"), /1 waiting ahead/);
});

Deno.test("a free slot left untaken by a dead waiter ahead is taken after the hand-over time", async () => {
  const t = setup({ handoverMs: 10_000 }, {
    doc: { semaphore: 1, max: 1, holders: [] },
  });
  t.store.queue = ["dead"];
  const started = t.clock.now().getTime();
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.clock.now().getTime() - started, 10_000);
  assert.deepEqual(t.store.updates.at(-1)?.evict, ["dead"]);
  assert.deepEqual(t.store.queue, []);
  assert.match(
    t.log.lines.join("\n"),
    /dead did not take it: taking it and removing them from the queue/,
  );
});

Deno.test("decideTurn() lets the first waiters in line try, and the next ones after the hand-over", () => {
  assert.deepEqual(decideTurn(0, 0, undefined, 0, 10_000), {
    action: "wait",
    freeSince: undefined,
    waitMs: undefined,
  });
  assert.deepEqual(decideTurn(1, 0, undefined, 0, 10_000), {
    action: "try",
    evictAhead: 0,
  });
  assert.deepEqual(decideTurn(2, 1, undefined, 0, 10_000), {
    action: "try",
    evictAhead: 0,
  });
  assert.deepEqual(decideTurn(1, 3, undefined, 100, 10_000), {
    action: "wait",
    freeSince: 100,
    waitMs: 10_000,
  });
  assert.deepEqual(decideTurn(1, 3, 100, 5_100, 10_000), {
    action: "wait",
    freeSince: 100,
    waitMs: 5_000,
  });
  assert.deepEqual(decideTurn(2, 3, 100, 10_100, 10_000), {
    action: "try",
    evictAhead: 2,
  });
});

Deno.test("losing the race for a slot means waiting again, without backing off", async () => {
  const t = setup({}, { doc: { semaphore: 1, max: 1, holders: [] } });
  let first = true;
  const update = t.store.update.bind(t.store);
  t.store.update = (change, options) => {
    if (first) {
      first = false;
      t.store.set({ semaphore: 0, max: 1, holders: ["fast"] });
      return Promise.reject(
        new ContentionError(
          "gave up on fake/semaphore after 1 conflicting writes",
        ),
      );
    }
    return update(change, options);
  };
  t.store.onWait = () => t.store.set({ semaphore: 1, max: 1, holders: [] });
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.clock.sleeps, [], "no backoff");
});

Deno.test("backoffMs() doubles from 5 s to 5 min with jitter", () => {
  assert.equal(backoffMs(1, () => 0), 2_500);
  assert.equal(backoffMs(1, () => 0.999999), 5_000);
  assert.equal(backoffMs(2, () => 0.999999), 10_000);
  assert.equal(backoffMs(20, () => 0.999999), 300_000);
});
