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
 * Target: at most 48 MiB resident (median of the daemons).
 */

import { startMachine } from "../tests/harness/machine.ts";
import { programFlags, REPO_ROOT } from "../tests/harness/permissions.ts";
import { fmt, type Report } from "./report.ts";
import { prepareSemaphore } from "./sim_machine.ts";
import { median, mib, type ProcMemory, procMemory, sleep } from "./util.ts";

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
    "Deno + locksmithd's etcd stack, waiting in the queue": floor([
      "etcd",
      endpoints.join(","),
      group,
    ]),
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
    floors["Deno + dbus-next on a bus"] = floor(["dbus"], machines[0]!.bus.env);
    for (const m of machines) m.startDaemon();
    await Promise.all(
      machines.map((m) => m.waitForLine(/waiting for a reboot to be needed/)),
    );
    await Promise.all(machines.map((m) => m.needReboot()));
    await Promise.all(machines.map((m) => m.waitForLine(/no slot free/)));
    await sleep(seconds * 1000);
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
    for (const [name, m] of Object.entries(floorMem)) {
      report.add(
        S,
        `${name}: resident (anon ${fmt(mib(m.anon))} MiB)`,
        mib(m.rss),
        "MiB",
      );
    }
    report.detail("daemon", {
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
