/**
 * locksmithd's loop with the `fleetlock` strategy, with a fake lock server
 * and a virtual clock (pure unit tests): steady-state at start, pre-reboot
 * before rebooting, waiting while full, never a reboot without a 2xx,
 * windows, vetoes, the health gate.
 */

import assert from "node:assert/strict";
import { type DaemonSettings, runDaemonLoop } from "../lib/daemon/loop/loop.ts";
import { backoffMs } from "../lib/common/backoff.ts";
import {
  FULL_RETRY_MAX_MS,
  FULL_RETRY_MIN_MS,
  fullRetryMs,
} from "../lib/daemon/loop/server_slot.ts";
import { PROBE_MAX_MS } from "../lib/daemon/loop/run.ts";
import { parseRebootWindow } from "../lib/schedule/reboot_window.ts";
import { scheduleFromWindow } from "../lib/schedule/schedule.ts";
import { parseCommand } from "../lib/host/command.ts";
import type {
  LockServer,
  LockServerAnswer,
  LockServerRefusal,
} from "../lib/semaphore/lock_server.ts";
import {
  FakeClock,
  FakeCommands,
  FakeNeed,
  FakeRebooter,
  MemoryLog,
  RecordingMetrics,
  RecordingNotifier,
  TimerClock,
} from "./fakes.ts";

const ME = "0123456789abcdef0123456789abcdef";
const T0 = new Date("2026-03-05T10:00:00Z"); // a Thursday
const URL_BASE = "http://fleetlock.test:8080/";
const CHECK = "/usr/local/bin/may-reboot";
const HEALTHY = "/usr/local/bin/healthy";

function refusal(
  status: number | undefined,
  kind: string,
  extra: Partial<LockServerRefusal> = {},
): LockServerRefusal {
  return {
    ok: false,
    status,
    kind,
    full: kind === "failed_lock_semaphore_full",
    uncertain: status === undefined || status >= 500,
    answered: status !== undefined,
    message: `FleetLock server ${URL_BASE}v1/pre-reboot answered ${
      status ?? "nothing"
    } ${kind}`,
    ...extra,
  };
}

const FULL = refusal(409, "failed_lock_semaphore_full");
const DOWN = refusal(undefined, "unreachable");
const UNAVAILABLE = refusal(503, "etcd_unavailable");

