/**
 * locksmith's benchmark: starts its own etcd on loopback, measures the lock
 * store, the daemon's waiting, locksmithctl's start-up and locksmithd's
 * memory, prints a table with each target and pass or miss, and writes the
 * same figures as JSON to bench/results.json. See bench/README.md.
 *
 * Usage: `deno run --allow-all bench/bench.ts [--quick] [--only=1,3] [--out=FILE]`
 */

import { Etcd3 } from "etcd3";
import { startEtcd } from "../tests/harness/etcd.ts";
import { startDbus } from "../tests/harness/dbus.ts";
import { keyHistory } from "../tests/harness/history.ts";
import { checkHistory } from "../tests/harness/invariants.ts";
import { programFlags, REPO_ROOT } from "../tests/harness/permissions.ts";
import { daemonEnvironment } from "../tests/harness/machine.ts";
import { etcdClientOptions } from "../lib/etcd/grpc_client.ts";
import { EtcdLockStore } from "../lib/etcd/etcd_lock_store.ts";
import {
  lockSlot,
  type LockStore,
  setMaxSlots,
  unlockSlot,
} from "../lib/semaphore/lock_store.ts";
import { formatSemaphore } from "../lib/semaphore/document.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { NEED_REBOOT } from "../lib/dbus/update_engine.ts";
import {
  ContentionError,
  EtcdUnavailableError,
  SemaphoreRefusedError,
} from "../lib/common/errors.ts";
import {
  delta,
  formatMethods,
  type RequestDelta,
  scrape,
  sumDeltas,
} from "./etcd_counters.ts";
import {
  openMachineStore,
  takeSlotLikeLocksmithd,
  TIMEOUT_MS,
} from "./machine.ts";

// ---------------------------------------------------------------- options

const args = Deno.args;
const QUICK = args.includes("--quick");
const ONLY = new Set(
  (args.find((a) => a.startsWith("--only="))?.slice(7) ?? "1,2,3,4,5")
    .split(",").map((s) => s.trim()),
);
const OUT = args.find((a) => a.startsWith("--out="))?.slice(6) ??
  `${REPO_ROOT}bench/results.json`;
for (const a of args) {
  if (a !== "--quick" && !/^--(only|out)=/.test(a)) {
    console.error(
      `bench.ts: unknown argument ${a}\nusage: bench.ts [--quick] [--only=1,2,3,4,5] [--out=FILE]`,
    );
    Deno.exit(2);
  }
}

/** Sizes of each measurement; `--quick` shortens only the long waits and repetitions. */
const CONFIG = {
  uncontendedOps: 1_000,
  contentionClients: 200,
  contentionMax: 5,
  contentionHoldMs: 10,
  waiters: 500,
  waiterProcesses: 5,
  waitingSeconds: QUICK ? 10 : 60,
  handoverRounds: QUICK ? 3 : 5,
  startupRuns: QUICK ? 10 : 20,
  memorySeconds: QUICK ? 10 : 60,
  idleSeconds: QUICK ? 3 : 10,
} as const;

// ---------------------------------------------------------------- figures

type Op = "<=" | "<" | "==";
interface Target {
  readonly op: Op;
  readonly value: number;
}
interface Figure {
  readonly section: string;
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly target?: Target;
  readonly pass?: boolean;
}

const figures: Figure[] = [];
const details: Record<string, unknown> = {};

function check(value: number, target: Target): boolean {
  if (target.op === "<=") return value <= target.value;
  if (target.op === "<") return value < target.value;
  return value === target.value;
}

function figure(
  section: string,
  name: string,
  value: number,
  unit: string,
  target?: Target,
): void {
  const f: Figure = target
    ? { section, name, value, unit, target, pass: check(value, target) }
    : { section, name, value, unit };
  figures.push(f);
  const t = target
    ? `  (target ${target.op} ${target.value} ${unit}: ${
      f.pass ? "pass" : "MISS"
    })`
    : "";
  log(`  ${name}: ${fmt(value)} ${unit}${t}`);
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 5);
}

function log(line: string): void {
  console.error(line);
}

// ---------------------------------------------------------------- helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const rank = Math.min(
    sorted.length,
    Math.max(1, Math.ceil(q * sorted.length)),
  );
  return sorted[rank - 1]!;
}
const median = (v: readonly number[]) => quantile(v, 0.5);
const p99 = (v: readonly number[]) => quantile(v, 0.99);
const round = (v: number, digits = 3) => Number(v.toFixed(digits));

/** Reads `/proc/<pid>/status` memory lines, in KiB. */
function procMemory(pid: number): Record<string, number> {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  const out: Record<string, number> = {};
  for (const name of ["VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"]) {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    if (m) out[name] = Number(m[1]);
  }
  return out;
}

/** Established TCP connections whose remote end is 127.0.0.1:`port`. */
function connectionsTo(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let n = 0;
  for (const line of Deno.readTextFileSync("/proc/net/tcp").split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols[2] === `0100007F:${hex}` && cols[3] === "01") n++;
  }
  return n;
}

/** Lines of a child's output stream, handed to `onLine` as they come. */
async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      onLine(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  }
  if (buffer) onLine(buffer);
}

async function waitUntil(
  what: string,
  condition: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`${what}: timed out after ${timeoutMs} ms`);
    }
    await sleep(20);
  }
}

async function version(cmd: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).split("\n")[0]!.trim();
  } catch {
    return "unknown";
  }
}

