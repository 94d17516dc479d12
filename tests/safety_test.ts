/**
 * locksmithd's safe reboots end to end: real daemons as subprocesses with
 * the `daemon` permission set of deno.json (plus `--allow-run` for the test
 * programs only), each on a private system bus (python-dbusmock's logind),
 * against a real etcd; notifications to a real HTTP server, metrics
 * scraped over HTTP.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { DAEMON_METRIC_FAMILIES, scrape } from "./harness/daemon_metrics.ts";
import {
  type Machine,
  type MachineOptions,
  startMachine,
} from "./harness/machine.ts";
import { freePorts } from "./harness/ports.ts";
import { startBlackHole } from "./harness/black_hole.ts";
import { until } from "./harness/until.ts";
import { semaphoreKey, waitersPrefix } from "../lib/semaphore/keys.ts";
import { VERSION } from "../lib/common/version.ts";

const TEST = "/usr/bin/test";

let etcd: EtcdCluster;
let client: Etcd3;
let dir: string;
let counter = 0;

const doc = (semaphore: number, max: number, holders: string[]) =>
  JSON.stringify({ semaphore, max, holders });

/**
 * A check program that runs `/usr/bin/test` with its arguments and records
 * each run, so that a test waiting out checks can count them.
 */
async function countedTest(
  name: string,
): Promise<{ program: string; runs: () => Promise<number> }> {
  const program = `${dir}/${name}.sh`;
  const log = `${dir}/${name}.runs`;
  await Deno.writeTextFile(
    program,
    `#!/bin/sh\necho run >> ${log}\nexec ${TEST} "$@"\n`,
  );
  await Deno.chmod(program, 0o755);
  const runs = async () =>
    (await Deno.readTextFile(log).catch(() => "")).split("\n").length - 1;
  return { program, runs };
}

/** A machine in `group` (a fresh one when not given). */
async function machine(
  config: Record<string, string>,
  options: Partial<MachineOptions> & { group?: string } = {},
): Promise<Machine & { key: string; group: string }> {
  const group = options.group ?? `safety-${++counter}`;
  const m = await startMachine({
    id: `s${++counter}`,
    endpoint: etcd.endpoint,
    config: { LOCKSMITHD_GROUP: group, ...config },
    ...options,
  });
  return Object.assign(m, { key: semaphoreKey(group), group });
}

/** The waiters queued in front of the semaphore at `key`. */
async function waiters(key: string): Promise<string[]> {
  return await client.getAll().prefix(waitersPrefix(key)).keys();
}

/** Holders of the semaphore at `key` (none when it was never written). */
async function holders(key: string): Promise<string[]> {
  const text = await client.get(key).string();
  return text === null ? [] : JSON.parse(text).holders ?? [];
}

/** A real HTTP server that records JSON POSTs; the first `failFirst` get a 503. */
function receiver(failFirst = 0) {
  const [port] = freePorts(1) as [number];
  const received: {
    body: Record<string, unknown>;
    url: string;
    headers: Headers;
  }[] = [];
  let refused = 0;
  const waiting = new Set<() => void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port, onListen: () => {} },
    async (request) => {
      const body = await request.json();
      if (refused < failFirst) {
        refused++;
        return new Response("busy", { status: 503 });
      }
      received.push({ body, url: request.url, headers: request.headers });
      for (const wake of waiting) wake();
      return new Response(null, { status: 204 });
    },
  );
  return {
    url: `http://127.0.0.1:${port}/hook?token=secret`,
    received,
    get refused() {
      return refused;
    },
    /** Resolves once `event` arrived (or already had). */
    async until(event: string, timeoutMs = 30_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!received.some((r) => r.body.event === event)) {
        if (Date.now() > deadline) {
          throw new Error(
            `no ${event} notification within ${timeoutMs} ms; got ${
              received.map((r) => r.body.event).join(", ")
            }`,
          );
        }
        await new Promise<void>((resolve) => {
          const wake = () => {
            waiting.delete(wake);
            resolve();
          };
          waiting.add(wake);
          setTimeout(wake, 200);
        });
      }
    },
    events: () => received.map((r) => r.body.event),
    close: () => server.shutdown(),
  };
}

