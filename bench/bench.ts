/**
 * locksmith's benchmark: starts its own etcd on loopback, runs the chosen
 * measurements (one module each, see bench/README.md), prints a table with
 * each figure beside its target and pass or MISS, and writes the figures and
 * the details behind them to bench/results.json.
 *
 * Usage: `deno run --allow-all bench/bench.ts [--quick] [--only=ctl,grants] [--out=FILE]`
 */

import { startEtcd } from "../tests/harness/etcd.ts";
import { REPO_ROOT } from "../tests/harness/permissions.ts";
import { measureCtl } from "./ctl_commands.ts";
import { measureDaemonMemory } from "./daemon_memory.ts";
import { fleetLockBench } from "./fleetlock.ts";
import { measureFleetPage } from "./fleet_page.ts";
import { measureGrants } from "./grants.ts";
import { fmt, renderTable, Report, summary } from "./report.ts";
import { measureWaiting } from "./waiting.ts";

/** What every measurement gets. */
interface Context {
  /** The benchmark's etcd (one member). */
  readonly endpoints: string[];
  /** Its plain-HTTP metrics URL. */
  readonly metricsUrl: string;
  /** Shorter waits and fewer repetitions. */
  readonly quick: boolean;
}

/** The measurements, in the order they run. */
const MEASUREMENTS: Record<
  string,
  (report: Report, c: Context) => Promise<void>
> = {
  ctl: (r, c) => measureCtl(r, c.endpoints, c.quick ? 10 : 20),
  daemon: (r, c) =>
    measureDaemonMemory(
      r,
      c.endpoints,
      c.metricsUrl,
      c.quick ? 15 : 60,
      c.quick ? 1 : 3,
    ),
  grants: (r, c) => measureGrants(r, c.endpoints, c.metricsUrl),
  waiting: (r, c) => measureWaiting(r, c.endpoints, c.metricsUrl, c.quick),
  fleetpage: (r, c) => measureFleetPage(r, c.endpoints, c.metricsUrl),
  fleetlock: async (r, c) => {
    r.log("\nfleetlock: the FleetLock server under load (its own etcd)");
    const figures = await fleetLockBench({
      seconds: c.quick ? 3 : 10,
      log: (line) => r.log(`  ${line}`),
    });
    for (const f of figures) {
      r.add("fleetlock", f.name, f.value, f.unit, f.target);
    }
  },
};

const USAGE = `usage: bench.ts [--quick] [--only=${
  Object.keys(MEASUREMENTS).join(",")
}] [--out=FILE]`;

function parseArgs(args: readonly string[]) {
  let quick = false;
  let only = Object.keys(MEASUREMENTS);
  let out = `${REPO_ROOT}bench/results.json`;
  for (const a of args) {
    if (a === "--quick") quick = true;
    else if (a.startsWith("--only=")) {
      only = a.slice(7).split(",").map((s) => s.trim()).filter(Boolean);
    } else if (a.startsWith("--out=")) out = a.slice(6);
    else throw new Error(`unknown argument ${a}`);
  }
  const unknown = only.filter((m) => !(m in MEASUREMENTS));
  if (unknown.length > 0) {
    throw new Error(`unknown measurement ${unknown.join(", ")}`);
  }
  return { quick, only, out };
}

async function version(cmd: string): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).split("\n")[0]!.trim();
  } catch {
    return "unknown";
  }
}

if (import.meta.main) {
  let options;
  try {
    options = parseArgs(Deno.args);
  } catch (error) {
    console.error(`bench.ts: ${(error as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
  const { quick, only, out } = options;
  const report = new Report();
  const startedAt = new Date();
  const t0 = performance.now();
  const etcdVersion = await version("etcd");
  report.log(
    `locksmith benchmark${
      quick ? " (--quick)" : ""
    }: ${etcdVersion}, deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs, load average ${
      Deno.loadavg().map((l) => l.toFixed(2)).join(" ")
    }`,
  );
  const etcd = await startEtcd();
  const context: Context = {
    endpoints: etcd.endpoints,
    metricsUrl: etcd.members[0]!.metricsUrl,
    quick,
  };
  let failed: unknown;
  try {
    for (const name of only) await MEASUREMENTS[name]!(report, context);
  } catch (error) {
    failed = error;
  } finally {
    await etcd.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `\nlocksmith benchmark${
      quick ? " (--quick)" : ""
    }, ${startedAt.toISOString()}, ${fmt(seconds)} s\n`,
  );
  console.log(renderTable(report.figures));
  console.log(`\n${summary(report.figures)}`);
  await Deno.writeTextFile(
    out,
    JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        seconds,
        quick,
        measurements: only,
        versions: {
          deno: Deno.version.deno,
          v8: Deno.version.v8,
          etcd: etcdVersion,
        },
        cpus: navigator.hardwareConcurrency,
        loadAverageAtEnd: Deno.loadavg(),
        figures: report.figures,
        details: report.details,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`figures written to ${out}`);
  if (failed) {
    console.error(failed);
    Deno.exit(1);
  }
}