/** Wraps a store to count what the daemon loop asks of it. */
class CountingStore implements LockStore {
  updates = 0;
  wakes = 0;
  casRetries = 0;
  constructor(readonly inner: EtcdLockStore) {}
  get key(): string {
    return this.inner.key;
  }
  get revision(): number {
    return this.inner.revision;
  }
  read() {
    return this.inner.read();
  }
  joinQueue(id: string) {
    return this.inner.joinQueue(id);
  }
  leaveQueue(id: string) {
    return this.inner.leaveQueue(id);
  }
  waitersAhead() {
    return this.inner.waitersAhead();
  }
  readWaitersAhead(limit: number) {
    return this.inner.readWaitersAhead(limit);
  }
  async update(
    change: Parameters<LockStore["update"]>[0],
    options?: Parameters<LockStore["update"]>[1],
  ) {
    this.updates++;
    const outcome = await this.inner.update(change, options);
    this.casRetries += outcome.attempts - 1;
    return outcome;
  }
  async waitForChange(
    revision: number,
    timeoutMs: number,
    signal?: AbortSignal,
  ) {
    const result = await this.inner.waitForChange(revision, timeoutMs, signal);
    if (result === "changed") this.wakes++;
    return result;
  }
  peek() {
    return this.inner.peek();
  }
  readRaw() {
    return this.inner.readRaw();
  }
  replace(revision: number, doc: Parameters<LockStore["replace"]>[1]) {
    return this.inner.replace(revision, doc);
  }
  close() {
    return this.inner.close();
  }
}

// ------------------------------------------- 1. uncontended lock and unlock

async function uncontended(
  endpoints: string[],
  metricsUrl: string,
): Promise<void> {
  const S = "1 uncontended";
  const N = CONFIG.uncontendedOps;
  const BLOCK = 100;
  log(
    `\n1. uncontended lock + unlock by one client, ${N} times, vs ${N} raw etcd3 Txns`,
  );
  const options = { endpoints, timeoutMs: TIMEOUT_MS };
  const client = new Etcd3(await etcdClientOptions(options));
  const key = semaphoreKey("bench-uncontended");
  const store = new EtcdLockStore(client, key, options);
  const id = "0123456789abcdef0123456789abcdef";
  const rawKey = "bench/raw-txn";
  const rawValue = formatSemaphore({ semaphore: 0, max: 1, holders: [id] });
  let rawRevision = 0;
  const rawTxn = async () => {
    const res = await client.if(rawKey, "Mod", "==", rawRevision)
      .then(client.put(rawKey).value(rawValue))
      .else(client.get(rawKey))
      .commit();
    if (!res.succeeded) throw new Error("raw Txn: guard failed");
    rawRevision = Number(res.header.revision);
  };
  const lockMs: number[] = [];
  const unlockMs: number[] = [];
  const rawMs: number[] = [];
  const timed = async (into: number[], op: () => Promise<unknown>) => {
    const t = performance.now();
    await op();
    into.push(performance.now() - t);
  };
  try {
    const s0 = await scrape(metricsUrl);
    await timed(lockMs, () => lockSlot(store, id));
    const s1 = await scrape(metricsUrl);
    await timed(unlockMs, () => unlockSlot(store, id));
    const s2 = await scrape(metricsUrl);
    const firstLock = delta(s0, s1);
    const firstUnlock = delta(s1, s2);
    // Interleaved blocks, so that both sides meet the same noise.
    const pairDeltas: RequestDelta[] = [];
    const rawDeltas: RequestDelta[] = [];
    for (let done = 1, raw = 0; done < N || raw < N;) {
      const a = await scrape(metricsUrl);
      const rawBlock = Math.min(BLOCK, N - raw);
      for (let i = 0; i < rawBlock; i++) await timed(rawMs, rawTxn);
      raw += rawBlock;
      const b = await scrape(metricsUrl);
      const pairBlock = Math.min(BLOCK - (done === 1 ? 1 : 0), N - done);
      for (let i = 0; i < pairBlock; i++) {
        await timed(lockMs, () => lockSlot(store, id));
        await timed(unlockMs, () => unlockSlot(store, id));
      }
      done += pairBlock;
      const c = await scrape(metricsUrl);
      rawDeltas.push(delta(a, b));
      pairDeltas.push(delta(b, c));
    }
    const pairs = sumDeltas(pairDeltas);
    const raws = sumDeltas(rawDeltas);
    const steadyOps = 2 * (N - 1);
    log(
      `  first lock: ${firstLock.total} requests (${
        formatMethods(firstLock)
      }); first unlock: ${firstUnlock.total} (${formatMethods(firstUnlock)})`,
    );
    log(
      `  after the first: ${pairs.total} requests for ${steadyOps} ops (${
        formatMethods(pairs)
      }); raw baseline: ${raws.total} for ${N} Txns`,
    );
    figure(
      S,
      "etcd requests per lock or unlock, after the first",
      pairs.total / steadyOps,
      "req/op",
      { op: "<=", value: 1 },
    );
    const rawMedian = median(rawMs);
    const rawP99 = p99(rawMs);
    figure(S, "raw etcd3 Txn latency, median", rawMedian, "ms");
    figure(S, "raw etcd3 Txn latency, p99", rawP99, "ms");
    figure(S, "lock latency, median", median(lockMs), "ms");
    figure(S, "lock latency, p99", p99(lockMs), "ms");
    figure(S, "unlock latency, median", median(unlockMs), "ms");
    figure(S, "unlock latency, p99", p99(unlockMs), "ms");
    figure(S, "lock median / raw Txn median", median(lockMs) / rawMedian, "x", {
      op: "<=",
      value: 1.3,
    });
    figure(
      S,
      "unlock median / raw Txn median",
      median(unlockMs) / rawMedian,
      "x",
      { op: "<=", value: 1.3 },
    );
    figure(S, "lock p99 / raw Txn p99", p99(lockMs) / rawP99, "x", {
      op: "<=",
      value: 1.3,
    });
    figure(S, "unlock p99 / raw Txn p99", p99(unlockMs) / rawP99, "x", {
      op: "<=",
      value: 1.3,
    });
    details.uncontended = {
      ops: N,
      firstLock,
      firstUnlock,
      steady: pairs,
      rawBaseline: raws,
      lockMs: {
        median: median(lockMs),
        p90: quantile(lockMs, 0.9),
        p99: p99(lockMs),
        max: Math.max(...lockMs),
      },
      unlockMs: {
        median: median(unlockMs),
        p90: quantile(unlockMs, 0.9),
        p99: p99(unlockMs),
        max: Math.max(...unlockMs),
      },
      rawTxnMs: {
        median: rawMedian,
        p90: quantile(rawMs, 0.9),
        p99: rawP99,
        max: Math.max(...rawMs),
      },
    };
  } finally {
    await store.close();
  }
}

