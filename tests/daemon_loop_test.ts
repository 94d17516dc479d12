/** locksmithd's loop with fakes and a virtual clock (pure unit tests). */

import assert from "node:assert/strict";
import { type DaemonSettings, runDaemonLoop } from "../lib/daemon/loop/loop.ts";
import {
  decideTurn,
  lockAttemptResult,
  startupAction,
  windowState,
} from "../lib/daemon/loop/decisions.ts";
import { backoffMs } from "../lib/common/backoff.ts";
import {
  ContentionError,
  SemaphoreRefusedError,
} from "../lib/common/errors.ts";
import { parseRebootWindow } from "../lib/schedule/reboot_window.ts";
import { parseSchedule, scheduleFromWindow } from "../lib/schedule/schedule.ts";
import { parseCommand } from "../lib/host/command.ts";
import { CommandRebooter } from "../lib/daemon/safety/command_rebooter.ts";
import {
  planAfterVeto,
  releaseWaitsForHealth,
  wallMessage,
} from "../lib/daemon/loop/safety_decisions.ts";
import {
  ETCD_DOWN,
  FakeClock,
  FakeCommands,
  FakeNeed,
  FakeQueue,
  FakeRebooter,
  FakeStore,
  FakeWarning,
  MemoryLog,
  RecordingMetrics,
  RecordingNotifier,
} from "./fakes.ts";

const ME = "0123456789abcdef0123456789abcdef";
const T0 = new Date("2026-03-05T10:00:00Z"); // a Thursday
const BOOT = { id: "boot-2", time: new Date("2026-03-05T09:00:00Z") };

function setup(
  settings: Partial<DaemonSettings> = {},
  options: {
    needed?: boolean;
    doc?: ConstructorParameters<typeof FakeStore>[1];
    noStore?: boolean;
    /** Reboot through this LOCKSMITHD_REBOOT_COMMAND (run by the fake runner). */
    rebootCommand?: string;
  } = {},
) {
  const clock = new FakeClock(T0);
  const store = new FakeStore(clock, options.doc);
  const queue = new FakeQueue(store, ME);
  const rebooter = new FakeRebooter(clock);
  const need = new FakeNeed(options.needed ?? true);
  const log = new MemoryLog();
  const commands = new FakeCommands(clock);
  const notifier = new RecordingNotifier();
  const metrics = new RecordingMetrics();
  const warning = new FakeWarning();
  const abort = new AbortController();
  const full: DaemonSettings = {
    strategy: "etcd-lock",
    machineId: ME,
    loginDelayMs: 0,
    endpoints: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"],
    ...settings,
  };
  const rebootCommand = options.rebootCommand === undefined
    ? undefined
    : new CommandRebooter({
      command: parseCommand("LOCKSMITHD_REBOOT_COMMAND", options.rebootCommand),
      timeoutMs: 60_000,
      env: {},
      sessions: rebooter,
      log,
      run: commands.run,
      onRun: (result) => metrics.countCommand("reboot-command", result),
    });
  const run = () =>
    runDaemonLoop(full, {
      store: options.noStore ? undefined : store,
      queue: options.noStore ? undefined : queue,
      rebooter: rebootCommand ?? rebooter,
      need,
      clock,
      log,
      random: () => 0.5,
      boot: BOOT,
      runCommand: commands.run,
      notifier,
      metrics,
      warning,
    }, abort.signal);
  const text = () => log.lines.join("\n");
  return {
    clock,
    store,
    queue,
    rebooter,
    need,
    log,
    abort,
    run,
    text,
    commands,
    notifier,
    metrics,
    warning,
  };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

/**
 * Writes this machine's holder record as locksmithd did when it took the
 * slot: on the previous boot (`boot-1`, at 08:00) or on this one (`boot-2`,
 * at 09:30).
 */
function recordTakenOn(
  t: ReturnType<typeof setup>,
  boot: "boot-1" | "boot-2",
): void {
  t.store.records.set(ME, {
    id: ME,
    since: boot === "boot-1" ? "2026-03-05T08:00:00Z" : "2026-03-05T09:30:00Z",
    by: "locksmithd",
    boot,
  });
}

Deno.test("strategy off logs and ends without touching etcd or logind", async () => {
  const t = setup({ strategy: "off" });
  assert.equal(await t.run(), "off");
  assert.equal(t.rebooter.reboots.length, 0);
  assert.equal(t.store.writes.length, 0);
  assert.match(t.text(), /strategy is off/);
});

Deno.test("strategy reboot reboots at once without a slot", async () => {
  const t = setup({ strategy: "reboot" }, { noStore: true });
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.rebooter.reboots.length, 1);
  assert.equal(t.store.writes.length, 0);
});

Deno.test("the start line names the strategy, the endpoints, the group and the source", async () => {
  const t = setup({ group: "web" });
  await t.run();
  assert.match(
    t.log.lines[0]!,
    /^info: starting: strategy etcd-lock, machine 0123.*, etcd http:\/\/10\.0\.0\.1:2379,http:\/\/10\.0\.0\.2:2379, group web, no reboot window, reboot-needed source fake$/,
  );
  assert.match(t.text(), /reboot needed \(fake\)/);
});

Deno.test("etcd-lock takes a free slot with a holder record of this boot, then reboots", async () => {
  const t = setup();
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.store.doc.holders, [ME]);
  assert.equal(t.rebooter.reboots.length, 1);
  assert.match(t.text(), /took a slot: 1 of 1 held/);
  const record = t.store.records.get(ME);
  assert.equal(record?.boot, "boot-2");
  assert.equal(record?.by, "locksmithd");
  assert.equal(record?.since, T0.toISOString());
});

