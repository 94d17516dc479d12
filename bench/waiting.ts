/**
 * Measurement `waiting`: 500 simulated machines (`sim_machine.ts`) wait in
 * the queue of a full semaphore (max 5, every slot held by the benchmark).
 * First nothing changes for a while: etcd's own /metrics count what the
 * waiters send (lease keep-alives included: the full run's window covers
 * every waiter's first keep-alive, 100 s after its join). Then the
 * benchmark frees one slot at a time; each time, the hand-over is timed
 * from the release to the waiter's return from `acquireSlot`, and what the
 * grant cost etcd (requests, watch messages and events sent) is counted
 * until the queue has settled. The waiter that took the slot then shuts
 * down as locksmithd does before rebooting (revoking its lease).
 *
 * The steady rate per waiter is reported in parts, each labelled measured
 * or derived in the table itself: the requests other than keep-alives
 * (measured), the keep-alives (measured in the full run, whose window holds
 * every waiter's first one; derived from `LeaseSession`'s schedule with
 * `--quick`, whose 10 s window holds none), and the 5-minute safety
 * re-check (derived: one Txn per interval, longer than any window here).
 *
 * Targets: at most 2 x max watch messages sent per grant; under 0.02
 * requests per second per waiter in the steady state (the sum of the
 * parts); a freed slot taken within 1 s.
 */

import { openEtcdStore } from "../lib/etcd/open.ts";
import { DEFAULTS } from "../lib/daemon/loop/run.ts";
import { DEFAULT_LEASE_TTL_SECONDS } from "../lib/etcd/queue/lease_session.ts";
import { unlockSlot } from "../lib/semaphore/lock_store.ts";
import {
  delta,
  formatMethods,
  type RequestDelta,
  scrape,
  sumDeltas,
} from "./etcd_counters.ts";
import { fmt, type Report } from "./report.ts";
import { prepareSemaphore, SimMachine } from "./sim_machine.ts";
import { connectionsTo, median, sleep, waitUntil } from "./util.ts";

/** Waiting machines. */
const WAITERS = 500;
/** Slots (all held by the benchmark at first). */
const MAX = 5;
/** A lease keep-alive every this long (LeaseSession's default: a third of the TTL). */
const KEEPALIVE_S = DEFAULT_LEASE_TTL_SECONDS / 3;
/** The safety re-check (one read) when nothing changes. */
const RECHECK_S = DEFAULTS.safetyRecheckMs / 1000;

/** Waits until etcd's watcher count has not moved for `quietMs`. */
async function settle(metricsUrl: string, quietMs: number): Promise<void> {
  let last = await scrape(metricsUrl);
  let since = Date.now();
  const deadline = Date.now() + 60_000;
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new Error("the queue did not settle");
    await sleep(200);
    const now = await scrape(metricsUrl);
    if (now.watchers !== last.watchers || delta(last, now).total > 0) {
      since = Date.now();
    }
    last = now;
  }
}

/**
 * Adds the steady waiting rate per waiter to `report`, part by part, each
 * labelled measured or derived; returns the sum.
 */
function reportSteadyRate(
  report: Report,
  idle: RequestDelta,
  windowS: number,
  quick: boolean,
): number {
  const S = "waiting";
  const perWaiter = (n: number) => n / windowS / WAITERS;
  const keepAlives = idle.byMethod["LeaseKeepAlive"] ?? 0;
  const others = perWaiter(idle.total - keepAlives);
  report.add(
    S,
    `requests per second per waiter, measured over ${fmt(windowS)} s`,
    perWaiter(idle.total),
    "req/s",
  );
  report.add(S, "  of which not keep-alives (measured)", others, "req/s");
  const keepAliveRate = quick ? 1 / KEEPALIVE_S : perWaiter(keepAlives);
  report.add(
    S,
    quick
      ? `keep-alives per waiter: DERIVED, 1 per ${KEEPALIVE_S} s (none in a ${
        fmt(windowS)
      } s window)`
      : `  of which keep-alives (measured: ${
        fmt(keepAlives / WAITERS)
      } per waiter)`,
    keepAliveRate,
    "req/s",
  );
  const recheckRate = 1 / RECHECK_S;
  report.add(
    S,
    `safety re-check per waiter: DERIVED, 1 Txn per ${RECHECK_S} s (longer than the window)`,
    recheckRate,
    "req/s",
  );
  const steady = others + keepAliveRate + recheckRate;
  report.add(
    S,
    `steady requests per second per waiter (${
      quick ? "keep-alives and re-check derived" : "re-check derived"
    })`,
    steady,
    "req/s",
    { op: "<", value: 0.02 },
  );
  return steady;
}

