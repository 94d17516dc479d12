/**
 * Load on the FleetLock server (`locksmithd serve`): starts its own etcd on
 * loopback and the server as `deno task serve` runs it (the `serve`
 * permission set), then drives it through 16 keep-alive connections:
 *
 * 1. mixed: repeated pre-reboot calls by holders and steady-state calls by
 *    non-holders (what Zincati sends all day: every call changes nothing);
 * 2. storm: 200 distinct ids calling pre-reboot on 3 slots, each id that
 *    gets a slot giving it back (steady-state) right away, so slots turn over.
 *
 * It prints requests per second, errors (any answer but 200, or 409
 * semaphore full in the storm), etcd requests per call that changes nothing
 * (from etcd's own /metrics) and the most holders ever stored (from the
 * key's history), each beside its target with pass or miss, and exits 1 on
 * a miss. `fleetLockBench` returns the same figures for `bench/bench.ts`.
 *
 * Usage: `deno run -A bench/fleetlock.ts [--quick]`
 */

import { startEtcd } from "../tests/harness/etcd.ts";
import { keyHistory } from "../tests/harness/history.ts";
import { startServeProcess } from "../tests/harness/serve_process.ts";
import { parseSemaphore } from "../lib/semaphore/document.ts";
import { fleetLockKey } from "../lib/fleetlock/protocol/protocol.ts";
import { delta, formatMethods, scrape } from "./etcd_counters.ts";
import { type Figure, judge, renderTable, summary } from "./report.ts";

/** One measured figure of the FleetLock server, with its target when it has one. */
export type FleetLockFigure = Figure;

/** Options of {@link fleetLockBench}. */
export interface FleetLockBenchOptions {
  /** Seconds of each phase (default 10). */
  readonly seconds?: number;
  /** Keep-alive connections (default 16). */
  readonly connections?: number;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

const SLOTS = 3;
const STORM_IDS = 200;
const HOLDERS = ["holder-a", "holder-b", "holder-c"];

function body(id: string, group: string): Uint8Array<ArrayBuffer> {
  // Exactly as Zincati sends it: pretty-printed, id before group.
  return new TextEncoder().encode(
    JSON.stringify({ client_params: { id, group } }, null, 2),
  );
}

/** Resident memory of process `pid` in MiB, from /proc. */
async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
  return Math.round(kb / 1024 * 10) / 10;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

interface PhaseResult {
  requests: number;
  errors: number;
  statuses: Map<number, number>;
  seconds: number;
  latenciesMs: number[];
}

/**
 * Runs `step` on `connections` workers, each with its own HTTP client (one
 * keep-alive connection, requests one after another), for `seconds`.
 */
async function phase(
  connections: number,
  seconds: number,
  step: (
    worker: number,
    call: (endpoint: string, id: string) => Promise<[number, string]>,
  ) => Promise<void>,
  base: string,
  group: string,
  ok: (status: number) => boolean,
): Promise<PhaseResult> {
  const result: PhaseResult = {
    requests: 0,
    errors: 0,
    statuses: new Map(),
    seconds,
    latenciesMs: [],
  };
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async (_, worker) => {
      const client = Deno.createHttpClient({ poolMaxIdlePerHost: 1 });
      const call = async (
        endpoint: string,
        id: string,
      ): Promise<[number, string]> => {
        const t = performance.now();
        const res = await fetch(`${base}v1/${endpoint}`, {
          method: "POST",
          client,
          headers: { "fleet-lock-protocol": "true" },
          body: body(id, group),
        });
        const text = await res.text();
        result.latenciesMs.push(performance.now() - t);
        result.requests++;
        result.statuses.set(
          res.status,
          (result.statuses.get(res.status) ?? 0) + 1,
        );
        if (!ok(res.status)) result.errors++;
        return [res.status, text];
      };
      try {
        while (performance.now() < end) await step(worker, call);
      } finally {
        client.close();
      }
    }),
  );
  result.seconds = (performance.now() - started) / 1000;
  result.latenciesMs.sort((a, b) => a - b);
  return result;
}

