/**
 * Measurement `daemon`: the memory of a waiting locksmithd. Real
 * `daemon.ts` processes, started as `deno task daemon` starts them (the
 * real `deno` binary, the `daemon` permission set and the task's V8 flags,
 * `--lite-mode` among them) by `tests/harness/machine.ts`, each on its own
 * private system bus (dbus-daemon with the logind mock and the
 * update_engine stand-in), wait for a slot of a full semaphore (max 1, held
 * by another machine). After a while their resident set is read from
 * `/proc/<pid>/status`, anonymous and file-backed apart, with the
 * proportional set from `smaps_rollup`; beside them, with the same V8 flags,
 * floors (`bench/idle.ts`): an empty Deno program that stays up, one with
 * only locksmithd's etcd stack waiting in the queue, one with only
 * dbus-next connected to a bus.
 *
 * etcd's /metrics also count what the daemons send: at start (no reboot
 * needed yet), idle, and while waiting (the etcd floor waits too, the same
 * way). The waiting count is logged, not turned into a rate: the window
 * (60 s, 15 s with `--quick`) ends before a waiting machine's first lease
 * keep-alive (100 s after it joined the queue), so a rate over it would
 * leave out the one request a waiter sends regularly. The `waiting`
 * measurement gives the rate per waiter, over a window that holds one.
 *
 * Target: at most 48 MiB resident (median of the daemons).
 */

import { startMachine } from "../tests/harness/machine.ts";
import { programFlags, REPO_ROOT } from "../tests/harness/permissions.ts";
import { delta, formatMethods, scrape } from "./etcd_counters.ts";
import { fmt, type Report } from "./report.ts";
import { prepareSemaphore } from "./sim_machine.ts";
import { median, mib, type ProcMemory, procMemory, sleep } from "./util.ts";

/** Seconds the started daemons idle (no reboot needed) while their requests are counted. */
const IDLE_S = 5;

/** The pid of the process whose command line contains `needle`. */
function pidWith(needle: string): number {
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`);
      if (cmdline.includes(needle)) return Number(entry.name);
    } catch { /* gone */ }
  }
  throw new Error(`no process runs with ${needle}`);
}

function describe(m: ProcMemory): string {
  return `${fmt(mib(m.rss))} MiB (anon ${fmt(mib(m.anon))}, file ${
    fmt(mib(m.file))
  }, PSS ${m.pss === undefined ? "?" : fmt(mib(m.pss))}, peak ${
    fmt(mib(m.peak))
  })`;
}

/** Runs the measurement: `daemons` locksmithd waiting for `seconds`. */
export async function measureDaemonMemory(
  report: Report,
  endpoints: string[],
  metricsUrl: string,
  seconds: number,
  daemons: number,
): Promise<void> {
  const S = "daemon";
  report.log(
    `\ndaemon: ${daemons} locksmithd (deno task daemon's flags) on private buses, waiting ${seconds} s for a slot of a full semaphore`,
  );
  const group = "bench-daemon";
  await prepareSemaphore(endpoints, group, 1, ["bench-daemon-other-holder"]);
  const v8 = programFlags("daemon").filter((f) => f.startsWith("--v8-flags="));
  const floor = (args: string[], env: Record<string, string> = {}) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-q", "-A", ...v8, `${REPO_ROOT}bench/idle.ts`, ...args],
      env,
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
  const floors: Record<string, Deno.ChildProcess> = {
    "empty Deno program": floor([]),
  };
  const machines = await Promise.all(
    Array.from({ length: daemons }, (_, i) =>
      startMachine({
        id: `bench-daemon-${i}`,
        endpoint: endpoints.join(","),
        config: { LOCKSMITHD_GROUP: group },
      })),
  );
  try {
    const s0 = await scrape(metricsUrl);
    for (const m of machines) m.startDaemon();
    await Promise.all(
      machines.map((m) => m.waitForLine(/waiting for a reboot to be needed/)),
    );
    await sleep(2_000); // the start-up check runs beside that wait
    const s1 = await scrape(metricsUrl);
    await sleep(IDLE_S * 1000);
    const s2 = await scrape(metricsUrl);
    floors["Deno + dbus-next on a bus"] = floor(["dbus"], machines[0]!.bus.env);
    floors["Deno + locksmithd's etcd stack, waiting in the queue"] = floor([
      "etcd",
      endpoints.join(","),
      group,
    ]);
    await Promise.all(machines.map((m) => m.needReboot()));
    await Promise.all(machines.map((m) => m.waitForLine(/no slot free/)));
    await sleep(2_000);
    const s3 = await scrape(metricsUrl);
    await sleep(seconds * 1000);
    const s4 = await scrape(metricsUrl);
    const start = delta(s0, s1);
    const idle = delta(s1, s2);
    const waiting = delta(s3, s4);
    report.log(
      `  etcd requests: ${start.total} for ${daemons} starts (${
        formatMethods(start)
      }), ${idle.total} in ${IDLE_S} s idle, ${waiting.total} in ${seconds} s of waiting by ${
        daemons + 1
      } waiting processes (${
        formatMethods(waiting)
      }; before their first keep-alive, 100 s after joining: no rate is derived from this)`,
    );
    const mem = machines.map((m) => procMemory(pidWith(`${m.configFile}\0`)));
    const floorMem = Object.fromEntries(
      Object.entries(floors).map(([name, p]) => [name, procMemory(p.pid)]),
    );
    mem.forEach((m, i) => report.log(`  locksmithd ${i}: ${describe(m)}`));
    for (const [name, m] of Object.entries(floorMem)) {
      report.log(`  ${name}: ${describe(m)}`);
    }
    const med = (f: (m: ProcMemory) => number) => mib(median(mem.map(f)));
    report.add(
      S,
      `locksmithd resident while waiting, after ${seconds} s`,
      med((m) => m.rss),
      "MiB",
      {
        op: "<=",
        value: 48,
      },
    );
    report.add(S, "of which anonymous (RssAnon)", med((m) => m.anon), "MiB");
    report.add(
      S,
      "of which file-backed, shared (RssFile)",
      med((m) => m.file),
      "MiB",
    );
    if (mem.every((m) => m.pss !== undefined)) {
      report.add(
        S,
        "locksmithd proportional set (PSS)",
        med((m) => m.pss!),
        "MiB",
      );
    }
    report.add(
      S,
      "etcd requests per locksmithd start",
      start.total / daemons,
      "req",
    );
    report.add(
      S,
      "etcd requests per second per idle locksmithd",
      idle.total / daemons / IDLE_S,
      "req/s",
    );
    for (const [name, m] of Object.entries(floorMem)) {
      report.add(
        S,
        `${name}: resident (anon ${fmt(mib(m.anon))} MiB)`,
        mib(m.rss),
        "MiB",
      );
    }
    report.detail("daemon", {
      requests: { start, idle, waiting },
      seconds,
      v8Flags: v8,
      locksmithd: mem,
      floors: floorMem,
    });
  } finally {
    for (const p of Object.values(floors)) {
      p.kill("SIGTERM");
      await p.status;
    }
    await Promise.all(machines.map((m) => m.close()));
  }
}