/** Runs the measurement; `quick` waits 10 s instead of a keep-alive period. */
export async function measureWaiting(
  report: Report,
  endpoints: string[],
  metricsUrl: string,
  quick: boolean,
): Promise<void> {
  const S = "waiting";
  const rounds = quick ? 3 : 5;
  report.log(
    `\nwaiting: ${WAITERS} machines wait for a slot (max ${MAX}, all held); then ${rounds} slots are freed one at a time`,
  );
  const group = "bench-waiting";
  const holders = Array.from({ length: MAX }, (_, i) => `bench-holder-${i}`);
  await prepareSemaphore(endpoints, group, MAX, holders);
  const store = await openEtcdStore({ endpoints, timeoutMs: 5_000 }, group);
  const port = Number(new URL(endpoints[0]!).port);
  const baseConnections = connectionsTo(port);
  const warnings: string[] = [];
  const held: { id: string; at: number }[] = [];
  const machines = Array.from({ length: WAITERS }, (_, i) =>
    new SimMachine({
      endpoints,
      group,
      id: `waiter-${String(i).padStart(3, "0")}`,
      onWarning: (line) => warnings.push(line),
    }));
  const t0 = Date.now();
  const running = machines.map(async (m) => {
    if (await m.acquire() !== "held") return;
    held.push({ id: m.run.id, at: performance.now() });
    await m.shutdown();
  });
  try {
    await waitUntil(
      "every machine in the queue",
      () => machines.every((m) => m.queue.state().place !== "out"),
      60_000,
    );
    await settle(metricsUrl, 2_000);
    const joinedS = (Date.now() - t0) / 1000;
    const connections = connectionsTo(port) - baseConnections;
    // The full run's window ends after every waiter's first keep-alive.
    const windowMs = quick
      ? 10_000
      : KEEPALIVE_S * 1000 + 5_000 - (Date.now() - t0);
    const a = await scrape(metricsUrl);
    const w0 = performance.now();
    await sleep(windowMs);
    const b = await scrape(metricsUrl);
    const windowS = (performance.now() - w0) / 1000;
    const idle = delta(a, b);
    report.log(
      `  ${WAITERS} in the queue after ${
        fmt(joinedS)
      } s: ${b.watchers} etcd watchers, ${b.watchStreams} watch streams, ${connections} TCP connections`,
    );
    report.log(
      `  in ${fmt(windowS)} s of waiting: ${idle.total} requests (${
        formatMethods(idle)
      })`,
    );
    report.add(S, "etcd watchers per waiter", b.watchers / WAITERS, "");
    report.add(
      S,
      "TCP connections to etcd per waiter",
      connections / WAITERS,
      "",
    );
    const steady = reportSteadyRate(report, idle, windowS, quick);

    const grants: { ms: number; d: RequestDelta }[] = [];
    for (let r = 0; r < rounds; r++) {
      await store.read(); // a fresh document: the release is one Txn
      const c = await scrape(metricsUrl);
      const freedAt = performance.now();
      await unlockSlot(store, holders[r]!);
      await waitUntil(
        "a waiter takes the freed slot",
        () => held.length > r,
        30_000,
      );
      await settle(metricsUrl, 1_000);
      grants.push({
        ms: held[r]!.at - freedAt,
        d: delta(c, await scrape(metricsUrl)),
      });
    }
    const all = sumDeltas(grants.map((g) => g.d));
    report.log(
      `  ${rounds} hand-overs: taken after ${
        grants.map((g) => fmt(g.ms)).join(", ")
      } ms; per grant ${fmt(all.total / rounds)} requests (${
        formatMethods(all)
      } in all, the release included), ${
        fmt(all.watchSent / rounds)
      } watch messages, ${fmt(all.events / rounds)} events`,
    );
    report.add(
      S,
      `watch messages sent per grant (${WAITERS} waiting, max ${MAX})`,
      all.watchSent / rounds,
      "msg",
      { op: "<=", value: 2 * MAX },
    );
    report.add(S, "watch events sent per grant", all.events / rounds, "events");
    report.add(
      S,
      "etcd requests per grant (release, lock, moving up)",
      all.total / rounds,
      "req",
    );
    report.add(
      S,
      "freed slot taken after (slowest)",
      Math.max(...grants.map((g) => g.ms)),
      "ms",
      { op: "<=", value: 1_000 },
    );
    report.add(
      S,
      "freed slot taken after (median)",
      median(grants.map((g) => g.ms)),
      "ms",
    );
    for (const w of warnings.slice(0, 3)) report.log(`  warning: ${w}`);
    report.detail("waiting", {
      waiters: WAITERS,
      max: MAX,
      joinedS,
      connections,
      watchers: b.watchers,
      windowS,
      idle,
      keepAliveSeconds: KEEPALIVE_S,
      recheckSeconds: RECHECK_S,
      steadyPerWaiter: steady,
      grants,
      warnings: warnings.length,
      firstWarnings: warnings.slice(0, 10),
    });
  } finally {
    await Promise.all(machines.map((m) => m.shutdown()));
    await Promise.all(running);
    await store.close();
  }
}