Deno.test("at start a held slot with no reboot pending and no record is released, then the daemon waits", async () => {
  const t = setup({}, {
    needed: false,
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  const running = t.run();
  await tick();
  assert.deepEqual(t.store.doc.holders, []);
  assert.match(
    t.text(),
    /released the slot held by .*: the reboot has happened/,
  );
  t.abort.abort();
  assert.equal(await running, "stopped");
  assert.equal(t.rebooter.reboots.length, 0);
});

Deno.test("at start a slot taken on another boot is released even with a new reboot pending, then taken again", async () => {
  const t = setup({}, {
    needed: true,
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  recordTakenOn(t, "boot-1");
  assert.equal(await t.run(), "rebooted");
  const log = t.text();
  assert.match(
    log,
    /released the slot held by .*: the reboot has happened \(the boot id changed\)/,
  );
  assert.match(log, /took a slot/);
  assert.equal(t.store.records.get(ME)?.boot, "boot-2");
});

Deno.test("at start a slot taken on this boot with its reboot still pending is kept and used", async () => {
  const t = setup({}, {
    needed: true,
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  recordTakenOn(t, "boot-2");
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.store.doc.holders, [ME]);
  assert.equal(t.store.writes.length, 0);
  assert.match(
    t.text(),
    /keeping the slot held by .*: this boot took it and its reboot is still pending/,
  );
});

Deno.test("at start a slot taken on this boot with nothing pending is released", async () => {
  const t = setup({}, {
    needed: false,
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  recordTakenOn(t, "boot-2");
  const running = t.run();
  await tick();
  assert.deepEqual(t.store.doc.holders, []);
  assert.match(t.text(), /this boot took it but no reboot is pending any more/);
  t.abort.abort();
  await running;
});

Deno.test("startupAction() decides by the boot id, and by the pending reboot without one", () => {
  const f = (
    holding: boolean,
    rebootPending: boolean,
    recordedBoot?: string,
    currentBoot?: string,
  ) =>
    startupAction({ holding, rebootPending, recordedBoot, currentBoot }).action;
  assert.equal(f(false, true, "a", "b"), "none");
  assert.equal(f(true, true, "a", "b"), "release");
  assert.equal(f(true, false, "a", "b"), "release");
  assert.equal(f(true, true, "b", "b"), "keep");
  assert.equal(f(true, false, "b", "b"), "release");
  assert.equal(f(true, true, undefined, "b"), "keep");
  assert.equal(f(true, false, undefined, "b"), "release");
  assert.equal(f(true, true, "a", undefined), "keep");
});

Deno.test("startup release retries with doubling backoff while etcd is down", async () => {
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
  await tick();
  assert.deepEqual(t.store.doc.holders, []);
  assert.deepEqual(t.clock.sleeps, [3_750, 7_500, 15_000]);
  t.abort.abort();
  assert.equal(await running, "stopped");
});

Deno.test("a release whose answer was lost but which applied is logged as a release", async () => {
  const t = setup({}, {
    needed: false,
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  t.store.lostUnlockAnswers = 1;
  const running = t.run();
  await tick();
  assert.deepEqual(t.store.doc.holders, []);
  assert.match(
    t.text(),
    /released the slot held by .*: the reboot has happened \(it is free now: an earlier attempt whose answer was lost applied/,
  );
  t.abort.abort();
  await running;
});

Deno.test("a reboot signal after start leads to a reboot", async () => {
  const t = setup({}, { needed: false });
  const running = t.run();
  await tick();
  assert.equal(t.rebooter.reboots.length, 0);
  t.need.trigger();
  assert.equal(await running, "rebooted");
});

Deno.test("a full semaphore is waited on until another machine releases", async () => {
  const t = setup({}, { doc: { semaphore: 0, max: 1, holders: ["other"] } });
  let waits = 0;
  t.queue.onWait = () => {
    if (++waits === 2) t.store.set({ semaphore: 1, max: 1, holders: [] });
  };
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.store.doc.holders, [ME]);
  const log = t.text();
  assert.equal(
    log.match(/no slot free/g)?.length,
    1,
    "the wait is logged once",
  );
  assert.match(
    log,
    /no slot free for this machine \(max 1, held by other; first in line\)/,
  );
});

Deno.test("a change that frees no slot sends no lock request", async () => {
  const t = setup({}, { doc: { semaphore: 0, max: 2, holders: ["a", "b"] } });
  let waits = 0;
  t.queue.onWait = () => {
    waits++;
    if (waits === 1) t.store.set({ semaphore: 0, max: 2, holders: ["a", "c"] });
    if (waits === 2) t.store.set({ semaphore: 1, max: 2, holders: ["c"] });
  };
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.queue.takes.length, 1, "no attempt while full, one when free");
});

Deno.test("outside the window the daemon sleeps until it opens, then reboots inside it", async () => {
  const window = parseRebootWindow("Thu 22:00", "1h", "Europe/Berlin");
  const t = setup({ schedule: scheduleFromWindow(window) });
  assert.equal(await t.run(), "rebooted");
  assert.equal(
    t.rebooter.reboots[0]!.toISOString(),
    "2026-03-05T21:00:00.000Z",
  );
  assert.match(
    t.text(),
    /waiting for the reboot window Thu 22:00 for 1h \(Europe\/Berlin\): it opens at 2026-03-05 22:00 Europe\/Berlin \(2026-03-05T21:00:00.000Z\)/,
  );
});

Deno.test("a window that closes while waiting for a slot is never used late", async () => {
  const window = parseRebootWindow("10:00", "30m", "UTC");
  const t = setup({
    schedule: scheduleFromWindow(window),
    safetyRecheckMs: 10 * 60_000,
  }, {
    doc: { semaphore: 0, max: 1, holders: ["other"] },
  });
  let waits = 0;
  t.queue.onWait = () => {
    // The slot frees only after the window has closed.
    if (++waits === 4) t.store.set({ semaphore: 1, max: 1, holders: [] });
  };
  assert.equal(await t.run(), "rebooted");
  const at = t.rebooter.reboots[0]!;
  assert.equal(windowState(window, at).open, true, at.toISOString());
  assert.equal(at.toISOString(), "2026-03-06T10:00:00.000Z");
  assert.match(t.text(), /window closed before a slot was free/);
});

Deno.test("a window that closes during the login delay returns the slot", async () => {
  const window = parseRebootWindow("10:00", "10m", "UTC");
  const t = setup({
    schedule: scheduleFromWindow(window),
    loginDelayMs: 15 * 60_000,
  });
  t.rebooter.sessions = 2;
  let sleeps = 0;
  t.clock.onSleep = () => {
    if (++sleeps === 1) t.rebooter.sessions = 0; // users log out overnight
  };
  assert.equal(await t.run(), "rebooted");
  const log = t.text();
  assert.match(log, /2 user session\(s\) logged in: rebooting in 15m/);
  assert.match(log, /released the slot held by .*: the reboot window closed/);
  assert.equal(
    t.rebooter.reboots[0]!.toISOString(),
    "2026-03-06T10:00:00.000Z",
  );
});

Deno.test("a reboot that logind refuses until the window closed is not made late: the slot is returned", async () => {
  const window = parseRebootWindow("10:00", "1m", "UTC");
  const t = setup({ schedule: scheduleFromWindow(window) });
  t.rebooter.failures = 5; // retries after 3.75 s, 7.5 s, 15 s, 30 s, 1 min: past 10:01
  assert.equal(await t.run(), "rebooted");
  const at = t.rebooter.reboots[0]!;
  assert.equal(windowState(window, at).open, true, at.toISOString());
  assert.equal(at.toISOString().slice(0, 16), "2026-03-06T10:00");
  const log = t.text();
  assert.match(log, /the reboot window closed before the reboot was accepted/);
  assert.match(
    log,
    /released the slot held by .*: the reboot window closed before rebooting/,
  );
});

Deno.test("a reboot that logind keeps refusing gives the slot back after the retry limit, and queues again", async () => {
  const t = setup({ rebootRetryLimitMs: 60_000 });
  t.rebooter.failures = 6; // the 6th failure comes 1m56s after the first
  assert.equal(await t.run(), "rebooted");
  const log = t.text();
  assert.match(
    log,
    /the reboot request has failed for 1m56s250ms \(.*\); giving the slot back/,
  );
  assert.match(
    log,
    /released the slot held by .*: the reboot request kept failing/,
  );
  assert.equal(log.match(/took a slot/g)?.length, 2);
});

Deno.test("best-effort reboots without a slot only when no endpoint ever answered, naming them", async () => {
  const t = setup({ strategy: "best-effort" });
  t.store.down = ETCD_DOWN;
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.store.writes.length, 0);
  assert.match(
    t.text(),
    /best-effort: no etcd endpoint \(http:\/\/10\.0\.0\.1:2379,http:\/\/10\.0\.0\.2:2379\) has answered since locksmithd started, nor within 30s .*rebooting without a slot/,
  );
  // It kept trying for the whole budget.
  assert.ok(t.clock.now().getTime() - T0.getTime() >= 30_000);
});

Deno.test("best-effort uses the semaphore when etcd answers within the start-up budget", async () => {
  const t = setup({ strategy: "best-effort" });
  t.store.down = ETCD_DOWN;
  t.clock.onSleep = () => {
    if (t.clock.sleeps.length === 2) t.store.down = undefined;
  };
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.store.doc.holders, [ME]);
  assert.doesNotMatch(t.text(), /without a slot/);
});

Deno.test("best-effort that reached etcd once never reboots without a slot during an outage", async () => {
  const t = setup({ strategy: "best-effort" }, {
    needed: false,
    doc: { semaphore: 0, max: 1, holders: ["holder-1"] },
  });
  const running = t.run();
  await tick(); // the start-up check reached etcd
  t.store.down = ETCD_DOWN;
  t.need.trigger();
  t.clock.onSleep = () => {
    if (t.clock.sleeps.length === 6) {
      t.store.down = undefined;
      t.store.set({ semaphore: 1, max: 1, holders: [] });
    }
  };
  assert.equal(await running, "rebooted");
  assert.deepEqual(t.store.doc.holders, [ME], "it rebooted holding a slot");
  assert.doesNotMatch(t.text(), /without a slot/);
});

Deno.test("etcd-lock survives an etcd outage, backing off with doubling delays", async () => {
  const t = setup();
  t.store.down = ETCD_DOWN;
  t.clock.onSleep = () => {
    if (t.clock.sleeps.length === 5) t.store.down = undefined;
  };
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.clock.sleeps, [3_750, 7_500, 15_000, 30_000, 60_000]);
  const warns = t.log.lines.filter((l) =>
    l.startsWith("warn: cannot check this machine's slot")
  );
  assert.equal(warns.length, 5);
  assert.match(warns[0]!, /cannot reach etcd/);
  assert.deepEqual(t.store.doc.holders, [ME]);
});

Deno.test("an outage while waiting keeps doubling the backoff, and the wait is not shown from the stale document", async () => {
  const t = setup({}, { doc: { semaphore: 0, max: 1, holders: ["holder-1"] } });
  let waits = 0;
  t.queue.onWait = () => {
    if (++waits === 1) t.store.down = ETCD_DOWN;
  };
  t.clock.onSleep = () => {
    if (t.clock.sleeps.length === 4) {
      t.store.down = undefined;
      t.store.set({ semaphore: 1, max: 1, holders: [] });
    }
  };
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.clock.sleeps, [3_750, 7_500, 15_000, 30_000]);
  const lines = t.log.lines;
  const outage = lines.findIndex((l) =>
    l.startsWith("warn: cannot take a slot")
  );
  assert.ok(outage > 0);
  assert.match(lines[outage]!, /cannot reach etcd/);
  assert.ok(
    !lines.slice(outage).some((l) => /held by holder-1/.test(l)),
    "the stale document is not shown as current after the outage began",
  );
});

Deno.test("the safety re-check reads the queue again every interval even when nothing is seen", async () => {
  const t = setup({ safetyRecheckMs: 60_000 }, {
    doc: { semaphore: 0, max: 1, holders: ["other"] },
  });
  t.queue.onWait = () => {
    if (t.queue.refreshes === 3) {
      t.store.set({ semaphore: 1, max: 1, holders: [] });
    }
  };
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.queue.refreshes, 3);
  assert.equal(t.clock.now().getTime() - T0.getTime(), 180_000);
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
    t.text(),
    /cannot check this machine's slot: semaphore document at fake\/semaphore is corrupt: not valid JSON/,
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
  t.queue.onWait = () => t.abort.abort();
  assert.equal(await t.run(), "stopped");
  assert.equal(t.rebooter.reboots.length, 0);
});

Deno.test("the second in line leaves a free slot to the head, then takes it when the head has gone", async () => {
  const t = setup({ handoverMs: 60_000 }, {
    doc: { semaphore: 0, max: 1, holders: ["holder"] },
  });
  t.queue.queue = ["first"];
  let waits = 0;
  t.queue.onWait = () => {
    waits++;
    if (waits === 1) t.store.set({ semaphore: 1, max: 1, holders: [] }); // holder releases
    if (waits === 2) {
      t.store.set({ semaphore: 0, max: 1, holders: ["first"] }); // first takes it
      t.queue.dequeue("first");
    }
    if (waits === 3) t.store.set({ semaphore: 1, max: 1, holders: [] }); // first releases
  };
  assert.equal(await t.run(), "rebooted");
  assert.equal(
    t.queue.takes.length,
    1,
    "one lock attempt, when it was our turn",
  );
  assert.equal(t.queue.takes[0]!.evictHead, false);
  assert.deepEqual(t.queue.queue, []);
  assert.match(t.text(), /second in line, behind first/);
});

Deno.test("a free slot left untaken by a silent head is taken by the second after the hand-over time", async () => {
  const t = setup({ handoverMs: 10_000 }, {
    doc: { semaphore: 1, max: 1, holders: [] },
  });
  t.queue.queue = ["dead"];
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.clock.now().getTime() - T0.getTime(), 10_000);
  assert.equal(t.queue.takes.at(-1)?.evictHead, true);
  assert.deepEqual(t.queue.queue, []);
  assert.match(
    t.text(),
    /while dead, first in line, did not take it: taking it and removing dead from the queue/,
  );
});

Deno.test("a waiter further back never tries, even when slots are free", async () => {
  const t = setup({ safetyRecheckMs: 60_000 }, {
    doc: { semaphore: 2, max: 2, holders: [] },
  });
  t.queue.queue = ["a", "b"];
  let waits = 0;
  t.queue.onWait = () => {
    if (++waits === 3) {
      t.queue.queue = [];
      t.store.revision++;
    }
  };
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.queue.takes.length, 1);
});

Deno.test("decideTurn() lets the head take, the second after the hand-over, nobody else", () => {
  const base = { freeSince: undefined, now: 0, handoverMs: 10_000 };
  const wait = { action: "wait", freeSince: undefined, waitMs: undefined };
  assert.deepEqual(decideTurn({ ...base, place: "head", free: 0 }), wait);
  assert.deepEqual(decideTurn({ ...base, place: "head", free: 1 }), {
    action: "take",
    evictHead: false,
  });
  assert.deepEqual(decideTurn({ ...base, place: "behind", free: 3 }), wait);
  assert.deepEqual(decideTurn({ ...base, place: "out", free: 3 }), wait);
  assert.deepEqual(
    decideTurn({ ...base, place: "second", free: 1, now: 100 }),
    { action: "wait", freeSince: 100, waitMs: 10_000 },
  );
  assert.deepEqual(
    decideTurn({
      ...base,
      place: "second",
      free: 1,
      freeSince: 100,
      now: 5_100,
    }),
    { action: "wait", freeSince: 100, waitMs: 5_000 },
  );
  assert.deepEqual(
    decideTurn({
      ...base,
      place: "second",
      free: 1,
      freeSince: 100,
      now: 10_100,
    }),
    { action: "take", evictHead: true },
  );
});

Deno.test("losing the race for a slot means looking again, without backing off", async () => {
  const t = setup({}, { doc: { semaphore: 1, max: 1, holders: [] } });
  let first = true;
  const take = t.queue.take.bind(t.queue);
  t.queue.take = (options) => {
    if (first) {
      first = false;
      t.store.set({ semaphore: 0, max: 1, holders: ["fast"] });
      return Promise.reject(
        new ContentionError(
          "gave up on fake/semaphore after 1 conflicting writes",
        ),
      );
    }
    return take(options);
  };
  t.queue.onWait = () => t.store.set({ semaphore: 1, max: 1, holders: [] });
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.clock.sleeps, [], "no backoff");
});