// ------------------------------------------------------------ 2. contention

interface ContentionRun {
  /** Name in the table. */
  readonly label: string;
  /** Whether the 4 requests per grant target applies. */
  readonly withTarget: boolean;
}

async function contention(
  endpoints: string[],
  metricsUrl: string,
  run: ContentionRun,
): Promise<void> {
  const { label, withTarget } = run;
  const S = `2 contention (${label})`;
  const { contentionClients: N, contentionMax: MAX, contentionHoldMs: HOLD } =
    CONFIG;
  log(
    `\n2. contention, ${label}: ${N} clients (own connections, real locksmithd loop), max = ${MAX}, each locks once, holds ${HOLD} ms, unlocks`,
  );
  const key = semaphoreKey(`bench-contention-${label.replace(/\W+/g, "-")}`);
  const setup = await openMachineStore(endpoints, key);
  await setMaxSlots(setup, MAX);
  await setup.close();
  const stores = await Promise.all(
    Array.from(
      { length: N },
      async () =>
        new CountingStore(
          await openMachineStore(endpoints, key, true),
        ),
    ),
  );
  const waited = new Set<string>();
  const warnings: string[] = [];
  const grantMs: number[] = [];
  let unlockFailures = 0;
  let unlockTimeouts = 0;
  let lateUnlocks = 0;
  // Event-loop lag of this process, which hosts every client: a slow loop
  // makes every client's view of the key staler than a machine's would be.
  const lags: number[] = [];
  let tick = performance.now();
  const lagTimer = setInterval(() => {
    const now = performance.now();
    lags.push(Math.max(0, now - tick - 20));
    tick = now;
  }, 20);
  try {
    const a = await scrape(metricsUrl);
    const t0 = performance.now();
    await Promise.all(stores.map(async (store, i) => {
      const id = `contender-${String(i).padStart(3, "0")}`;
      const held = await takeSlotLikeLocksmithd(store, id, {
        onWaiting: () => waited.add(id),
        onWarning: (m) => warnings.push(m),
      });
      if (!held) throw new Error(`${id} did not take a slot`);
      grantMs.push(performance.now() - t0);
      await sleep(HOLD);
      let timedOut = false;
      for (let attempt = 1;; attempt++) {
        try {
          await unlockSlot(store, id);
          break;
        } catch (error) {
          if (error instanceof SemaphoreRefusedError && timedOut) {
            // The attempt that timed out kept running and committed later.
            lateUnlocks++;
            break;
          }
          if (error instanceof EtcdUnavailableError) {
            timedOut = true;
            unlockTimeouts++;
          }
          if (error instanceof SemaphoreRefusedError || attempt >= 20) {
            unlockFailures++;
            warnings.push(`unlock ${id}: ${error}`);
            break;
          }
          if (!(error instanceof ContentionError)) await sleep(100 * attempt);
        }
      }
    }));
    const drainMs = performance.now() - t0;
    clearInterval(lagTimer);
    const b = await scrape(metricsUrl);
    const d = delta(a, b);
    const history = await keyHistory(endpoints, key);
    const report = checkHistory(key, history);
    const txn = d.byMethod["Txn"] ?? 0;
    const updates = stores.reduce((s, x) => s + x.updates, 0);
    const wakes = stores.reduce((s, x) => s + x.wakes, 0);
    const casRetries = stores.reduce((s, x) => s + x.casRetries, 0);
    log(
      `  ${d.total} requests (${formatMethods(d)}), ${d.puts} writes, so ${
        txn - d.puts
      } Txns lost their guard; ${d.watchStreams} watch streams, ${d.watchSent} watch messages sent`,
    );
    log(
      `  ${waited.size} of ${N} clients waited; ${updates} lock/unlock calls (${
        updates - 2 * N
      } lock attempts refused), ${wakes} wake-ups, ${casRetries} CAS retries inside successful calls; ${warnings.length} warnings`,
    );
    const lostInRefused = txn - d.puts - casRetries;
    log(
      `  per grant: ${
        fmt((d.byMethod["Range"] ?? 0) / N)
      } Range (first look) + ${
        fmt((d.byMethod["Watch"] ?? 0) / N)
      } watch create + ${fmt(d.puts / N)} Txn that wrote (lock, unlock) + ${
        fmt(casRetries / N)
      } Txn retried inside successful lock/unlock + ${
        fmt(lostInRefused / N)
      } Txn lost in ${fmt((updates - 2 * N) / N)} refused lock attempts (${
        fmt(lostInRefused / Math.max(1, updates - 2 * N))
      } Txn each)`,
    );
    const lockTimeouts = warnings.filter((w) =>
      w.startsWith("cannot take a slot") && w.includes("did not answer")
    ).length;
    log(
      `  etcd deadline (${
        TIMEOUT_MS / 1000
      } s) hit by ${lockTimeouts} lock and ${unlockTimeouts} unlock attempts (${lateUnlocks} of those unlocks committed after their timeout); event-loop lag of the client process: median ${
        fmt(median(lags))
      } ms, p99 ${fmt(p99(lags))} ms, max ${fmt(Math.max(...lags))} ms`,
    );
    for (const w of warnings.slice(0, 3)) {
      log(`  warning: ${w}`);
    }
    figure(S, "wall time to drain", drainMs / 1000, "s");
    figure(
      S,
      "etcd requests per granted slot",
      d.total / N,
      "req/grant",
      withTarget ? { op: "<=", value: 4 } : undefined,
    );
    figure(
      S,
      "largest number of holders in the key history",
      report.maxHolders,
      "holders",
      { op: "==", value: MAX },
    );
    figure(
      S,
      "invariant violations in the key history",
      report.violations.length,
      "",
      { op: "==", value: 0 },
    );
    details[`contention ${label}`] = {
      clients: N,
      max: MAX,
      holdMs: HOLD,
      handoverMs: 10_000,
      drainMs,
      requests: d,
      requestsPerGrant: Object.fromEntries(
        Object.entries(d.byMethod).map(([m, v]) => [m, round(v / N)]),
      ),
      guardFailures: txn - d.puts,
      txnLostInRefusedAttempts: lostInRefused,
      clientsThatWaited: waited.size,
      updateCalls: updates,
      refusedLockAttempts: updates - 2 * N,
      wakeUps: wakes,
      casRetries,
      lockTimeouts,
      unlockTimeouts,
      lateUnlocks,
      unlockFailures,
      eventLoopLagMs: {
        median: median(lags),
        p99: p99(lags),
        max: Math.max(...lags),
      },
      warnings: warnings.length,
      grantMs: {
        first: Math.min(...grantMs),
        median: median(grantMs),
        last: Math.max(...grantMs),
      },
      history: {
        versions: report.versions,
        maxHolders: report.maxHolders,
        violations: report.violations.slice(0, 10),
      },
    };
  } finally {
    await Promise.all(stores.map((s) => s.close().catch(() => {})));
  }
}