/** A FleetLock server in memory: a semaphore of `max` slots, plus answers a test forces. */
class FakeLockServer implements LockServer {
  readonly name = `FleetLock server ${URL_BASE} (group default, id ${ME})`;
  readonly calls: { op: "lock" | "unlock"; at: string }[] = [];
  /** When each probe was sent. */
  readonly probes: string[] = [];
  readonly holders = new Set<string>();
  max = 1;
  /** Answer every call with this while set. */
  down: LockServerAnswer | undefined;
  /** Answers for the next calls, in order, before the semaphore is asked. */
  readonly next: LockServerAnswer[] = [];
  /** Whether grants say what they did (locksmith's server) or only succeed (others). */
  detailed = true;
  /** Called on each call with its number among calls of `op` (from 1); may answer instead. */
  onCall: (
    op: "lock" | "unlock",
    n: number,
  ) => LockServerAnswer | undefined = () => undefined;
  constructor(readonly clock: FakeClock) {}
  #answer(op: "lock" | "unlock"): LockServerAnswer {
    this.calls.push({ op, at: this.clock.now().toISOString() });
    const n = this.calls.filter((c) => c.op === op).length;
    const forced = this.onCall(op, n) ?? this.next.shift() ?? this.down;
    if (forced) return forced;
    let result: "locked" | "already_held" | "released" | "not_held";
    if (op === "lock") {
      if (this.holders.has(ME)) result = "already_held";
      else if (this.holders.size >= this.max) return FULL;
      else result = "locked";
      this.holders.add(ME);
    } else {
      result = this.holders.delete(ME) ? "released" : "not_held";
    }
    return this.detailed
      ? {
        ok: true,
        status: 200,
        result,
        held: this.holders.size,
        max: this.max,
      }
      : { ok: true, status: 200 };
  }
  lock(signal: AbortSignal): Promise<LockServerAnswer> {
    signal.throwIfAborted();
    return Promise.resolve(this.#answer("lock"));
  }
  unlock(signal: AbortSignal): Promise<LockServerAnswer> {
    signal.throwIfAborted();
    return Promise.resolve(this.#answer("unlock"));
  }
  /** Answered unless the server is down without answering. */
  probe(signal: AbortSignal): Promise<boolean> {
    signal.throwIfAborted();
    this.probes.push(this.clock.now().toISOString());
    const down = this.down;
    return Promise.resolve(down === undefined || down.ok || down.answered);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  get ops(): string[] {
    return this.calls.map((c) => c.op);
  }
}

function setup(
  settings: Partial<DaemonSettings> = {},
  options: { needed?: boolean; noServer?: boolean; timers?: boolean } = {},
) {
  const clock = options.timers ? new TimerClock(T0) : new FakeClock(T0);
  const server = new FakeLockServer(clock);
  const rebooter = new FakeRebooter(clock);
  const need = new FakeNeed(options.needed ?? true);
  const log = new MemoryLog();
  const commands = new FakeCommands(clock);
  const notifier = new RecordingNotifier();
  const metrics = new RecordingMetrics();
  const abort = new AbortController();
  const run = () =>
    runDaemonLoop({
      strategy: "fleetlock",
      machineId: ME,
      loginDelayMs: 0,
      ...settings,
    }, {
      store: undefined,
      queue: undefined,
      lockServer: options.noServer ? undefined : server,
      rebooter,
      need,
      clock,
      log,
      random: () => 0.5,
      runCommand: commands.run,
      notifier,
      metrics,
    }, abort.signal);
  return {
    clock,
    server,
    rebooter,
    need,
    log,
    commands,
    notifier,
    metrics,
    abort,
    run,
    text: () => log.lines.join("\n"),
  };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

Deno.test("fleetlock sends steady-state at start, then pre-reboot, and reboots after its 2xx", async () => {
  const t = setup();
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.server.ops, ["unlock", "lock"]);
  assert.equal(t.rebooter.reboots.length, 1);
  assert.match(
    t.log.lines[0]!,
    /^info: starting: strategy fleetlock, machine 0123\w+, FleetLock server http:\/\/fleetlock\.test:8080\/ \(group default, id 0123\w+\), no reboot window, reboot-needed source fake$/,
  );
  const text = t.text();
  assert.match(
    text,
    /this machine \(0123\w+\) holds no slot \(the FleetLock server says so\): nothing to release/,
  );
  assert.match(text, /took a slot: pre-reboot answered 200 \(1 of 1 held\)/);
  assert.deepEqual(t.notifier.names, [
    "reboot-needed",
    "slot-taken",
    "reboot-requested",
  ]);
  assert.deepEqual(t.notifier.events[1]!.details, { available: 0, max: 1 });
  assert.deepEqual(t.metrics.lockAttempts, ["taken"]);
  assert.equal(t.metrics.slotHeld, true);
});

Deno.test("a full server is asked again from 5 s doubling to 1 min with jitter, logged once, until it grants", async () => {
  const t = setup();
  t.server.holders.add("other");
  t.clock.onSleep = () => {
    if (t.clock.sleeps.length === 7) t.server.holders.delete("other");
  };
  assert.equal(await t.run(), "rebooted");
  // random 0.5: three quarters of 5 s, 10 s, 20 s, 40 s, then of the 1 min cap.
  assert.deepEqual(t.clock.sleeps, [
    3_750,
    7_500,
    15_000,
    30_000,
    45_000,
    45_000,
    45_000,
  ]);
  assert.deepEqual(t.server.ops, ["unlock", ...Array(8).fill("lock")]);
  assert.equal(t.rebooter.reboots.length, 1);
  assert.equal(
    t.rebooter.reboots[0]!.getTime(),
    T0.getTime() + 191_250,
    "rebooted right after the grant",
  );
  const lines = t.log.lines.filter((l) => l.includes("no slot free"));
  assert.equal(lines.length, 1, "the wait is logged once");
  assert.match(
    lines[0]!,
    /^info: no slot free for this machine \(FleetLock server http:\/\/fleetlock\.test:8080\/v1\/pre-reboot answered 409 failed_lock_semaphore_full\); asking again with backoff \(5s doubling to 1m, with jitter\); the same answer is not logged again$/,
  );
  assert.deepEqual(t.metrics.lockAttempts, [...Array(7).fill("full"), "taken"]);
});

Deno.test("fullRetryMs() doubles from 5 s to 1 min with jitter in [50 %, 100 %]", () => {
  assert.equal(fullRetryMs(1, () => 0), FULL_RETRY_MIN_MS / 2);
  assert.equal(fullRetryMs(1, () => 0.999999), FULL_RETRY_MIN_MS);
  assert.equal(fullRetryMs(3, () => 0.999999), 20_000);
  assert.equal(fullRetryMs(5, () => 0.999999), FULL_RETRY_MAX_MS);
  assert.equal(fullRetryMs(50, () => 0), FULL_RETRY_MAX_MS / 2);
  for (let attempt = 1; attempt < 12; attempt++) {
    const ms = fullRetryMs(attempt, Math.random);
    assert.ok(ms >= FULL_RETRY_MIN_MS / 2 && ms <= FULL_RETRY_MAX_MS, `${ms}`);
  }
});

for (
  const [what, answer] of [
    ["is down", DOWN],
    ["does not answer in time", refusal(undefined, "timeout")],
    ["answers 500", refusal(500, "internal_error")],
    ["answers 503", refusal(503, "etcd_unavailable")],
    ["answers 401", refusal(401, "unauthorized")],
    ["answers 404", refusal(404, "not_found")],
  ] as const
) {
  Deno.test(`never reboots without a 2xx: a server that ${what} is asked again with the daemon's backoff`, async () => {
    const t = setup();
    t.server.next.push({ ok: true, status: 200, result: "not_held" });
    t.server.down = answer;
    t.clock.onSleep = () => {
      if (t.clock.sleeps.length === 9) t.abort.abort();
    };
    assert.equal(await t.run(), "stopped");
    assert.equal(t.rebooter.reboots.length, 0);
    assert.deepEqual(
      t.clock.sleeps,
      Array.from({ length: 9 }, (_, i) => backoffMs(i + 1, () => 0.5)),
    );
    assert.equal(
      t.log.lines.filter((l) =>
        l.startsWith(`warn: cannot take a slot: ${answer.message}; retrying in`)
      ).length,
      9,
    );
    assert.deepEqual(t.metrics.lockAttempts, Array(9).fill("error"));
    assert.equal(t.metrics.slotHeld, false);
  });
}

Deno.test("a server that comes back grants the slot and the machine reboots", async () => {
  const t = setup();
  t.server.down = DOWN;
  t.clock.onSleep = () => {
    if (t.clock.sleeps.length === 3) t.server.down = undefined;
  };
  assert.equal(await t.run(), "rebooted");
  assert.match(
    t.text(),
    /cannot release the slot: FleetLock server .*unreachable; retrying in 3s/,
  );
  assert.deepEqual(t.server.ops, [
    "unlock",
    "unlock",
    "unlock",
    "unlock",
    "lock",
  ]);
  assert.match(
    t.text(),
    /released the slot held by 0123\w+: locksmithd started with a reboot pending \(steady-state at every start; pre-reboot follows\) \(it is free now: an earlier attempt whose answer was lost applied, or someone released it meanwhile\)/,
  );
});

Deno.test("a window that closes while the server answers full is left without a reboot; the next window asks again", async () => {
  const window = parseRebootWindow("Thu 10:00", "1m", "UTC");
  const t = setup({ schedule: scheduleFromWindow(window) });
  t.server.holders.add("other");
  t.clock.onSleep = (now) => {
    if (now.getTime() > T0.getTime() + 3_600_000) t.server.holders.clear();
  };
  assert.equal(await t.run(), "rebooted");
  const text = t.text();
  assert.match(
    text,
    /the reboot window closed before the FleetLock server granted a slot; asking again in the next window/,
  );
  const reboot = t.rebooter.reboots[0]!.toISOString();
  assert.equal(reboot, "2026-03-12T10:00:00.000Z", "inside the next window");
  const late = t.server.calls.filter((c) =>
    c.op === "lock" && c.at > "2026-03-05T10:01:00.000Z" &&
    c.at < "2026-03-12T10:00:00.000Z"
  );
  assert.deepEqual(late, [], "no pre-reboot outside the window");
  assert.equal(
    t.server.ops.filter((op) => op === "unlock").length,
    1,
    "only the steady-state at start: no answer was lost",
  );
});

Deno.test("a window that closes after a pre-reboot whose answer was lost sends steady-state", async () => {
  const window = parseRebootWindow("Thu 10:00", "1m", "UTC");
  const t = setup({ schedule: scheduleFromWindow(window) });
  t.server.onCall = (op, n) => {
    // The first pre-reboot applies but its answer is lost; then the server is down.
    if (op === "lock" && n === 1) {
      t.server.holders.add(ME);
      t.server.down = DOWN;
      return refusal(undefined, "timeout");
    }
    return undefined;
  };
  t.clock.onSleep = (now) => {
    if (now.getTime() >= T0.getTime() + 3_600_000) t.server.down = undefined;
  };
  assert.equal(await t.run(), "rebooted");
  const text = t.text();
  assert.match(
    text,
    /the reboot window closed before the FleetLock server granted a slot; asking again in the next window/,
  );
  assert.match(
    text,
    /released the slot held by 0123\w+: the reboot window closed after a pre-reboot call whose answer was lost\n/,
  );
  const unlocks = t.server.calls.filter((c) => c.op === "unlock");
  assert.equal(unlocks.length > 2, true, "retried while the server was down");
  assert.ok(unlocks.at(-1)!.at >= "2026-03-05T11:00:00.000Z");
  assert.equal(
    t.rebooter.reboots[0]!.toISOString(),
    "2026-03-12T10:00:00.000Z",
  );
});

Deno.test("a veto right before rebooting gives the slot back with steady-state, then asks again", async () => {
  const t = setup({
    preRebootCheck: parseCommand("LOCKSMITHD_PRE_REBOOT_CHECK", CHECK),
  });
  t.commands.answer(CHECK, 0, 1, 0, 0);
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.server.ops, ["unlock", "lock", "unlock", "lock"]);
  assert.match(
    t.text(),
    /released the slot held by 0123\w+: the pre-reboot check said not now/,
  );
  assert.equal(t.rebooter.reboots.length, 1);
});

Deno.test("a reboot refused past the retry limit gives the slot back with steady-state", async () => {
  const t = setup({ rebootRetryLimitMs: 60_000 });
  t.rebooter.failures = 1_000;
  t.clock.onSleep = () => {
    if (t.server.ops.filter((o) => o === "unlock").length === 2) {
      t.abort.abort();
    }
  };
  assert.equal(await t.run(), "stopped");
  assert.deepEqual(t.server.ops.slice(0, 3), ["unlock", "lock", "unlock"]);
  assert.match(
    t.text(),
    /released the slot held by 0123\w+: the reboot request kept failing/,
  );
});

Deno.test("steady-state at start waits for the health check, is retried until it succeeds, and comes before pre-reboot", async () => {
  const t = setup({
    healthCheck: parseCommand("LOCKSMITHD_HEALTH_CHECK", HEALTHY),
    healthCheckIntervalMs: 10_000,
  }, { needed: false });
  t.server.holders.add(ME); // taken before the reboot
  t.commands.answer(HEALTHY, 1, 0);
  t.server.next.push(DOWN, DOWN);
  const running = t.run();
  await tick();
  assert.equal(t.commands.runsOf(HEALTHY).length, 2);
  assert.equal(
    t.commands.runsOf(HEALTHY)[1]!.at.getTime(),
    T0.getTime() + 10_000,
  );
  assert.deepEqual(t.server.ops, ["unlock", "unlock", "unlock"]);
  assert.equal(t.server.calls[0]!.at, "2026-03-05T10:00:10.000Z");
  assert.equal(t.server.holders.size, 0);
  assert.match(
    t.log.lines.find((l) => l.includes("released the slot"))!,
    /^info: released the slot held by 0123\w+: the reboot has happened, or none was needed \(steady-state at every start\); the health check passed$/,
  );
  assert.deepEqual(t.notifier.names, [
    "health-check-passed",
    "slot-released",
    "back-up",
  ]);
  t.need.trigger();
  assert.equal(await running, "rebooted");
  assert.deepEqual(t.server.ops.at(-1), "lock");
});

Deno.test("with a reboot pending at start, steady-state still comes first, then pre-reboot", async () => {
  const t = setup();
  t.server.holders.add(ME); // locksmithd restarted while holding
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.server.ops, ["unlock", "lock"]);
  assert.match(
    t.text(),
    /released the slot held by 0123\w+: locksmithd started with a reboot pending \(steady-state at every start; pre-reboot follows\)/,
  );
});