Deno.test("backoffMs() doubles from 5 s to 5 min with jitter", () => {
  assert.equal(backoffMs(1, () => 0), 2_500);
  assert.equal(backoffMs(1, () => 0.999999), 5_000);
  assert.equal(backoffMs(2, () => 0.999999), 10_000);
  assert.equal(backoffMs(20, () => 0.999999), 300_000);
});

// ------------------------------------------------------------ safe reboots

const PRE = "LOCKSMITHD_PRE_REBOOT_CHECK";
const MAY = "/usr/local/bin/may-reboot";
const HEALTHY = "/usr/local/bin/healthy";
const REBOOT_HOST = "/usr/local/sbin/reboot-host";

/** What the semaphore and the queue say about this machine at each sleep. */
function watchSleeps(t: ReturnType<typeof setup>) {
  const seen: { queued: boolean; holding: boolean }[] = [];
  t.clock.onSleep = () =>
    seen.push({
      queued: t.queue.queue.includes(ME),
      holding: t.store.doc.holders.includes(ME),
    });
  return seen;
}

Deno.test("a vetoed machine is not queued and holds no slot; it asks again with backoff and logs the veto once", async () => {
  const t = setup({ preRebootCheck: parseCommand(PRE, MAY) });
  t.commands.answer(MAY, 1, 1, 0);
  const seen = watchSleeps(t);
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(seen, [
    { queued: false, holding: false },
    { queued: false, holding: false },
  ]);
  assert.deepEqual(t.clock.sleeps, [3_750, 7_500]);
  assert.equal(t.queue.takes.length, 1, "one lock, after the check said go");
  // Twice before locking (vetoed), once before locking and once before rebooting (go).
  assert.equal(t.commands.runsOf(MAY).length, 4);
  const vetoes = t.log.lines.filter((l) => l.includes("says not now"));
  assert.deepEqual(vetoes, [
    `info: pre-reboot check LOCKSMITHD_PRE_REBOOT_CHECK (${MAY}) says not now (before taking a slot): exited 1 after 7ms: output: exit 1; not queueing; asking again with backoff (5s doubling to 5m); the same answer is not logged again`,
  ]);
  assert.match(t.text(), /says go now \(before taking a slot\)/);
  assert.deepEqual(t.notifier.names, [
    "reboot-needed",
    "pre-reboot-check-vetoed",
    "slot-taken",
    "reboot-requested",
  ]);
  assert.deepEqual(t.notifier.events[1]!.details, {
    stage: "before-lock",
    command: PRE,
    failure: "exited 1 after 7ms: output: exit 1",
  });
  assert.deepEqual(t.metrics.commands, [
    "pre-reboot-check:failure",
    "pre-reboot-check:failure",
    "pre-reboot-check:success",
    "pre-reboot-check:success",
  ]);
  assert.deepEqual(t.commands.runs[0]!.env, {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    LOCKSMITH_MACHINE_ID: ME,
    LOCKSMITH_GROUP: "",
  });
});