// ------------------------------------------------------ 3. waiting cost

async function waiting(
  endpoints: string[],
  metricsUrl: string,
  clientPort: number,
): Promise<void> {
  const S = "3 waiting";
  const { waiters: W, waiterProcesses: P, waitingSeconds: SECONDS } = CONFIG;
  log(
    `\n3. waiting cost: ${W} waiters (${P} processes x ${
      W / P
    }, each waiter its own etcd client and connections, real locksmithd loop) on a full semaphore for ${SECONDS} s`,
  );
  const key = semaphoreKey("bench-waiting");
  const holder = await openMachineStore(endpoints, key);
  await setMaxSlots(holder, 1);
  await lockSlot(holder, "holder-0");
  const baseConnections = connectionsTo(clientPort);
  const waitingIds = new Set<string>();
  const held: { id: string; at: number }[] = [];
  const warnings: string[] = [];
  const children: Deno.ChildProcess[] = [];
  const pipes: Promise<void>[] = [];
  try {
    for (let p = 0; p < P; p++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-q",
          "-A",
          `${REPO_ROOT}bench/waiter_worker.ts`,
          endpoints.join(","),
          key,
          String(W / P),
          `w${p}`,
        ],
        cwd: REPO_ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      children.push(child);
      pipes.push(readLines(child.stdout, (line) => {
        const [kind, id, rest] = line.split(" ", 3);
        if (kind === "waiting" && id) waitingIds.add(id);
        else if (kind === "held" && id) held.push({ id, at: Number(rest) });
        else if (kind === "warn") warnings.push(line);
      }));
    }
    const tStart = Date.now();
    await waitUntil("all waiters waiting", () => waitingIds.size >= W, 120_000);
    const setupS = (Date.now() - tStart) / 1000;
    // Let every waiter finish creating its watch.
    await sleep(2_000);
    const connections = connectionsTo(clientPort) - baseConnections;
    const a = await scrape(metricsUrl);
    const t0 = performance.now();
    await sleep(SECONDS * 1000);
    const b = await scrape(metricsUrl);
    const seconds = (performance.now() - t0) / 1000;
    const idle = delta(a, b);
    const perWaiter = idle.total / seconds / W;
    log(
      `  ${W} waiting after ${
        fmt(setupS)
      } s; ${connections} TCP connections to etcd; etcd watchers ${b.watchers}, watch streams ${b.watchStreams}`,
    );
    log(
      `  in ${fmt(seconds)} s: ${idle.total} requests (${
        formatMethods(idle)
      }), ${held.length} slots taken, ${warnings.length} warnings`,
    );
    for (const w of warnings.slice(0, 5)) log(`  ${w}`);
    figure(
      S,
      "etcd requests per second per waiter (measured)",
      perWaiter,
      "req/s",
      { op: "<", value: 0.02 },
    );
    // locksmithd re-checks once per 5 min without a change (one Range each): outside a 60 s window.
    const withRecheck = perWaiter + 1 / 300;
    figure(
      S,
      "same, with the 5-min safety re-check amortised (+1/300)",
      withRecheck,
      "req/s",
      { op: "<", value: 0.02 },
    );

    // Free one slot, several times; time until a waiter holds it. The bench
    // unlocks each new holder itself (any client may unlock any id).
    const rounds: { ms: number; requests: RequestDelta; id: string }[] = [];
    let current = "holder-0";
    for (let r = 0; r < CONFIG.handoverRounds; r++) {
      const c = await scrape(metricsUrl);
      const freedAt = Date.now();
      await unlockSlot(holder, current);
      await waitUntil(
        "a waiter takes the freed slot",
        () => held.length > r,
        30_000,
      );
      const taken = held[r]!;
      await sleep(2_000); // let every waiter settle before counting
      const d = await scrape(metricsUrl);
      rounds.push({
        ms: taken.at - freedAt,
        requests: delta(c, d),
        id: taken.id,
      });
      current = taken.id;
    }
    const handoverMs = median(rounds.map((x) => x.ms));
    const handoverRequests = median(rounds.map((x) => x.requests.total));
    log(
      `  freed one slot ${rounds.length} times: taken after ${
        rounds.map((x) => fmt(x.ms)).join(", ")
      } ms; each hand-over cost ${
        rounds.map((x) => x.requests.total).join(", ")
      } requests (${
        formatMethods(sumDeltas(rounds.map((x) => x.requests)))
      } in all) and ${
        fmt(median(rounds.map((x) => x.requests.watchSent)))
      } watch messages sent (median)`,
    );
    figure(
      S,
      "freed slot taken by a waiter after (median of hand-overs)",
      handoverMs / 1000,
      "s",
      { op: "<=", value: 1 },
    );
    figure(
      S,
      "freed slot taken by a waiter after (slowest hand-over)",
      Math.max(...rounds.map((x) => x.ms)) / 1000,
      "s",
      { op: "<=", value: 1 },
    );
    figure(
      S,
      `etcd requests per hand-over to 1 of ~${W} waiters (incl. the unlock; median)`,
      handoverRequests,
      "req",
    );
    details.waiting = {
      waiters: W,
      processes: P,
      perProcess: W / P,
      setupSeconds: setupS,
      tcpConnectionsToEtcd: connections,
      etcdWatchers: b.watchers,
      etcdWatchStreams: b.watchStreams,
      seconds,
      requests: idle,
      requestsPerSecondPerWaiter: perWaiter,
      withSafetyRecheck: withRecheck,
      handoverMs,
      handoverRequests,
      handovers: rounds,
      slotsTaken: held.length,
      warnings: warnings.length,
    };
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
    }
    await Promise.all(children.map((c) => c.status));
    await Promise.all(pipes);
    await holder.close();
  }
}