Deno.test("a server that does not say what it did is trusted on its 2xx alone", async () => {
  const t = setup();
  t.server.detailed = false;
  assert.equal(await t.run(), "rebooted");
  const text = t.text();
  assert.match(
    text,
    /released the slot held by 0123\w+: .* \(steady-state answered 2xx: the server does not say whether it held one\)/,
  );
  assert.match(
    text,
    /took a slot: pre-reboot answered 200 \(the server does not say how many are held\)/,
  );
  assert.deepEqual(t.notifier.events[2]!, { event: "slot-taken", details: {} });
});

Deno.test("strategy fleetlock without a lock server is a wiring error, never a reboot without a slot", async () => {
  const t = setup({}, { noServer: true });
  await assert.rejects(t.run(), /strategy fleetlock needs a lock server/);
  assert.equal(t.rebooter.reboots.length, 0);
});

// ------------------------------------------- after the server answers again

/** Milliseconds after T0 of an ISO time of the fake server's records. */
const sinceT0 = (iso: string) => new Date(iso).getTime() - T0.getTime();

Deno.test("a refusal after no answer is the server back: the backoff starts again from 5 s, and refusals in a row still double it", async () => {
  const t = setup();
  t.server.onCall = (op, n) =>
    op === "lock" && n <= 6 ? (n <= 3 ? DOWN : UNAVAILABLE) : undefined;
  assert.equal(await t.run(), "rebooted");
  // random 0.5: three quarters of 5 s, 10 s, 20 s; again from 5 s.
  assert.deepEqual(t.clock.sleeps, [
    3_750,
    7_500,
    15_000,
    3_750,
    7_500,
    15_000,
  ]);
  assert.deepEqual(t.metrics.lockAttempts, [
    ...Array(6).fill("error"),
    "taken",
  ]);
});