Deno.test("locksmithd's safe reboots against a real etcd, private buses and a real HTTP receiver", async (t) => {
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoints });
  dir = await Deno.makeTempDir({ prefix: "locksmith-safety-" });
  const machines: Machine[] = [];
  const track = <M extends Machine>(m: M): M => {
    machines.push(m);
    return m;
  };
  try {
    await t.step(
      "a command whose program --allow-run does not name stops it at start with exit 2, naming the flag for every command",
      async () => {
        const m = track(
          await machine({
            LOCKSMITHD_HEALTH_CHECK: `${TEST} -e ${dir}/healthy`,
            LOCKSMITHD_REBOOT_COMMAND: "/bin/true",
          }),
        );
        m.startDaemon();
        assert.equal(await m.exited(), 2);
        assert.deepEqual(m.lines, [
          "locksmithd: LOCKSMITHD_REBOOT_COMMAND: not allowed to run /bin/true; start locksmithd with --allow-run=/bin/true,/usr/bin/test (one list naming every command's program)",
        ]);
      },
    );

    await t.step(
      "a failing health check holds the rollout: the rebooted machine keeps its slot and the next one does not start until it passes",
      async () => {
        const flag = `${dir}/a-healthy`;
        const check = await countedTest("a-health");
        const hook = receiver();
        try {
          const group = `rollout-${++counter}`;
          const a = track(
            await machine({
              LOCKSMITHD_HEALTH_CHECK: `${check.program} -e ${flag}`,
              LOCKSMITHD_HEALTH_CHECK_INTERVAL: "1s",
              LOCKSMITHD_HEALTH_CHECK_TIMEOUT: "3s",
              LOCKSMITHD_NOTIFY_URL: hook.url,
            }, { group, allowRun: [check.program] }),
          );
          const b = track(await machine({}, { group }));
          a.startDaemon();
          await a.waitForLine(/waiting for a reboot to be needed/);
          await a.needReboot();
          await a.waitForLine(/reboot requested$/);
          assert.deepEqual(await holders(a.key), [a.id]);
          await a.reboot(); // a new boot: the daemon starts again
          await a.waitForLine(
            /holds a slot \(the reboot has happened \(the boot id changed\)\): releasing it once the health check LOCKSMITHD_HEALTH_CHECK \(.*\/a-health\.sh\) passes/,
          );
          b.startDaemon();
          await b.waitForLine(/waiting for a reboot to be needed/);
          await b.needReboot();
          await b.waitForLine(
            new RegExp(
              `no slot free for this machine \\(max 1, held by ${a.id}`,
            ),
          );
          await a.waitForLine(
            /ERROR health check LOCKSMITHD_HEALTH_CHECK \(.*\/a-health\.sh\) still fails after \d+s.* giving up: keeping the slot so that the rollout stops; last failure: exited 1 after .*, no output/,
            20_000,
            true,
          );
          await hook.until("health-check-failed");
          // Two more checks after giving up: the second one starting proves
          // that the first was answered (still failing) and acted on.
          const failedAt = await check.runs();
          await until(
            "two more health checks",
            async () => await check.runs() >= failedAt + 2,
          );
          assert.deepEqual(await holders(a.key), [a.id], "A keeps its slot");
          assert.equal(await b.reboots(), 0, "B does not start");
          assert.ok(b.running && a.running);
          assert.equal(
            a.lines.filter((l) => l.includes("still fails (attempt")).length,
            1,
            "a repeated failure is logged once",
          );
          await Deno.writeTextFile(flag, "");
          await a.waitForLine(
            /released the slot held by .*: the reboot has happened \(the boot id changed\); the health check passed/,
          );
          await b.waitForLine(/reboot requested$/, 30_000);
          assert.deepEqual(await holders(a.key), [b.id]);
          await hook.until("back-up");
          const failed = hook.received.find((r) =>
            r.body.event === "health-check-failed"
          )!.body;
          assert.equal(failed.machine, a.id);
          assert.equal(failed.group, group);
          const details = failed.details as Record<string, unknown>;
          assert.ok((details.attempts as number) >= 3);
          assert.match(String(details.lastFailure), /^exited 1 after /);
          assert.deepEqual(hook.events().slice(-3), [
            "health-check-passed",
            "slot-released",
            "back-up",
          ]);
        } finally {
          await hook.close();
        }
      },
    );

    await t.step(
      "a veto of the pre-reboot check keeps the machine out of the semaphore: no queue entry, no slot",
      async () => {
        const maintenance = `${dir}/maintenance`;
        await Deno.writeTextFile(maintenance, "");
        const check = await countedTest("pre-reboot");
        const m = track(
          await machine({
            LOCKSMITHD_PRE_REBOOT_CHECK: `${check.program} ! -e ${maintenance}`,
          }, { allowRun: [check.program] }),
        );
        m.startDaemon();
        await m.waitForLine(/waiting for a reboot to be needed/);
        await m.needReboot();
        await m.waitForLine(
          /pre-reboot check LOCKSMITHD_PRE_REBOOT_CHECK \(.*\/pre-reboot\.sh\) says not now \(before taking a slot\): exited 1 after .*; not queueing/,
        );
        // The second check starting (after a backoff of 2.5-5 s) proves
        // that the first veto was acted on: no queue entry, no slot.
        await until(
          "a second pre-reboot check",
          async () => await check.runs() >= 2,
        );
        assert.deepEqual(await waiters(m.key), [], "not queued");
        assert.deepEqual(await holders(m.key), [], "no slot");
        assert.equal(await m.reboots(), 0);
        assert.equal(
          m.lines.filter((l) => l.includes("says not now")).length,
          1,
          "the same veto is logged once",
        );
        await Deno.remove(maintenance);
        await m.waitForLine(/says go now \(before taking a slot\)/, 30_000);
        await m.waitForLine(/reboot requested$/);
        assert.deepEqual(await holders(m.key), [m.id]);
      },
    );

    await t.step(
      "the reboot command runs exactly once instead of logind, with the machine and group in its environment",
      async () => {
        const script = `${dir}/reboot.sh`;
        const out = `${dir}/reboots.txt`;
        await Deno.writeTextFile(
          script,
          `#!/bin/sh\necho "rebooting $LOCKSMITH_MACHINE_ID $LOCKSMITH_GROUP $*" >> ${out}\n`,
        );
        await Deno.chmod(script, 0o755);
        const m = track(
          await machine({
            LOCKSMITHD_REBOOT_COMMAND: `${script} --now`,
          }, { allowRun: [script] }),
        );
        m.startDaemon();
        await m.waitForLine(/waiting for a reboot to be needed/);
        await m.needReboot();
        await m.waitForLine(/reboot requested$/);
        // The loop has ended: no second run can follow.
        await m.waitForLine(/waiting for the system to go down/, 20_000, true);
        assert.equal(
          await Deno.readTextFile(out),
          `rebooting ${m.id} ${m.group} --now\n`,
        );
        assert.equal(await m.reboots(), 0, "logind's Reboot is not called");
        assert.match(
          m.lines.join("\n"),
          /rebooting: running LOCKSMITHD_REBOOT_COMMAND \(.*\/reboot\.sh\) \(holding a slot\)/,
        );
      },
    );

    await t.step(
      "metrics on /metrics follow the daemon's real state: waiting in the queue, then holding the slot",
      async () => {
        const [port] = freePorts(1) as [number];
        const m = track(
          await machine({ LOCKSMITHD_METRICS_ADDR: `127.0.0.1:${port}` }),
        );
        await client.put(m.key).value(doc(0, 1, ["other"]));
        const started = Date.now() / 1000;
        m.startDaemon();
        await m.waitForLine(
          /serving metrics on http:\/\/127\.0\.0\.1:\d+\/metrics/,
        );
        await m.waitForLine(/waiting for a reboot to be needed/);
        const idle = await scrape(port);
        assert.equal(idle.samples.get("locksmithd_reboot_needed"), 0);
        assert.equal(
          idle.samples.get("locksmithd_waiting_since_timestamp_seconds"),
          0,
        );
        await m.needReboot();
        await m.waitForLine(
          /no slot free for this machine \(max 1, held by other; first in line\)/,
        );
        const waiting = await scrape(port);
        for (const [name, type] of Object.entries(DAEMON_METRIC_FAMILIES)) {
          assert.equal(waiting.types.get(name), type, name);
        }
        const s = waiting.samples;
        assert.equal(s.get(`locksmithd_build_info{version="${VERSION}"}`), 1);
        assert.equal(s.get("locksmithd_reboot_needed"), 1);
        const since = s.get("locksmithd_waiting_since_timestamp_seconds")!;
        assert.ok(since >= Math.floor(started) && since <= Date.now() / 1000);
        // The real state: not a holder, first in the real queue.
        assert.deepEqual(await holders(m.key), ["other"]);
        assert.equal((await waiters(m.key)).length, 1);
        assert.equal(s.get("locksmithd_slot_held"), 0);
        assert.equal(s.get("locksmithd_queue_position"), 0);
        assert.equal(s.get("locksmithd_window_open"), 1);
        assert.equal(
          s.get("locksmithd_last_reboot_request_timestamp_seconds"),
          0,
        );
        assert.equal(
          s.get('locksmithd_lock_attempts_total{result="taken"}'),
          0,
        );
        assert.ok(
          s.get(
            'locksmithd_etcd_request_duration_seconds_count{op="startup-read"}',
          )! >= 1,
        );
        assert.equal(
          s.get('locksmithd_etcd_request_duration_seconds_count{op="join"}'),
          1,
        );

        await client.put(m.key).value(doc(1, 1, []));
        await m.waitForLine(/reboot requested$/);
        const held = (await scrape(port)).samples;
        assert.deepEqual(await holders(m.key), [m.id]);
        assert.deepEqual(await waiters(m.key), []);
        assert.equal(held.get("locksmithd_slot_held"), 1);
        assert.equal(held.get("locksmithd_queue_position"), -1);
        assert.equal(
          held.get('locksmithd_lock_attempts_total{result="taken"}'),
          1,
        );
        assert.equal(
          held.get('locksmithd_etcd_request_duration_seconds_count{op="take"}'),
          1,
        );
        const requested = held.get(
          "locksmithd_last_reboot_request_timestamp_seconds",
        )!;
        assert.ok(requested >= since && requested <= Date.now() / 1000);
        assert.equal(
          held.get("locksmithd_waiting_since_timestamp_seconds"),
          0,
        );
      },
    );

    await t.step(
      "notifications reach a real HTTP server in order, retried through a 503, through a reboot and the health check",
      async () => {
        const hook = receiver(1);
        try {
          const m = track(
            await machine({
              LOCKSMITHD_NOTIFY_URL: hook.url,
              LOCKSMITHD_HEALTH_CHECK: `${TEST} -d ${dir}`,
            }, { allowRun: [TEST] }),
          );
          m.startDaemon();
          await m.waitForLine(/waiting for a reboot to be needed/);
          await m.needReboot();
          await m.waitForLine(/reboot requested$/);
          await hook.until("reboot-requested");
          await m.reboot();
          await hook.until("back-up");
          assert.equal(hook.refused, 1, "the first POST was answered 503");
          assert.deepEqual(hook.events(), [
            "reboot-needed",
            "slot-taken",
            "reboot-requested",
            "health-check-passed",
            "slot-released",
            "back-up",
          ]);
          // Back after its boot: when it took the slot, and how long it was away.
          const backUp = hook.received.at(-1)!.body.details as Record<
            string,
            unknown
          >;
          assert.ok(!Number.isNaN(Date.parse(String(backUp.took_at))));
          assert.equal(typeof backUp.away_seconds, "number");
          for (const { body, url, headers } of hook.received) {
            assert.equal(body.machine, m.id);
            assert.equal(body.group, m.group);
            assert.ok(!Number.isNaN(Date.parse(String(body.time))));
            assert.equal(new URL(url).searchParams.get("token"), "secret");
            assert.equal(headers.get("content-type"), "application/json");
            assert.equal(headers.get("user-agent"), `locksmithd/${VERSION}`);
          }
          assert.deepEqual(hook.received[1]!.body.details, {
            available: 0,
            max: 1,
          });
          assert.doesNotMatch(m.lines.join("\n"), /token=secret/);
        } finally {
          await hook.close();
        }
      },
    );

    await t.step(
      "a receiver that never answers does not block the reboot: the flush before it waits 2 s at most",
      async () => {
        const hole = startBlackHole();
        try {
          const m = track(
            await machine({ LOCKSMITHD_NOTIFY_URL: `${hole.url}/hook` }),
          );
          m.startDaemon();
          await m.waitForLine(/waiting for a reboot to be needed/);
          const asked = Date.now();
          await m.needReboot();
          await m.waitForLine(/reboot requested$/);
          const took = Date.now() - asked;
          // It waited for the stuck POST (2 s at most), then rebooted anyway.
          assert.ok(
            took >= 1_500 && took < 4_000,
            `the reboot took ${took} ms`,
          );
          assert.deepEqual(await m.bus.logind.rebootCalls(), [false]);
        } finally {
          hole.close();
        }
      },
    );

    await t.step(
      "a schedule of two windows: closed in both, it waits for the nearer one and takes no slot; open in one, it reboots",
      async () => {
        const hhmm = (d: Date) =>
          `${String(d.getUTCHours()).padStart(2, "0")}:${
            String(d.getUTCMinutes()).padStart(2, "0")
          }`;
        const now = Date.now();
        const in3h = new Date(now + 3 * 3_600_000);
        const in5h = new Date(now + 5 * 3_600_000);
        const closed = track(
          await machine({
            LOCKSMITHD_REBOOT_SCHEDULE: `${hhmm(in5h)} 1h, ${hhmm(in3h)} 1h`,
            LOCKSMITHD_REBOOT_WINDOW_TZ: "UTC",
          }),
        );
        closed.bus.updateEngine.setStatus({
          currentOperation: "UPDATE_STATUS_UPDATED_NEED_REBOOT",
        });
        closed.startDaemon();
        const line = await closed.waitForLine(
          /waiting for the reboot schedule daily .* for 1h, daily .* for 1h \(UTC\): it opens at /,
        );
        assert.ok(
          line.includes(`${hhmm(in3h)} UTC`),
          `opens at the nearer window (${hhmm(in3h)}): ${line}`,
        );
        // The line is logged as the loop starts to sleep until the window
        // opens (hours away): nothing is asked of etcd or logind before.
        assert.equal(await closed.reboots(), 0);
        assert.equal(await client.get(closed.key).string(), null);

        const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const today = days[new Date(now).getUTCDay()];
        const open = track(
          await machine({
            LOCKSMITHD_REBOOT_SCHEDULE: `${hhmm(in3h)} 1h, ${today} ${
              hhmm(new Date(now))
            } 1h`,
            LOCKSMITHD_REBOOT_WINDOW_TZ: "UTC",
          }),
        );
        open.bus.updateEngine.setStatus({
          currentOperation: "UPDATE_STATUS_UPDATED_NEED_REBOOT",
        });
        open.startDaemon();
        await open.waitForLine(/reboot requested$/);
        // Still nothing from the closed one, the whole run of the open one later.
        assert.equal(await closed.reboots(), 0);
        assert.equal(await client.get(closed.key).string(), null);
        assert.match(
          open.lines.join("\n"),
          /reboot schedule daily .* for 1h, (Sun|Mon|Tue|Wed|Thu|Fri|Sat) .* for 1h \(UTC\)/,
        );
      },
    );

    await t.step(
      "logged-in users are warned through logind's wall message and a dry-run schedule, then the reboot follows",
      async () => {
        const m = track(await machine({ LOCKSMITHD_LOGIN_DELAY: "2s" }));
        await m.bus.logind.addSession();
        m.bus.updateEngine.setStatus({
          currentOperation: "UPDATE_STATUS_UPDATED_NEED_REBOOT",
        });
        const before = Date.now();
        m.startDaemon();
        await m.waitForLine(/reboot requested$/);
        const after = Date.now();
        const walls = await m.bus.logind.calls("SetWallMessage");
        assert.equal(walls.length, 1);
        assert.match(
          String(walls[0]![0]),
          /^locksmithd: this machine reboots in 2s \(.* UTC\) to finish an update; save your work and log out\.$/,
        );
        assert.equal(walls[0]![1], true);
        const scheduled = await m.bus.logind.calls("ScheduleShutdown");
        assert.equal(scheduled.length, 1);
        assert.equal(scheduled[0]![0], "dry-reboot");
        const at = Number(scheduled[0]![1] as bigint) / 1000;
        assert.ok(at >= before + 2_000 && at <= after, `scheduled at ${at}`);
        assert.deepEqual(await m.bus.logind.rebootCalls(), [false]);
        assert.deepEqual(
          await m.bus.logind.calls("CancelScheduledShutdown"),
          [],
        );
      },
    );

    await t.step(
      "a logind without the wall calls is logged, and the reboot still follows the delay",
      async () => {
        const m = track(
          await machine({ LOCKSMITHD_LOGIN_DELAY: "1s" }, {
            logindWall: false,
          }),
        );
        await m.bus.logind.addSession();
        m.bus.updateEngine.setStatus({
          currentOperation: "UPDATE_STATUS_UPDATED_NEED_REBOOT",
        });
        m.startDaemon();
        await m.waitForLine(/reboot requested$/);
        assert.match(
          m.lines.join("\n"),
          /cannot warn logged-in users through logind \(.*UnknownMethod.*\); rebooting after the delay without a warning/,
        );
        assert.deepEqual(await m.bus.logind.rebootCalls(), [false]);
      },
    );
  } finally {
    for (const m of machines) await m.close().catch(() => {});
    client.close();
    await etcd.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
