/**
 * Measurement `ctl`: every locksmithctl command that talks to etcd
 * (`status`, `lock`, `unlock`, `set-max`), each a whole process started as
 * `deno task ctl` starts it (the real `deno` binary, the task's flags), beside
 * `etcdctl get` of the same key started the same way. `bench/spawn_timer.py`
 * starts every command with posix_spawn and times it to wait4, which also
 * gives the process's peak resident set; the commands run interleaved, after
 * one warm-up round (Deno's transpile and code caches warm, as on a machine
 * that ran it before). Beside them: an empty Deno program and
 * `locksmithctl --version` (no etcd code loaded), the floors.
 *
 * Targets: each command's median time at most 2.5x `etcdctl get`'s, and its
 * median peak resident set at most 55 MiB.
 */

import { programFlags, REPO_ROOT } from "../tests/harness/permissions.ts";
import { requireProgram } from "../tests/harness/tools.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { fmt, type Report } from "./report.ts";
import { prepareSemaphore } from "./sim_machine.ts";
import { findProgram, median, mib, round } from "./util.ts";

/** One run of a command, as `spawn_timer.py` measured it. */
interface Run {
  readonly ms: number;
  readonly maxrssKiB: number;
  readonly code: number;
}

/** Starts every command in turn, `runs` rounds; see `spawn_timer.py`. */
export async function timeCommands(
  commands: Record<string, string[][]>,
  runs: number,
  env: Record<string, string>,
): Promise<Record<string, Run[]>> {
  const child = new Deno.Command("/usr/bin/python3", {
    args: [`${REPO_ROOT}bench/spawn_timer.py`],
    cwd: REPO_ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(
    new TextEncoder().encode(
      JSON.stringify({ runs, warmup: 1, commands, env }),
    ),
  );
  await writer.close();
  const out = await child.output();
  if (!out.success) {
    throw new Error(
      `spawn_timer.py failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Runs the measurement; `runs` rounds of every command. */
export async function measureCtl(
  report: Report,
  endpoints: readonly string[],
  runs: number,
): Promise<void> {
  const S = "ctl";
  report.log(
    `\nctl: locksmithctl status, lock, unlock, set-max beside etcdctl get, ${runs} runs each, interleaved`,
  );
  await requireProgram("etcdctl");
  const group = "bench-ctl";
  const key = semaphoreKey(group);
  await prepareSemaphore(endpoints, group, 5, ["bench-ctl-other-holder"]);
  const deno = Deno.execPath();
  const etcdctl = findProgram("etcdctl");
  const ctl = (...args: string[]) => [
    deno,
    "run",
    ...programFlags("ctl"),
    `${REPO_ROOT}ctl.ts`,
    "--endpoint",
    endpoints.join(","),
    "--group",
    group,
    ...args,
  ];
  const id = "bench-ctl-machine";
  const commands: Record<string, string[][]> = {
    "etcdctl get": [[
      etcdctl,
      `--endpoints=${endpoints.join(",")}`,
      "get",
      key,
    ]],
    "status": [ctl("status")],
    "lock": [ctl("lock", id)],
    "unlock": [ctl("unlock", id)],
    "set-max": [ctl("set-max", "6"), ctl("set-max", "5")],
    "deno, empty program": [[
      deno,
      "run",
      "-q",
      `${REPO_ROOT}bench/startup/noop.ts`,
    ]],
    "locksmithctl --version": [[
      deno,
      "run",
      ...programFlags("ctl"),
      `${REPO_ROOT}ctl.ts`,
      "--version",
    ]],
  };
  const results = await timeCommands(commands, runs, {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    NO_COLOR: "1",
    DENO_NO_UPDATE_CHECK: "1",
    ETCDCTL_API: "3",
  });
  const failed = Object.entries(results)
    .filter(([, rs]) => rs.some((r) => r.code !== 0))
    .map(([name]) => name);
  if (failed.length > 0) {
    throw new Error(`these commands failed: ${failed.join(", ")}`);
  }
  const ms = (name: string) => median(results[name]!.map((r) => r.ms));
  const peak = (name: string) =>
    mib(median(results[name]!.map((r) => r.maxrssKiB)));
  const base = ms("etcdctl get");
  report.log(
    `  medians: ${
      Object.keys(commands).map((n) =>
        `${n} ${fmt(ms(n))} ms / ${fmt(peak(n))} MiB`
      ).join("; ")
    }`,
  );
  for (const name of ["status", "lock", "unlock", "set-max"]) {
    report.add(
      S,
      `locksmithctl ${name} / etcdctl get time (${fmt(ms(name))} vs ${
        fmt(base)
      } ms)`,
      ms(name) / base,
      "x",
      { op: "<=", value: 2.5 },
    );
    report.add(S, `locksmithctl ${name} peak RSS`, peak(name), "MiB", {
      op: "<=",
      value: 55,
    });
  }
  report.add(S, "etcdctl get peak RSS", peak("etcdctl get"), "MiB");
  report.add(
    S,
    `empty Deno program (${fmt(ms("deno, empty program"))} ms) / etcdctl get`,
    ms("deno, empty program") / base,
    "x",
  );
  report.add(
    S,
    `locksmithctl --version (${
      fmt(ms("locksmithctl --version"))
    } ms) / etcdctl get`,
    ms("locksmithctl --version") / base,
    "x",
  );
  report.detail("ctl", {
    runs,
    medians: Object.fromEntries(
      Object.keys(commands).map((n) => [n, {
        ms: round(ms(n), 2),
        peakMiB: round(peak(n), 1),
      }]),
    ),
    all: Object.fromEntries(
      Object.entries(results).map((
        [n, rs],
      ) => [n, rs.map((r) => [round(r.ms, 1), r.maxrssKiB])]),
    ),
  });
}