Deno.test("a full answer after no answer starts the backoff of failures again; full answers keep their own pace", async () => {
  const t = setup();
  t.server.onCall = (op, n) =>
    op !== "lock" || n > 6 ? undefined : n <= 3 || n === 6 ? DOWN : FULL;
  assert.equal(await t.run(), "rebooted");
  assert.deepEqual(t.clock.sleeps, [
    3_750, // no answer
    7_500,
    15_000,
    3_750, // full: its own pace
    7_500,
    3_750, // no answer again: the server answered meanwhile
  ]);
});

Deno.test("steady-state after no answer and then a refusal starts its backoff again", async () => {
  const t = setup({}, { needed: false });
  const UNAUTHORIZED = refusal(401, "unauthorized");
  t.server.onCall = (op, n) =>
    op === "unlock" && n <= 5 ? (n <= 3 ? DOWN : UNAUTHORIZED) : undefined;
  const running = t.run();
  await tick();
  assert.deepEqual(t.server.ops, Array(6).fill("unlock"));
  assert.deepEqual(t.clock.sleeps, [3_750, 7_500, 15_000, 3_750, 7_500]);
  t.abort.abort();
  assert.equal(await running, "stopped");
});

Deno.test("while the server does not answer it is probed after 1 s, 2 s, then every 4 s (jittered), and the pre-reboot goes out as soon as a probe is answered", async () => {
  const t = setup({}, { timers: true });
  const clock = t.clock as TimerClock;
  t.server.onCall = (op, n) => {
    if (op === "lock" && n === 1) t.server.down = DOWN; // after steady-state
    return undefined;
  };
  const running = t.run();
  const locks = () => t.server.calls.filter((c) => c.op === "lock");
  await clock.run(() => locks().length === 5, 600_000);
  // The fifth failure in a row: a backoff of 60 s (three quarters of 80 s).
  const failedAt = sinceT0(locks()[4]!.at);
  assert.match(
    t.log.lines.at(-1)!,
    /cannot take a slot: .* answered nothing unreachable; retrying in 1m \(or once the FleetLock server answers again\)$/,
  );
  await clock.run(() =>
    sinceT0(clock.now().toISOString()) >= failedAt + 20_000
  );
  const probesBefore = t.server.probes.map(sinceT0).filter((at) =>
    at > failedAt
  );
  // Three quarters of 1 s, 2 s, then of the 4 s cap, from the failure on.
  assert.deepEqual(
    probesBefore.map((at, i) =>
      at - (i === 0 ? failedAt : probesBefore[i - 1]!)
    ),
    [750, 1_500, 3_000, 3_000, 3_000, 3_000, 3_000, 3_000],
  );
  const backAt = sinceT0(clock.now().toISOString());
  t.server.down = undefined; // the server answers again
  await clock.run(() => t.rebooter.reboots.length === 1);
  assert.equal(await running, "rebooted");
  const tookAt = sinceT0(locks().at(-1)!.at);
  assert.equal(locks().length, 6, "one pre-reboot after the server is back");
  assert.ok(
    tookAt - backAt <= PROBE_MAX_MS,
    `the pre-reboot went out ${tookAt - backAt} ms after the server was back`,
  );
  assert.ok(tookAt < failedAt + 60_000, "before the backoff ran out");
  assert.equal(
    t.server.probes.map(sinceT0).filter((at) => at > tookAt).length,
    0,
    "no probe once the server answered",
  );
});

Deno.test("a server that answers full is asked again at the full pace and never probed", async () => {
  const t = setup({}, { timers: true });
  const clock = t.clock as TimerClock;
  t.server.holders.add("other");
  const locks = () => t.server.calls.filter((c) => c.op === "lock");
  const running = t.run();
  await clock.run(() => locks().length === 6);
  const at = locks().map((c) => sinceT0(c.at));
  assert.deepEqual(
    at.slice(1).map((x, i) => x - at[i]!),
    [3_750, 7_500, 15_000, 30_000, 45_000],
  );
  assert.deepEqual(t.server.probes, []);
  t.abort.abort();
  assert.equal(await running, "stopped");
});
