/**
 * Measurement `grants`: 200 simulated machines (`sim_machine.ts`, each with
 * its own port and connections) need a reboot at once, on a semaphore of 5
 * slots. Each takes a slot as locksmithd does (`acquireSlot`), "reboots"
 * (shuts down as locksmithd does: its lease, which holds no key once the
 * slot is taken, is left to expire; and is down for a moment), and the next boot's start-up check releases the slot. Counts
 * every etcd request from etcd's own /metrics and, by what each request
 * does, from each machine's counting port, per phase: acquiring, shutting
 * down, booting. Checks the key's history: never more than 5 holders.
 *
 * Target: at most 4 etcd requests per granted slot (bench/README.md
 * explains why the floor with lease-bound queue entries is higher).
 */

import { keyHistory } from "../tests/harness/history.ts";
import { checkHistory } from "../tests/harness/invariants.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { delta, formatMethods, scrape } from "./etcd_counters.ts";
import { fmt, type Report } from "./report.ts";
import { addRequests, prepareSemaphore, SimMachine } from "./sim_machine.ts";
import { median, round, sleep } from "./util.ts";

/** Machines. */
const MACHINES = 200;
/** Slots. */
const MAX = 5;
/** How long a machine is down between its shutdown and its next boot. */
const DOWN_MS = 20;

/** Requests by kind, per grant, largest first: `Txn join 1, ...`. */
function perGrant(counts: Record<string, number>, n: number): string {
  return Object.entries(counts).sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${fmt(v / n)}`).join(", ") || "none";
}

/** Runs the measurement. */
export async function measureGrants(
  report: Report,
  endpoints: string[],
  metricsUrl: string,
): Promise<void> {
  const S = "grants";
  report.log(
    `\ngrants: ${MACHINES} machines need a reboot at once, max ${MAX}; each takes a slot (acquireSlot), shuts down (its empty lease left to expire), is down ${DOWN_MS} ms, and its next boot releases the slot`,
  );
  const group = "bench-grants";
  const key = semaphoreKey(group);
  await prepareSemaphore(endpoints, group, MAX);
  const warnings: string[] = [];
  const onWarning = (line: string) => warnings.push(line);
  const phases = {
    acquire: {} as Record<string, number>,
    shutdown: {} as Record<string, number>,
    boot: {} as Record<string, number>,
  };
  const grantMs: number[] = [];
  const a = await scrape(metricsUrl);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: MACHINES }, async (_, i) => {
      const id = `grants-${String(i).padStart(3, "0")}`;
      const machine = new SimMachine({ endpoints, group, id, onWarning });
      const outcome = await machine.acquire();
      if (outcome !== "held") throw new Error(`${id}: ${outcome}`);
      grantMs.push(performance.now() - t0);
      const acquired = machine.requests();
      addRequests(phases.acquire, acquired);
      await machine.shutdown();
      addRequests(phases.shutdown, machine.requests(), acquired);
      await sleep(DOWN_MS);
      const next = new SimMachine({ endpoints, group, id, onWarning });
      await next.bootCheck();
      addRequests(phases.boot, next.requests());
      await next.shutdown();
    }),
  );
  const drainS = (performance.now() - t0) / 1000;
  const d = delta(a, await scrape(metricsUrl));
  const history = checkHistory(key, await keyHistory(endpoints, key));
  const all: Record<string, number> = {};
  for (const p of Object.values(phases)) addRequests(all, p);
  const sum = (c: Record<string, number>) =>
    Object.entries(c).filter(([k]) => k !== "Watch streams")
      .reduce((s, [, v]) => s + v, 0);
  report.log(
    `  etcd saw ${d.total} requests (${
      formatMethods(d)
    }), ${d.watchStreams} watch streams, ${d.puts} keys written, ${d.watchSent} watch messages and ${d.events} events sent`,
  );
  report.log(
    `  the machines sent ${
      sum(all)
    } (watch creates counted as etcd counts them); per grant:`,
  );
  for (const [name, counts] of Object.entries(phases)) {
    report.log(
      `    ${name.padEnd(8)} ${fmt(sum(counts) / MACHINES)}: ${
        perGrant(counts, MACHINES)
      }`,
    );
  }
  for (const w of warnings.slice(0, 3)) report.log(`  warning: ${w}`);
  report.add(
    S,
    `wall time to drain (${MACHINES} machines, max ${MAX})`,
    drainS,
    "s",
  );
  report.add(
    S,
    "etcd requests per granted slot (acquire, shutdown, boot)",
    d.total / MACHINES,
    "req/grant",
    { op: "<=", value: 4 },
  );
  report.add(
    S,
    "of which taking the slot (lease, join, watch, lock, ...)",
    sum(phases.acquire) / MACHINES,
    "req/grant",
  );
  report.add(
    S,
    "watch messages sent per grant",
    d.watchSent / MACHINES,
    "msg/grant",
  );
  report.add(
    S,
    "largest number of holders in the key history",
    history.maxHolders,
    "holders",
    {
      op: "==",
      value: MAX,
    },
  );
  report.add(
    S,
    "invariant violations in the key history",
    history.violations.length,
    "",
    { op: "==", value: 0 },
  );
  report.detail("grants", {
    machines: MACHINES,
    max: MAX,
    downMs: DOWN_MS,
    drainS,
    etcd: d,
    etcdPerGrant: Object.fromEntries(
      Object.entries(d.byMethod).map(([m, v]) => [m, round(v / MACHINES)]),
    ),
    machinesPerGrant: Object.fromEntries(
      Object.entries(phases).map(([p, c]) => [
        p,
        Object.fromEntries(
          Object.entries(c).map(([k, v]) => [k, round(v / MACHINES)]),
        ),
      ]),
    ),
    grantMs: {
      first: Math.min(...grantMs),
      median: median(grantMs),
      last: Math.max(...grantMs),
    },
    warnings: warnings.length,
    firstWarnings: warnings.slice(0, 10),
    history: {
      versions: history.versions,
      maxHolders: history.maxHolders,
      violations: history.violations.slice(0, 10),
    },
  });
}