// ------------------------------------------------- 4. locksmithctl start-up

async function timeRun(
  cmd: string,
  cmdArgs: string[],
  env: Record<string, string> = {},
): Promise<{ ms: number; stdout: string; code: number; stderr: string }> {
  const t = performance.now();
  const out = await new Deno.Command(cmd, {
    args: cmdArgs,
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t;
  const dec = new TextDecoder();
  return {
    ms,
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

async function startup(endpoint: string): Promise<void> {
  const S = "4 ctl start-up";
  const RUNS = CONFIG.startupRuns;
  const deno = Deno.execPath();
  const key = semaphoreKey("");
  log(
    `\n4. locksmithctl status cold start vs etcdctl get, ${RUNS} runs each, interleaved`,
  );
  {
    const options = { endpoints: [endpoint], timeoutMs: TIMEOUT_MS };
    const store = new EtcdLockStore(
      new Etcd3(await etcdClientOptions(options)),
      key,
      options,
    );
    await lockSlot(store, "0123456789abcdef0123456789abcdef").catch(() => {});
    await store.close();
  }
  const ctlArgs = [
    "run",
    "-q",
    "-P=ctl",
    "ctl.ts",
    "status",
    "--endpoint",
    endpoint,
  ];
  const etcdctlArgs = ["--endpoints", endpoint, "get", key];
  const variants: Record<string, [string, string[], Record<string, string>?]> =
    {
      "locksmithctl status": [deno, ctlArgs],
      "etcdctl get": ["etcdctl", etcdctlArgs, { ETCDCTL_API: "3" }],
      "deno, empty program": [deno, ["run", "-q", "bench/startup/noop.ts"]],
      "locksmithctl --version (no etcd import)": [deno, [
        "run",
        "-q",
        "-P=ctl",
        "ctl.ts",
        "--version",
      ]],
      "locksmithctl status, --no-code-cache": [deno, [
        "run",
        "-q",
        "-P=ctl",
        "--no-code-cache",
        ...ctlArgs.slice(3),
      ]],
      "prototype: status over etcd's JSON gateway (fetch, no gRPC)": [
        deno,
        [
          "run",
          "-q",
          "--allow-net",
          "bench/startup/gateway_status.ts",
          endpoint,
          key,
        ],
      ],
    };
  const times: Record<string, number[]> = Object.fromEntries(
    Object.keys(variants).map((k) => [k, []]),
  );
  // Warm the caches (transpile, V8 code cache) once, as on a machine that ran it before.
  for (const [name, [cmd, a, env]] of Object.entries(variants)) {
    const r = await timeRun(cmd, a, env);
    if (r.code !== 0) {
      throw new Error(`${name} failed (${r.code}): ${r.stderr}`);
    }
  }
  for (let i = 0; i < RUNS; i++) {
    for (const [name, [cmd, a, env]] of Object.entries(variants)) {
      const r = await timeRun(cmd, a, env);
      if (r.code !== 0) {
        throw new Error(`${name} failed (${r.code}): ${r.stderr}`);
      }
      times[name]!.push(r.ms);
    }
  }
  const med = Object.fromEntries(
    Object.entries(times).map(([k, v]) => [k, median(v)]),
  );
  const ctl = med["locksmithctl status"]!;
  const etcdctl = med["etcdctl get"]!;
  figure(S, "locksmithctl status, median wall time", ctl, "ms");
  figure(S, "etcdctl get, median wall time", etcdctl, "ms");
  figure(S, "locksmithctl status / etcdctl get", ctl / etcdctl, "x", {
    op: "<=",
    value: 6,
  });
  for (const [k, v] of Object.entries(med)) {
    if (k === "locksmithctl status" || k === "etcdctl get") continue;
    figure(S, `${k}, median`, v, "ms");
  }
  figure(
    S,
    "prototype JSON gateway status / etcdctl get",
    med["prototype: status over etcd's JSON gateway (fetch, no gRPC)"]! /
      etcdctl,
    "x",
  );

  // Where the time goes: phases timed inside fresh processes.
  const PHASE_RUNS = Math.max(5, Math.round(RUNS / 2));
  const descriptor = await Deno.makeTempFile({
    prefix: "locksmith-bench-rpc-",
    suffix: ".json",
  });
  const phaseArgs = (
    mode: string[],
  ) => [
    "run",
    "-q",
    "-A",
    "--no-lock",
    "bench/startup/import_phases.ts",
    ...mode,
  ];
  const phases: Record<string, Record<string, number[]>> = {};
  try {
    const w = await timeRun(deno, phaseArgs(["write-json", descriptor]));
    if (w.code !== 0) throw new Error(`write-json failed: ${w.stderr}`);
    const modes: Record<string, string[]> = {
      chain: ["chain", endpoint, key],
      parse: ["parse"],
      json: ["json", descriptor],
    };
    for (let i = 0; i < PHASE_RUNS; i++) {
      for (const [mode, a] of Object.entries(modes)) {
        const r = await timeRun(deno, phaseArgs(a));
        if (r.code !== 0) {
          throw new Error(`import_phases ${mode} failed: ${r.stderr}`);
        }
        const parsed = JSON.parse(r.stdout) as Record<string, number>;
        phases[mode] ??= {};
        for (const [k, v] of Object.entries(parsed)) {
          (phases[mode]![k] ??= []).push(v);
        }
        (phases[mode]!["(whole process)"] ??= []).push(r.ms);
      }
    }
  } finally {
    await Deno.remove(descriptor).catch(() => {});
  }
  const phaseMedians = Object.fromEntries(
    Object.entries(phases).map((
      [mode, ph],
    ) => [
      mode,
      Object.fromEntries(
        Object.entries(ph).map(([k, v]) => [k, round(median(v), 1)]),
      ),
    ]),
  );
  log(
    '  where the time of `import("etcd3")` + first request goes (medians, ms, in fresh processes):',
  );
  for (const [k, v] of Object.entries(phaseMedians.chain ?? {})) {
    log(`    ${fmt(v).padStart(7)}  ${k}`);
  }
  const parseMs =
    phaseMedians.parse?.["loadSync(rpc.proto): parse + package definition"] ??
      NaN;
  const jsonMs =
    phaseMedians.json?.["fromJSON(descriptor): package definition only"] ?? NaN;
  log(
    `    rpc.proto at import: loadSync ${
      fmt(parseMs)
    } ms; from a pre-generated JSON descriptor ${fmt(jsonMs)} ms`,
  );

  // One CPU profile of the real command, self time by origin.
  const profDir = await Deno.makeTempDir({ prefix: "locksmith-bench-prof-" });
  let profile: Record<string, number> = {};
  try {
    const r = await timeRun(deno, [
      "run",
      "-q",
      "-P=ctl",
      `--cpu-prof`,
      `--cpu-prof-dir=${profDir}`,
      ...ctlArgs.slice(3),
    ]);
    if (r.code === 0) {
      for (const entry of Deno.readDirSync(profDir)) {
        profile = selfTimeByOrigin(
          JSON.parse(Deno.readTextFileSync(`${profDir}/${entry.name}`)),
        );
      }
    }
  } catch (error) {
    log(`  (cpu profile failed: ${error})`);
  } finally {
    await Deno.remove(profDir, { recursive: true }).catch(() => {});
  }
  log("  CPU profile of one `locksmithctl status`, self time by origin (ms):");
  for (const [k, v] of Object.entries(profile).slice(0, 10)) {
    log(`    ${fmt(v).padStart(7)}  ${k}`);
  }
  details.startup = {
    runs: RUNS,
    medianMs: med,
    allMs: times,
    phases: phaseMedians,
    cpuProfileSelfMs: profile,
  };
}

interface CpuProfile {
  nodes: { id: number; callFrame: { url: string; functionName: string } }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time of a V8 CPU profile, grouped by npm package, Deno internals or own code. */
function selfTimeByOrigin(p: CpuProfile): Record<string, number> {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const out: Record<string, number> = {};
  p.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const { url, functionName } = node.callFrame;
    let origin: string;
    const pkg = /node_modules\/\.deno\/([^/]+)\//.exec(url)?.[1];
    if (pkg) origin = `npm ${pkg.replace(/^@?([^+]+)\+/, "@$1/")}`;
    else if (url.startsWith("ext:deno_node") || url.startsWith("node:")) {
      origin = "Deno Node compat (ext:deno_node)";
    } else if (url.startsWith("ext:")) origin = "Deno runtime JS (ext:)";
    else if (url.startsWith("file://")) origin = "locksmith TypeScript";
    else if (functionName.startsWith("(")) origin = functionName;
    else origin = `native: ${functionName}`;
    out[origin] = (out[origin] ?? 0) + (p.timeDeltas[i] ?? 0) / 1000;
  });
  return Object.fromEntries(
    Object.entries(out).sort((a, b) => b[1] - a[1]).map((
      [k, v],
    ) => [k, round(v, 1)]),
  );
}

// ---------------------------------------------------------- 5. memory

/** V8 flags tried on locksmithd, each in its own process beside the plain one. */
const V8_VARIANTS = Deno.env.get("BENCH_V8_VARIANTS")?.split(" ") ?? [
  "--lite-mode,--max-semi-space-size=1",
  "--max-old-space-size=16",
];

/**
 * Waits until every daemon has exited or logged `text`; on time-out the error
 * shows each daemon's last lines.
 */
async function untilEveryDaemonLogs(
  daemons: readonly { name: string; lines: string[]; exitCode?: number }[],
  what: string,
  text: string,
): Promise<void> {
  await waitUntil(
    what,
    () =>
      daemons.every((p) =>
        p.exitCode !== undefined || p.lines.some((l) => l.includes(text))
      ),
    60_000,
  ).catch((error) => {
    throw new Error(
      `${error.message}\n${
        daemons.map((p) => `${p.name}:\n  ${p.lines.slice(-5).join("\n  ")}`)
          .join("\n")
      }`,
    );
  });
}

async function memory(
  endpoints: string[],
  metricsUrl: string,
): Promise<void> {
  const S = "5 memory";
  const SECONDS = CONFIG.memorySeconds;
  log(
    `\n5. locksmithd memory: waiting for a slot with a D-Bus connection open, after ${SECONDS} s`,
  );
  const group = "bench-memory";
  const key = semaphoreKey(group);
  const holder = await openMachineStore(endpoints, key);
  await setMaxSlots(holder, 1);
  await lockSlot(holder, "other-holder");
  const bus = await startDbus();
  const dir = await Deno.makeTempDir({ prefix: "locksmith-bench-mem-" });
  await Deno.writeTextFile(`${dir}/update.conf`, "");
  // The daemon as `deno task daemon` runs it (permission set and V8 flags),
  // plus the temp dirs; the variants below replace the V8 flags.
  const flags = programFlags("daemon", {
    read: [dir, bus.dir],
    write: [dir, bus.dir],
  });
  const bare = flags.filter((f) => !f.startsWith("--v8-flags="));
  const variants: Record<string, { args: string[]; daemon: boolean }> = {
    "locksmithd (daemon permission set)": {
      args: [...flags, "daemon.ts"],
      daemon: true,
    },
    "locksmithd without V8 flags": {
      args: [...bare, "daemon.ts"],
      daemon: true,
    },
    ...Object.fromEntries(V8_VARIANTS.map((v8) => [
      `locksmithd, --v8-flags=${v8}`,
      { args: [...bare, `--v8-flags=${v8}`, "daemon.ts"], daemon: true },
    ])),
    "locksmithd in a wrapper reporting V8 heap": {
      args: [...bare, "bench/memory/daemon_heap_report.ts"],
      daemon: true,
    },
    "deno, empty program that stays up": {
      args: ["-q", "-A", "bench/memory/probe.ts", "idle"],
      daemon: false,
    },
    "deno + etcd3 client with a watch open": {
      args: [
        "-q",
        "-A",
        "bench/memory/probe.ts",
        "etcd3",
        endpoints.join(","),
        key,
      ],
      daemon: false,
    },
    "deno + prototype: same read and watch over the JSON gateway (fetch)": {
      args: [
        "-q",
        "-A",
        "bench/memory/probe.ts",
        "gateway-watch",
        endpoints.join(","),
        key,
      ],
      daemon: false,
    },
    "deno + dbus-next on the system bus": {
      args: ["-q", "-A", "bench/memory/probe.ts", "dbus"],
      daemon: false,
    },
  };
  type Proc = {
    name: string;
    child: Deno.ChildProcess;
    lines: string[];
    heap?: Record<string, number>;
    pipes: Promise<void>[];
    exitCode?: number;
  };
  const procs: Proc[] = [];
  let n = 0;
  const spawn = (name: string, v: { args: string[]; daemon: boolean }) => {
    {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...v.args,
          ...(v.daemon ? ["--config", `${dir}/update.conf`] : []),
        ],
        cwd: REPO_ROOT,
        clearEnv: true,
        env: daemonEnvironment(bus, {
          LOCKSMITHD_MACHINE_ID: `bench-memory-${n++}`,
          LOCKSMITHD_ENDPOINT: endpoints.join(","),
          LOCKSMITHD_GROUP: group,
          REBOOT_STRATEGY: "etcd-lock",
          LOCKSMITHD_LOGIN_DELAY: "0",
          LOCKSMITHD_REBOOT_SENTINEL: `${dir}/reboot-required`,
        }),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const proc: Proc = { name, child, lines: [], pipes: [] };
      child.status.then((s) => proc.exitCode = s.code);
      proc.pipes.push(readLines(child.stderr, (l) => proc.lines.push(l)));
      proc.pipes.push(readLines(child.stdout, (l) => {
        if (l.startsWith("{")) proc.heap = JSON.parse(l);
        else proc.lines.push(l);
      }));
      procs.push(proc);
    }
  };
  try {
    // The daemons first, alone, to count what starting and idling costs etcd.
    const s0 = await scrape(metricsUrl);
    for (const [name, v] of Object.entries(variants)) {
      if (v.daemon) spawn(name, v);
    }
    const daemons = [...procs];
    await untilEveryDaemonLogs(
      daemons,
      "every locksmithd waits for a reboot to be needed",
      "waiting for a reboot to be needed",
    );
    await sleep(2_000); // the start-up check of a held slot runs beside that
    const s1 = await scrape(metricsUrl);
    await sleep(CONFIG.idleSeconds * 1000);
    const s2 = await scrape(metricsUrl);
    const start = delta(s0, s1);
    const idle = delta(s1, s2);
    log(
      `  ${daemons.length} locksmithd started (no reboot needed yet): ${start.total} requests (${
        formatMethods(start)
      }), ${start.watchStreams} watch streams; then idle for ${CONFIG.idleSeconds} s: ${idle.total} requests`,
    );
    figure(
      S,
      "etcd requests per locksmithd start (no slot held)",
      start.total / daemons.length,
      "req",
    );
    figure(
      S,
      "etcd requests per second per idle locksmithd",
      idle.total / daemons.length / CONFIG.idleSeconds,
      "req/s",
    );
    for (const [name, v] of Object.entries(variants)) {
      if (!v.daemon) spawn(name, v);
    }
    await bus.updateEngine.emit({ currentOperation: NEED_REBOOT });
    await untilEveryDaemonLogs(
      daemons,
      "every locksmithd waits for a slot",
      "no slot free",
    );
    await sleep(SECONDS * 1000);
    const mem: Record<string, Record<string, number>> = {};
    for (const p of procs) {
      if (p.exitCode !== undefined) {
        log(
          `  ${p.name}: exited with ${p.exitCode}: ${
            p.lines.slice(-3).join(" | ")
          }`,
        );
        mem[p.name] = {};
        continue;
      }
      mem[p.name] = procMemory(p.child.pid);
      if (p.child.pid && p.heap) mem[p.name] = { ...mem[p.name], ...p.heap };
    }
    const mib = (kib: number | undefined) => (kib ?? NaN) / 1024;
    const main = mem["locksmithd (daemon permission set)"]!;
    figure(S, "locksmithd VmRSS while waiting", mib(main.VmRSS), "MiB", {
      op: "<=",
      value: 64,
    });
    log(
      `    of which RssAnon ${fmt(mib(main.RssAnon))} MiB, RssFile ${
        fmt(mib(main.RssFile))
      } MiB (the deno binary's pages, shared); VmHWM ${
        fmt(mib(main.VmHWM))
      } MiB`,
    );
    const wrapper = procs.find((p) => p.name.includes("wrapper"));
    if (wrapper?.heap) {
      const h = wrapper.heap;
      log(
        `    V8 (wrapper): heap used ${fmt(h.heapUsed! / 2 ** 20)} MiB of ${
          fmt(h.heapTotal! / 2 ** 20)
        } MiB committed, external ${
          fmt(h.external! / 2 ** 20)
        } MiB, process rss ${fmt(h.rss! / 2 ** 20)} MiB`,
      );
      for (const [k, v] of Object.entries(h)) {
        if (k.startsWith("space ") && v > 2 ** 14) {
          log(`      ${k}: ${fmt(v / 2 ** 20)} MiB`);
        }
      }
    }
    for (const p of procs) {
      if (p.name === "locksmithd (daemon permission set)") continue;
      figure(S, `${p.name}: VmRSS`, mib(mem[p.name]!.VmRSS), "MiB");
    }
    details.memory = { seconds: SECONDS, kib: mem };
  } finally {
    for (const p of procs) {
      try {
        p.child.kill("SIGTERM");
      } catch { /* gone */ }
    }
    await Promise.all(procs.map((p) => p.child.status));
    await Promise.all(procs.flatMap((p) => p.pipes));
    await holder.close();
    await bus.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------- main

function printTable(): string {
  const rows = figures.map((f) => [
    f.section,
    f.name,
    `${fmt(f.value)} ${f.unit}`.trim(),
    f.target ? `${f.target.op} ${f.target.value} ${f.unit}`.trim() : "",
    f.target ? (f.pass ? "pass" : "MISS") : "",
  ]);
  const head = ["measurement", "figure", "value", "target", "result"];
  const widths = head.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i]!.length))
  );
  const line = (r: string[]) =>
    r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [
    line(head),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.map(line),
  ].join("\n");
}