Deno.test("a veto right before rebooting gives the slot back, and the machine queues again later", async () => {
  const t = setup({ preRebootCheck: parseCommand(PRE, MAY) });
  t.commands.answer(MAY, 0, 3, 0);
  const seen = watchSleeps(t);
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(seen, [{ queued: false, holding: false }]);
  assert.match(
    t.text(),
    /says not now \(right before rebooting\): exited 3 .*; giving the slot back and asking again/,
  );
  assert.match(
    t.text(),
    /released the slot held by .*: the pre-reboot check said not now/,
  );
  assert.equal(t.queue.takes.length, 2);
  assert.equal(t.rebooter.reboots.length, 1);
  assert.deepEqual(t.notifier.names, [
    "reboot-needed",
    "slot-taken",
    "pre-reboot-check-vetoed",
    "slot-released",
    "slot-taken",
    "reboot-requested",
  ]);
  assert.deepEqual(t.metrics.slotHeldHistory, [false, true, false, true]);
});

Deno.test("a veto gives back a slot kept from before a restart", async () => {
  const t = setup({ preRebootCheck: parseCommand(PRE, MAY) }, {
    doc: { semaphore: 0, max: 1, holders: [ME] },
  });
  recordTakenOn(t, "boot-2");
  t.commands.answer(MAY, 1, 0);
  const seen = watchSleeps(t);
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(seen, [{ queued: false, holding: false }]);
  assert.match(t.text(), /keeping the slot held by/);
  assert.match(t.text(), /giving the slot back and asking again/);
  assert.deepEqual(t.store.doc.holders, [ME]);
});