/** Runs the FleetLock load measurement; see the module documentation. */
export async function fleetLockBench(
  options: FleetLockBenchOptions = {},
): Promise<FleetLockFigure[]> {
  const seconds = options.seconds ?? 10;
  const connections = options.connections ?? 16;
  const log = options.log ?? (() => {});
  const etcd = await startEtcd();
  const metricsUrl = etcd.members[0]!.metricsUrl;
  const server = await startServeProcess({
    endpoint: etcd.endpoint,
    args: ["--slots", `mixed=${SLOTS},storm=${SLOTS}`],
  });
  const base = server.url;
  const figures: FleetLockFigure[] = [];
  try {
    const idleRss = await rssMiB(server.pid);

    // Phase 1: calls that change nothing.
    const setup = Deno.createHttpClient({});
    for (const id of HOLDERS) {
      const res = await fetch(`${base}v1/pre-reboot`, {
        method: "POST",
        client: setup,
        headers: { "fleet-lock-protocol": "true" },
        body: body(id, "mixed"),
      });
      if (res.status !== 200) throw new Error(`setup: ${await res.text()}`);
      await res.body?.cancel();
    }
    setup.close();
    log(`mixed: ${connections} connections, ${seconds} s`);
    const before = await scrape(metricsUrl);
    let n = 0;
    const mixed = await phase(
      connections,
      seconds,
      async (worker, call) => {
        const i = n++;
        if (i % 2 === 0) await call("pre-reboot", HOLDERS[i % HOLDERS.length]!);
        else await call("steady-state", `idle-${worker}-${i}`);
      },
      base,
      "mixed",
      (s) => s === 200,
    );
    const etcdMixed = delta(before, await scrape(metricsUrl));
    log(
      `mixed: ${mixed.requests} requests, etcd ${formatMethods(etcdMixed)}`,
    );

    // Phase 2: a storm of distinct ids on few slots, slots turning over.
    log(`storm: ${STORM_IDS} ids on ${SLOTS} slots, ${seconds} s`);
    let next = 0;
    let slotsTaken = 0;
    const storm = await phase(
      connections,
      seconds,
      async (_worker, call) => {
        const id = `node-${String(next++ % STORM_IDS).padStart(3, "0")}`;
        const [status, text] = await call("pre-reboot", id);
        if (status === 200 && text.includes(" took a slot ")) {
          slotsTaken++;
          await call("steady-state", id);
        }
      },
      base,
      "storm",
      (s) => s === 200 || s === 409,
    );

    const loadedRss = await rssMiB(server.pid);
    let maxHolders = 0;
    let maxSlots = 0;
    for (const group of ["mixed", "storm"]) {
      const key = fleetLockKey(group);
      for (const version of await keyHistory(etcd.endpoints, key)) {
        if (version.value === undefined) continue;
        const doc = parseSemaphore(version.value, key);
        maxHolders = Math.max(maxHolders, doc.holders.length);
        maxSlots = Math.max(maxSlots, doc.max);
      }
    }

    const all = mixed.requests + storm.requests;
    const allSeconds = mixed.seconds + storm.seconds;
    const push = (f: FleetLockFigure) => figures.push(judge(f));
    const section = `FleetLock server, ${connections} keep-alive connections`;
    push({
      section,
      name: "requests per second, mixed (no-op calls)",
      value: Math.round(mixed.requests / mixed.seconds),
      unit: "req/s",
      target: { op: ">=", value: 1_000 },
    });
    push({
      section,
      name: `requests per second, storm (${STORM_IDS} ids, ${SLOTS} slots)`,
      value: Math.round(storm.requests / storm.seconds),
      unit: "req/s",
      target: { op: ">=", value: 1_000 },
    });
    push({
      section,
      name: "requests per second, both phases",
      value: Math.round(all / allSeconds),
      unit: "req/s",
      target: { op: ">=", value: 1_000 },
    });
    push({
      section,
      name: "errors (mixed: not 200; storm: not 200 or 409)",
      value: mixed.errors + storm.errors,
      unit: "",
      target: { op: "==", value: 0 },
    });
    push({
      section,
      name: "etcd requests per call that changes nothing",
      value: Math.round(etcdMixed.total / mixed.requests * 1000) / 1000,
      unit: "",
      target: { op: "<=", value: 1 },
    });
    push({
      section,
      name: "etcd writes during the no-op phase",
      value: etcdMixed.puts,
      unit: "",
      target: { op: "==", value: 0 },
    });
    push({
      section,
      name: "most holders ever stored (key history)",
      value: maxHolders,
      unit: "",
      target: { op: "<=", value: SLOTS },
    });
    push({
      section,
      name: "slots taken and given back in the storm",
      value: slotsTaken,
      unit: "",
    });
    for (const [name, p] of [["mixed", mixed], ["storm", storm]] as const) {
      for (const q of [0.5, 0.99]) {
        push({
          section,
          name: `latency p${q * 100}, ${name}`,
          value: Math.round(percentile(p.latenciesMs, q) * 100) / 100,
          unit: "ms",
        });
      }
    }
    push({
      section,
      name: "server memory (RSS) at start",
      value: idleRss,
      unit: "MiB",
    });
    push({
      section,
      name: "server memory (RSS) after both phases",
      value: loadedRss,
      unit: "MiB",
    });
    const statuses = [...storm.statuses].map(([s, c]) => `${s}: ${c}`);
    log(`storm: ${storm.requests} requests (${statuses.join(", ")})`);
    if (maxSlots !== SLOTS) {
      throw new Error(`the configured ${SLOTS} slots were not stored`);
    }
  } finally {
    const code = await server.stop("SIGTERM");
    await etcd.close();
    if (code !== 0) {
      log(`server exited ${code}:\n${server.lines.join("\n")}`);
    }
  }
  return figures;
}

if (import.meta.main) {
  const quick = Deno.args.includes("--quick");
  for (const a of Deno.args) {
    if (a !== "--quick") {
      console.error(
        `fleetlock.ts: unknown argument ${a}\nusage: fleetlock.ts [--quick]`,
      );
      Deno.exit(2);
    }
  }
  const figures = await fleetLockBench({
    seconds: quick ? 3 : 10,
    log: (line) => console.error(line),
  });
  console.log(
    `\nFleetLock server benchmark${
      quick ? " (--quick)" : ""
    }: deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs\n`,
  );
  console.log(renderTable(figures, false));
  console.log(`\n${summary(figures)}`);
  Deno.exit(figures.some((f) => f.pass === false) ? 1 : 0);
}