if (import.meta.main) {
  const startedAt = new Date();
  const t0 = performance.now();
  const etcdVersion = await version("etcd", ["--version"]);
  log(
    `locksmith benchmark${
      QUICK ? " (--quick)" : ""
    }: ${etcdVersion}, deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs`,
  );
  const etcd = await startEtcd();
  const metricsUrl = etcd.members[0]!.metricsUrl;
  const clientPort = Number(new URL(etcd.endpoints[0]!).port);
  let failed: unknown;
  try {
    if (ONLY.has("1")) await uncontended(etcd.endpoints, metricsUrl);
    if (ONLY.has("2")) {
      const runs: ContentionRun[] = [
        { label: "locksmithd, wait queue", withTarget: true },
      ];
      for (const run of runs) await contention(etcd.endpoints, metricsUrl, run);
    }
    if (ONLY.has("3")) await waiting(etcd.endpoints, metricsUrl, clientPort);
    if (ONLY.has("4")) await startup(etcd.endpoint);
    if (ONLY.has("5")) await memory(etcd.endpoints, metricsUrl);
  } catch (error) {
    failed = error;
  } finally {
    await etcd.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const table = printTable();
  console.log(
    `\nlocksmith benchmark${
      QUICK ? " (--quick)" : ""
    }, ${startedAt.toISOString()}, ${fmt(seconds)} s\n`,
  );
  console.log(table);
  const misses = figures.filter((f) => f.pass === false);
  console.log(
    `\n${
      figures.filter((f) => f.target).length - misses.length
    } targets pass, ${misses.length} miss${
      misses.length ? `: ${misses.map((f) => f.name).join("; ")}` : ""
    }`,
  );
  await Deno.writeTextFile(
    OUT,
    JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        seconds,
        quick: QUICK,
        versions: {
          deno: Deno.version.deno,
          v8: Deno.version.v8,
          etcd: etcdVersion,
        },
        cpus: navigator.hardwareConcurrency,
        config: CONFIG,
        figures,
        details,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`figures written to ${OUT}`);
  if (failed) {
    console.error(failed);
    Deno.exit(1);
  }
}