Deno.test("each new answer of the pre-reboot check is logged once", async () => {
  const t = setup({ preRebootCheck: parseCommand(PRE, MAY) });
  t.commands.answer(MAY, 1, 1, 2, 2, 2, 0);
  assert.equal(await t.run(), "rebooted");
  const vetoes = t.log.lines.filter((l) => l.includes("says not now"));
  assert.equal(vetoes.length, 2);
  assert.match(vetoes[0]!, /exited 1/);
  assert.match(vetoes[1]!, /exited 2/);
  assert.deepEqual(t.clock.sleeps, [3_750, 7_500, 15_000, 30_000, 60_000]);
  assert.equal(
    t.notifier.names.filter((n) => n === "pre-reboot-check-vetoed").length,
    2,
  );
});

Deno.test("the reboot command replaces logind and runs once when it succeeds", async () => {
  const t = setup({}, { rebootCommand: `${REBOOT_HOST} --drain` });
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.rebooter.reboots.length, 0, "logind is not asked");
  assert.deepEqual(t.commands.runsOf(REBOOT_HOST).map((r) => r.args), [[
    "--drain",
  ]]);
  assert.match(
    t.text(),
    /rebooting: running LOCKSMITHD_REBOOT_COMMAND \(\/usr\/local\/sbin\/reboot-host\) \(holding a slot\)\ninfo: LOCKSMITHD_REBOOT_COMMAND \(\/usr\/local\/sbin\/reboot-host\) exited 0 after 7ms, no output\ninfo: reboot requested/,
  );
  assert.deepEqual(t.metrics.commands, ["reboot-command:success"]);
});

Deno.test("a failing reboot command is retried like a refused reboot, with the same backoff", async () => {
  const t = setup({}, { rebootCommand: REBOOT_HOST });
  t.commands.answer(REBOOT_HOST, 1, 1, 0);
  assert.equal(await t.run(), "rebooted");
  assert.equal(t.commands.runsOf(REBOOT_HOST).length, 3);
  assert.deepEqual(t.clock.sleeps, [3_750, 7_500]);
  assert.match(
    t.text(),
    /warn: reboot request failed: LOCKSMITHD_REBOOT_COMMAND \(\/usr\/local\/sbin\/reboot-host\) exited 1 after 7ms: output: exit 1; retrying in 3s750ms/,
  );
  assert.deepEqual(t.metrics.commands, [
    "reboot-command:failure",
    "reboot-command:failure",
    "reboot-command:success",
  ]);
  assert.deepEqual(t.notifier.names, [
    "reboot-needed",
    "slot-taken",
    "reboot-requested",
    "reboot-failed",
    "reboot-requested",
    "reboot-requested",
  ]);
});

Deno.test("a reboot command failing past the retry limit gives the slot back", async () => {
  const t = setup({ rebootRetryLimitMs: 60_000 }, {
    rebootCommand: REBOOT_HOST,
  });
  t.commands.answer(REBOOT_HOST, 1, 1, 1, 1, 1, 1, 0);
  assert.equal(await t.run(), "rebooted");
  const log = t.text();
  assert.match(
    log,
    /the reboot request has failed for 1m56s250ms \(LOCKSMITHD_REBOOT_COMMAND/,
  );
  assert.match(
    log,
    /released the slot held by .*: the reboot request kept failing/,
  );
  assert.equal(log.match(/took a slot/g)?.length, 2);
  assert.equal(t.commands.runsOf(REBOOT_HOST).length, 7);
});

Deno.test("a reboot command failing until the window closed is not retried outside it", async () => {
  const window = parseRebootWindow("10:00", "1m", "UTC");
  const t = setup({ schedule: scheduleFromWindow(window) }, {
    rebootCommand: REBOOT_HOST,
  });
  t.commands.answer(REBOOT_HOST, 1, 1, 1, 1, 1, 0);
  assert.equal(await t.run(), "rebooted");
  for (const run of t.commands.runsOf(REBOOT_HOST)) {
    assert.equal(windowState(window, run.at).open, true, run.at.toISOString());
  }
  assert.equal(
    t.commands.runsOf(REBOOT_HOST).at(-1)!.at.toISOString().slice(0, 16),
    "2026-03-06T10:00",
  );
  assert.match(
    t.text(),
    /released the slot held by .*: the reboot window closed/,
  );
});

Deno.test("a window that closes while notifications are flushed before the reboot is not used late", async () => {
  const window = parseRebootWindow("10:00", "1m", "UTC");
  const t = setup({ schedule: scheduleFromWindow(window) });
  t.notifier.onFlush = () => {
    if (t.notifier.flushes === 1) t.clock.advance(61_000);
  };
  assert.equal(await t.run(), "rebooted");
  assert.equal(
    t.rebooter.reboots[0]!.toISOString(),
    "2026-03-06T10:00:00.000Z",
  );
  assert.match(
    t.text(),
    /released the slot held by .*: the reboot window closed before rebooting/,
  );
});

Deno.test("with a schedule of two windows, the daemon waits for the next one and reboots inside it", async () => {
  const schedule = parseSchedule("Thu 08:00 1h, Thu 11:00 1h", "UTC");
  const t = setup({ schedule });
  assert.equal(await t.run(), "rebooted");
  assert.equal(
    t.rebooter.reboots[0]!.toISOString(),
    "2026-03-05T11:00:00.000Z",
  );
  assert.match(
    t.text(),
    /waiting for the reboot schedule Thu 08:00 for 1h, Thu 11:00 for 1h \(UTC\): it opens at 2026-03-05 11:00 UTC \(2026-03-05T11:00:00\.000Z\)/,
  );
  assert.match(
    t.log.lines[0]!,
    /reboot schedule Thu 08:00 for 1h, Thu 11:00 for 1h \(UTC\)/,
  );
  assert.equal(t.metrics.windowOpen, true);
});

Deno.test("a schedule that closes while waiting for a slot is left, and the slot is taken only inside a later window", async () => {
  const schedule = parseSchedule("10:00 30m, 10:40 10m", "UTC");
  const t = setup({ schedule, safetyRecheckMs: 10 * 60_000 }, {
    doc: { semaphore: 0, max: 1, holders: ["other"] },
  });
  const closedAt: boolean[] = [];
  t.queue.onWait = () => {
    closedAt.push(windowState(schedule, t.clock.now()).open);
    // The slot frees only after both windows of the day have closed.
    if (t.clock.now().getTime() >= Date.parse("2026-03-05T11:00:00Z")) {
      t.store.set({ semaphore: 1, max: 1, holders: [] });
    }
  };
  assert.equal(await t.run(), "rebooted");
  const at = t.rebooter.reboots[0]!;
  assert.equal(at.toISOString(), "2026-03-06T10:00:00.000Z");
  assert.ok(closedAt.every((open) => open), "waits happen inside windows");
  assert.equal(
    t.text().match(/window closed before a slot was free/g)?.length,
    2,
  );
});

Deno.test("after boot the slot is kept while the health check fails, an error is logged after the timeout, and a later pass releases it", async () => {
  const t = setup({
    healthCheck: parseCommand("LOCKSMITHD_HEALTH_CHECK", HEALTHY),
    healthCheckIntervalMs: 10_000,
    healthCheckTimeoutMs: 30_000,
  }, { needed: false, doc: { semaphore: 0, max: 1, holders: [ME] } });
  recordTakenOn(t, "boot-1");
  t.commands.answer(HEALTHY, 1, 1, 1, 1, 1, 1, 0);
  const seen = watchSleeps(t);
  const running = t.run();
  await tick();
  assert.deepEqual(t.store.doc.holders, [], "released once healthy");
  assert.ok(seen.length === 6 && seen.every((s) => s.holding), "held before");
  assert.deepEqual(t.clock.sleeps, [
    10_000,
    10_000,
    10_000,
    10_000,
    10_000,
    10_000,
  ]);
  const lines = t.log.lines;
  const error = lines.findIndex((l) => l.startsWith("error: "));
  assert.match(
    lines[error]!,
    /^error: health check LOCKSMITHD_HEALTH_CHECK \(\/usr\/local\/bin\/healthy\) still fails after 30s and 4 attempt\(s\), giving up: keeping the slot so that the rollout stops; last failure: exited 1 after 7ms: output: exit 1$/,
  );
  assert.equal(
    lines.filter((l) => l.includes("still fails (attempt")).length,
    1,
    "a repeated failure after the timeout is logged once",
  );
  assert.match(
    lines.at(-1)!,
    /released the slot held by .*: the reboot has happened \(the boot id changed\); the health check passed$/,
  );
  assert.deepEqual(t.notifier.names, [
    "health-check-failed",
    "health-check-passed",
    "slot-released",
  ]);
  assert.deepEqual(t.notifier.events[0]!.details, {
    attempts: 4,
    elapsedMs: 30_000,
    lastFailure: "exited 1 after 7ms: output: exit 1",
  });
  assert.equal(t.commands.runsOf(HEALTHY).length, 7);
  t.abort.abort();
  assert.equal(await running, "stopped");
});

Deno.test("a healthy machine releases its slot after the first health check", async () => {
  const t = setup({
    healthCheck: parseCommand("LOCKSMITHD_HEALTH_CHECK", HEALTHY),
  }, { needed: false, doc: { semaphore: 0, max: 1, holders: [ME] } });
  const running = t.run();
  await tick();
  assert.deepEqual(t.store.doc.holders, []);
  assert.equal(t.commands.runsOf(HEALTHY).length, 1);
  assert.deepEqual(t.clock.sleeps, []);
  assert.deepEqual(t.notifier.names, ["health-check-passed", "slot-released"]);
  assert.deepEqual(t.metrics.commands, ["health-check:success"]);
  t.abort.abort();
  await running;
});

Deno.test("a reboot needed while the health check holds the last slot waits for it before queueing", async () => {
  const t = setup({
    healthCheck: parseCommand("LOCKSMITHD_HEALTH_CHECK", HEALTHY),
    healthCheckIntervalMs: 10_000,
    healthCheckTimeoutMs: 30_000,
  }, { needed: false, doc: { semaphore: 0, max: 1, holders: [ME] } });
  t.commands.answer(HEALTHY, ...Array<number>(12).fill(1), 0);
  t.clock.onSleep = () => {
    if (t.clock.sleeps.length === 5) t.need.trigger();
  };
  assert.equal(await t.run(), "rebooted");
  const log = t.text();
  assert.match(
    log,
    /waiting for the health check to pass before queueing for this reboot/,
  );
  const released = log.indexOf("the health check passed");
  assert.ok(released > 0 && released < log.indexOf("took a slot"));
  assert.equal(t.queue.takes.length, 1);
});

Deno.test("logged-in users are warned through logind before the login delay, with the reboot time", async () => {
  const t = setup({ loginDelayMs: 300_000 });
  t.rebooter.sessions = 2;
  assert.equal(await t.run(), "rebooted");
  const at = new Date(T0.getTime() + 300_000);
  assert.deepEqual(t.warning.warnings, [{
    message: wallMessage(300_000, at, "UTC"),
    at,
  }]);
  assert.equal(t.warning.cancels, 0, "a reboot that follows is not withdrawn");
  assert.equal(t.rebooter.reboots[0]!.getTime(), at.getTime());
  assert.match(
    t.text(),
    /warned logged-in users through logind's wall messages/,
  );
});

Deno.test("a logind without the wall calls is logged and the reboot goes on after the delay", async () => {
  const t = setup({ loginDelayMs: 300_000 });
  t.rebooter.sessions = 1;
  t.warning.missing = true;
  assert.equal(await t.run(), "rebooted");
  assert.match(
    t.text(),
    /warn: cannot warn logged-in users through logind \(org\.freedesktop\.DBus\.Error\.UnknownMethod\); rebooting after the delay without a warning/,
  );
  assert.equal(t.rebooter.reboots[0]!.getTime(), T0.getTime() + 300_000);
});

Deno.test("stopping during the login delay withdraws the warning", async () => {
  const t = setup({ loginDelayMs: 300_000 });
  t.rebooter.sessions = 1;
  t.clock.onSleep = () => t.abort.abort();
  assert.equal(await t.run(), "stopped");
  assert.equal(t.warning.warnings.length, 1);
  assert.equal(t.warning.cancels, 1);
  assert.equal(t.rebooter.reboots.length, 0);
});

Deno.test("the loop reports its state and counts to the metrics and its events to the notifier", async () => {
  const t = setup({}, { doc: { semaphore: 0, max: 1, holders: ["other"] } });
  const waiting: unknown[] = [];
  let waits = 0;
  t.queue.onWait = () => {
    waiting.push({
      needed: t.metrics.rebootNeeded,
      since: t.metrics.waitingSince?.toISOString(),
      place: t.metrics.queuePosition,
      held: t.metrics.slotHeld,
    });
    if (++waits === 2) t.store.set({ semaphore: 1, max: 1, holders: [] });
  };
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(waiting[0], {
    needed: true,
    since: T0.toISOString(),
    place: 0,
    held: false,
  });
  assert.equal(t.metrics.slotHeld, true);
  assert.equal(t.metrics.queuePosition, null);
  assert.equal(t.metrics.waitingSince, null);
  assert.ok(t.metrics.lastRebootRequest);
  assert.deepEqual(t.metrics.lockAttempts, ["taken"]);
  for (const op of ["startup-read", "join", "take"]) {
    assert.ok(t.metrics.etcdOps.includes(op), op);
  }
  assert.deepEqual(t.notifier.names, [
    "reboot-needed",
    "slot-taken",
    "reboot-requested",
  ]);
  assert.deepEqual(t.notifier.events[1]!.details, { available: 0, max: 1 });
  assert.equal(t.notifier.flushes, 1, "flushed before the reboot request");
});

Deno.test("planAfterVeto() gives back a slot held, backs off by the vetoes in a row, and reports new outcomes only", () => {
  const base = { vetoes: 1, outcome: "exited 1", random: () => 0.5 };
  assert.deepEqual(
    planAfterVeto({ ...base, holding: true, lastReported: undefined }),
    { release: true, delayMs: 3_750, report: true },
  );
  assert.deepEqual(
    planAfterVeto({
      ...base,
      holding: false,
      vetoes: 3,
      lastReported: "exited 1",
    }),
    { release: false, delayMs: 15_000, report: false },
  );
  assert.equal(
    planAfterVeto({ ...base, holding: false, lastReported: "exited 2" })
      .report,
    true,
  );
});

Deno.test("releaseWaitsForHealth() gates every release at start when a health check is set", () => {
  const release = { action: "release", reason: "x" } as const;
  assert.equal(releaseWaitsForHealth(release, true), true);
  assert.equal(releaseWaitsForHealth(release, false), false);
  assert.equal(
    releaseWaitsForHealth({ action: "keep", reason: "x" }, true),
    false,
  );
  assert.equal(releaseWaitsForHealth({ action: "none" }, true), false);
});

Deno.test("wallMessage() says when, in the schedule's zone", () => {
  assert.equal(
    wallMessage(300_000, new Date("2026-03-05T10:05:00Z"), "Europe/Berlin"),
    "locksmithd: this machine reboots in 5m (Thu 2026-03-05 11:05+01:00 Europe/Berlin) to finish an update; save your work and log out.",
  );
});

Deno.test("lockAttemptResult() counts refusals, conflicts and errors", () => {
  assert.equal(
    lockAttemptResult(new SemaphoreRefusedError("holder_exists", "x")),
    "held",
  );
  assert.equal(
    lockAttemptResult(new SemaphoreRefusedError("semaphore_full", "x")),
    "full",
  );
  assert.equal(lockAttemptResult(new ContentionError("x")), "conflict");
  assert.equal(lockAttemptResult(ETCD_DOWN), "error");
});

Deno.test("windowState() of a schedule merges adjacent windows and finds the next opening", () => {
  const schedule = parseSchedule("Thu 09:00 1h30m, Thu 10:30 1h", "UTC");
  assert.deepEqual(windowState(schedule, T0), {
    open: true,
    closesAt: new Date("2026-03-05T11:30:00Z"),
  });
  assert.deepEqual(
    windowState(schedule, new Date("2026-03-05T12:00:00Z")),
    { open: false, opensAt: new Date("2026-03-12T09:00:00Z") },
  );
  assert.deepEqual(windowState(undefined, T0), {
    open: true,
    closesAt: undefined,
  });
});
