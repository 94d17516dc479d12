/**
 * The semaphore's promise when etcd fails: never more than `max` holders, no
 * lost update, no lost slot. Each scenario runs many concurrent clients (each
 * its own etcd connection to all three members of a real cluster) doing
 * lock/unlock cycles while a member is killed, paused or the whole cluster
 * restarts, then checks every revision of the key's history against what the
 * clients saw.
 *
 * An operation that failed with an etcd error may or may not have committed
 * (the Txn may have been applied and only its answer lost), so it is recorded
 * as "uncertain": the history may or may not contain it. Every success must be
 * in the history and every refusal must be absent.
 */

import assert from "node:assert/strict";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { keyHistory, type KeyVersion } from "./harness/history.ts";
import { checkHistory, type SeenOperation } from "./harness/invariants.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import { permissionFlags, REPO_ROOT } from "./harness/permissions.ts";
import { openEtcdPort } from "../lib/etcd/open.ts";
import { EtcdLockStore } from "../lib/etcd/store/etcd_lock_store.ts";
import {
  lockSlot,
  setMaxSlots,
  unlockSlot,
} from "../lib/semaphore/lock_store.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { parseSemaphore } from "../lib/semaphore/document.ts";
import {
  ContentionError,
  EtcdUnavailableError,
  SemaphoreRefusedError,
} from "../lib/common/errors.ts";

/** Concurrent clients per scenario. */
const CLIENTS = 24;
/** Deadline of each store operation, as a daemon or locksmithctl would set it. */
const TIMEOUT_MS = 2_000;
/** Load before the fault is injected. */
const WARMUP_MS = 1_000;
/** Load after the cluster is healthy again (at least; longer until progress shows). */
const AFTER_HEAL_MS = 1_500;
/** Successes needed after the heal to call the cluster usable again. */
const PROGRESS_AFTER_HEAL = 20;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function openStore(
  endpoints: readonly string[],
  key: string,
  timeoutMs = TIMEOUT_MS,
): Promise<EtcdLockStore> {
  const options = { endpoints, timeoutMs };
  return new EtcdLockStore(await openEtcdPort(options), key, options);
}

/** Everything the clients of one run did and saw. */
interface Load {
  tried: number;
  succeeded: number;
  /** Refused with `semaphore_full`: nothing written. */
  refused: number;
  /** Failed with an etcd error or contention: outcome unknown, retried later. */
  retried: number;
  /**
   * Refused with `holder_exists` / `holder_not_found` although the client had
   * just read the opposite: a write of its own applied without it seeing the
   * success (this one, retried inside the etcd client after a lost answer, or
   * an earlier one with an unknown outcome).
   */
  unexpected: number;
  /** Longest single lock or unlock call, in ms. */
  maxLatencyMs: number;
  /** Operations that succeeded: must all be in the history. */
  readonly seen: SeenOperation[];
  /** Operations with an unknown outcome: each may or may not be in the history. */
  readonly uncertain: SeenOperation[];
  /** Ids that could not release their slot before the drain deadline. */
  readonly stuck: string[];
}

function isEtcdFailure(error: unknown): boolean {
  return error instanceof EtcdUnavailableError ||
    error instanceof ContentionError;
}

/**
 * One client: locks its own id, holds briefly, unlocks, again and again
 * until `stopped()`, then releases what it holds. After an operation with an
 * unknown outcome it re-reads the document before deciding what it holds.
 */
async function runClient(
  store: EtcdLockStore,
  id: string,
  load: Load,
  stopped: () => boolean,
  drainDeadline: () => number,
): Promise<void> {
  let belief: "held" | "free" | "unknown" = "free";
  while (true) {
    if (stopped()) {
      if (belief === "free") return;
      if (Date.now() > drainDeadline()) {
        load.stuck.push(id);
        return;
      }
    }
    if (belief === "unknown") {
      try {
        const { doc } = await store.read();
        belief = doc.holders.includes(id) ? "held" : "free";
      } catch (error) {
        if (!isEtcdFailure(error)) throw error;
        await sleep(100 + Math.random() * 200);
      }
      continue;
    }
    const op: "lock" | "unlock" = belief === "held" ? "unlock" : "lock";
    load.tried++;
    const started = performance.now();
    try {
      await (op === "lock" ? lockSlot(store, id) : unlockSlot(store, id));
      load.succeeded++;
      load.seen.push({ op, id });
      belief = op === "lock" ? "held" : "free";
    } catch (error) {
      if (
        error instanceof SemaphoreRefusedError &&
        error.reason === "semaphore_full"
      ) {
        load.refused++;
      } else if (error instanceof SemaphoreRefusedError) {
        load.unexpected++;
        load.uncertain.push({ op, id });
        belief = error.reason === "holder_exists" ? "held" : "free";
      } else if (isEtcdFailure(error)) {
        load.retried++;
        load.uncertain.push({ op, id });
        belief = "unknown";
      } else {
        throw error;
      }
    } finally {
      load.maxLatencyMs = Math.max(
        load.maxLatencyMs,
        performance.now() - started,
      );
    }
    // Hold a taken slot briefly; back off after a refusal or a failure.
    if (belief === "held") await sleep(Math.random() * 5);
    else if (belief === "unknown") await sleep(100 + Math.random() * 200);
    else await sleep(5 + Math.random() * 20);
  }
}

/** Ids of the load clients, sorted as they sort in the document. */
function clientIds(n: number): string[] {
  return Array.from(
    { length: n },
    (_, i) => `machine-${String(i).padStart(2, "0")}`,
  );
}

/**
 * Runs `clients` clients against `key`, injects `fault` after a warm-up,
 * waits for the cluster to be healthy and for progress, then stops the load
 * and lets every client release its slot. Closes every store.
 */
async function runLoad(
  etcd: EtcdCluster,
  key: string,
  clients: number,
  fault: (etcd: EtcdCluster) => Promise<void>,
): Promise<Load & { progressAfterHeal: number }> {
  const load: Load = {
    tried: 0,
    succeeded: 0,
    refused: 0,
    retried: 0,
    unexpected: 0,
    maxLatencyMs: 0,
    seen: [],
    uncertain: [],
    stuck: [],
  };
  const ids = clientIds(clients);
  const stores = await Promise.all(
    ids.map(() => openStore(etcd.endpoints, key)),
  );
  let stop = false;
  let drainDeadline = Infinity;
  let progressAfterHeal = 0;
  try {
    const running = Promise.allSettled(
      stores.map((store, i) =>
        runClient(store, ids[i]!, load, () => stop, () => drainDeadline)
      ),
    );
    let failure: { error: unknown } | undefined;
    try {
      await sleep(WARMUP_MS);
      assert.ok(load.succeeded > 0, "no progress before the fault");
      await fault(etcd);
      await etcd.waitHealthy();
      const atHeal = load.succeeded;
      const deadline = Date.now() + 20_000;
      await sleep(AFTER_HEAL_MS);
      while (
        load.succeeded - atHeal < PROGRESS_AFTER_HEAL && Date.now() < deadline
      ) {
        await sleep(100);
      }
      progressAfterHeal = load.succeeded - atHeal;
    } catch (error) {
      failure = { error };
    }
    // Stop the load and let every client release what it holds.
    stop = true;
    drainDeadline = Date.now() + 30_000;
    const results = await running;
    if (failure) throw failure.error;
    for (const result of results) {
      if (result.status === "rejected") throw result.reason;
    }
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
  return { ...load, progressAfterHeal };
}

/** What {@link checkRun} found, for the summary line and the assertions. */
interface Verdict {
  readonly violations: string[];
  readonly history: KeyVersion[];
  /** Uncertain operations that did commit. */
  readonly applied: number;
}

/**
 * Reads the key's full history and checks every revision: the document
 * parses (holders unique and sorted, `semaphore == max - holders`), never
 * more than `max` holders, every success present, every refusal absent,
 * every uncertain operation present or absent (`extraSeen`: successes of
 * other clients); and the run itself: nothing held at the end, no client
 * stuck, no call outliving its deadline.
 */
async function checkRun(
  etcd: EtcdCluster,
  key: string,
  max: number,
  load: Load,
  extraSeen: SeenOperation[] = [],
): Promise<Verdict> {
  const history = await keyHistory(etcd.endpoints, key);
  const seen = [...load.seen, ...extraSeen];
  const report = checkHistory(key, history, seen, load.uncertain);
  const violations = [...report.violations];
  if (report.maxHolders > max) {
    violations.push(`${report.maxHolders} holders at once, max is ${max}`);
  }
  const last = history.at(-1)?.value;
  const holders = last === undefined ? [] : parseSemaphore(last, key).holders;
  if (holders.length > 0) {
    violations.push(
      `lost slot: after every client released its slot, ${
        JSON.stringify(holders)
      } still hold one`,
    );
  }
  for (const id of load.stuck) {
    violations.push(`${id} could not release its slot within 30 s`);
  }
  // The store's deadline bounds every call; allow scheduling slack.
  if (load.maxLatencyMs > TIMEOUT_MS + 1_000) {
    violations.push(
      `a call took ${
        Math.round(load.maxLatencyMs)
      } ms, more than its ${TIMEOUT_MS} ms deadline`,
    );
  }
  const tally = new Map<string, number>();
  for (const { op, id } of seen) {
    tally.set(`${op} ${id}`, (tally.get(`${op} ${id}`) ?? 0) + 1);
  }
  let applied = 0;
  for (const [id, counts] of report.transitions) {
    for (const op of ["lock", "unlock"] as const) {
      applied += counts[op] - (tally.get(`${op} ${id}`) ?? 0);
    }
  }
  return { violations, history, applied };
}

function summarize(name: string, load: Load, verdict: Verdict): void {
  const unexpected = load.unexpected > 0
    ? `, ${load.unexpected} unexpected refusals`
    : "";
  console.log(
    `fault: ${name}: ${load.tried} tried, ${load.succeeded} succeeded, ${load.refused} refused, ${load.retried} retried${unexpected}, ${verdict.applied} of ${load.uncertain.length} unknown outcomes applied, ${verdict.violations.length} invariant violations`,
  );
}

/**
 * Reads the document through each running member alone: a member restarted
 * from its data dir must have rejoined the same cluster and caught up, so
 * all of them return the same text at the same revision.
 */
async function replicaDisagreements(
  etcd: EtcdCluster,
  key: string,
): Promise<string[]> {
  const views = await Promise.all(
    etcd.members.filter((m) => m.running).map(async (m) => {
      const store = await openStore([m.clientUrl], key);
      try {
        const { raw, revision } = await store.readRaw();
        return { name: m.name, view: `rev ${revision}: ${raw}` };
      } finally {
        await store.close();
      }
    }),
  );
  const first = views[0]!;
  return views.filter((v) => v.view !== first.view).map((v) =>
    `member ${v.name} returns ${v.view}, member ${first.name} ${first.view}`
  );
}

/**
 * Starts a 3-member cluster, sets `max`, runs the load with `fault`, checks
 * the history and prints the summary line.
 */
async function faultScenario(
  name: string,
  max: number,
  fault: (etcd: EtcdCluster) => Promise<void>,
): Promise<void> {
  const etcd = await startEtcd({ members: 3 });
  try {
    const key = semaphoreKey(`fault-${name}`);
    const admin = await openStore(etcd.endpoints, key);
    try {
      await setMaxSlots(admin, max);
    } finally {
      await admin.close();
    }
    const load = await runLoad(etcd, key, CLIENTS, fault);
    const verdict = await checkRun(etcd, key, max, load);
    verdict.violations.push(...await replicaDisagreements(etcd, key));
    summarize(name, load, verdict);
    assert.deepEqual(verdict.violations, []);
    // A holder_exists / holder_not_found that contradicts what the client
    // knew (from a fresh read or its own success) means a write was misreported.
    assert.equal(
      load.unexpected,
      0,
      "refusals that contradict the client's knowledge",
    );
    assert.ok(
      load.progressAfterHeal >= PROGRESS_AFTER_HEAL,
      `only ${load.progressAfterHeal} operations succeeded after the cluster healed`,
    );
  } finally {
    await etcd.close();
  }
}

Deno.test("kill the leader mid-run (SIGKILL), restart it later: no invariant violation and no lost update", async () => {
  await faultScenario("kill-leader", 2, async (etcd) => {
    const leader = await etcd.waitLeader();
    await leader.kill();
    const next = await etcd.waitLeader();
    assert.notEqual(next.name, leader.name);
    await sleep(1_500);
    await leader.start();
  });
});

Deno.test("kill a follower mid-run (SIGKILL), never restart it: no invariant violation and no lost update", async () => {
  await faultScenario("kill-follower", 3, async (etcd) => {
    const [follower] = await etcd.followers();
    assert.ok(follower, "a 3-member cluster has followers");
    await follower.kill();
    await sleep(2_000);
  });
});

Deno.test("pause the leader (SIGSTOP) past the election timeout, then resume it: no invariant violation and no lost update", async () => {
  await faultScenario("pause-leader", 1, async (etcd) => {
    const leader = await etcd.waitLeader();
    const pausedAt = Date.now();
    leader.pause();
    try {
      const next = await etcd.waitLeader();
      assert.notEqual(next.name, leader.name);
      await sleep(Math.max(0, pausedAt + 3_000 - Date.now()));
    } finally {
      leader.resume();
    }
  });
});

Deno.test("restart the whole cluster from its data dirs mid-run: no invariant violation and no lost update", async () => {
  await faultScenario("restart-cluster", 2, async (etcd) => {
    await etcd.stopAll();
    await sleep(1_000);
    await etcd.startAll();
  });
});

Deno.test("crash the whole cluster (SIGKILL every member) mid-run and restart it from its data dirs: no invariant violation and no lost update", async () => {
  await faultScenario("crash-cluster", 3, async (etcd) => {
    await Promise.all(etcd.members.map((m) => m.kill()));
    await sleep(1_000);
    await etcd.startAll();
  });
});

/** Reads `stream` until a line equal to `line` arrives; throws if it ends first or after `timeoutMs`. */
async function waitForLine(
  stream: ReadableStream<Uint8Array>,
  line: string,
  timeoutMs: number,
): Promise<void> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no "${line}" within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    while (!text.split("\n").includes(line)) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) throw new Error(`output ended before "${line}": ${text}`);
      text += value;
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

Deno.test("a client killed with SIGKILL while holding a slot keeps it until locksmithctl unlock", async () => {
  const etcd = await startEtcd({ members: 3 });
  const group = "crash";
  const key = semaphoreKey(group);
  const crashed = "crashed-machine";
  const base = ["--endpoint", etcd.endpoint, "--group", group];
  let child: Deno.ChildProcess | undefined;
  try {
    assert.equal((await runCtlProcess(["set-max", "2", ...base])).code, 0);
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...permissionFlags("ctl"),
        `${REPO_ROOT}tests/harness/hold_slot.ts`,
        etcd.endpoint,
        crashed,
        group,
      ],
      cwd: REPO_ROOT,
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    try {
      await waitForLine(child.stdout, "locked", 30_000);
    } catch (error) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`${(error as Error).message}; stderr: ${await stderr}`);
    }
    child.kill("SIGKILL");
    const status = await child.status;
    await stderr;
    child = undefined;
    assert.equal(status.signal, "SIGKILL");
    const killedAt = Date.now();
    const held = `Available: 1\nMax: 2\n\nMACHINE ID\n${crashed}\n`;
    const first = await runCtlProcess(["status", ...base]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, held);

    // The others keep cycling through the one slot left.
    const load = await runLoad(
      etcd,
      key,
      20,
      () => sleep(Math.max(0, killedAt + 3_000 - Date.now())),
    );
    assert.ok(Date.now() - killedAt >= 3_000);
    const later = await runCtlProcess(["status", ...base]);
    assert.equal(later.code, 0, later.stderr);
    assert.equal(later.stdout, held, "nothing silently freed the slot");

    const unlocked = await runCtlProcess(["unlock", crashed, ...base]);
    assert.equal(unlocked.code, 0, unlocked.stderr);
    const freed = await runCtlProcess(["status", ...base]);
    assert.equal(freed.stdout, "Available: 2\nMax: 2\n");

    const verdict = await checkRun(etcd, key, 2, load, [
      { op: "lock", id: crashed },
      { op: "unlock", id: crashed },
    ]);
    // checkHistory counted exactly one lock and one unlock of the crashed
    // id; the unlock is the last write, the one locksmithctl made.
    const docs = verdict.history.flatMap((v) =>
      v.value === undefined ? [] : [parseSemaphore(v.value, key)]
    );
    assert.equal(
      docs.findLastIndex((d) => d.holders.includes(crashed)),
      docs.length - 2,
      "only locksmithctl unlock released the slot",
    );
    summarize("killed-client", load, verdict);
    assert.deepEqual(verdict.violations, []);
    assert.equal(
      load.unexpected,
      0,
      "refusals that contradict the client's knowledge",
    );
  } finally {
    if (child) {
      child.kill("SIGKILL");
      await child.status;
    }
    await etcd.close();
  }
});

Deno.test("clients report an unavailable cluster as a clear error after their timeout, never hang", async (t) => {
  const etcd = await startEtcd({ members: 3 });
  const key = semaphoreKey("unavailable");
  // A store that was connected before the outage, and one that never was.
  const warm = await openStore(etcd.endpoints, key, 1_000);
  try {
    await warm.read();
    const expectClearFailure = async (cause: RegExp) => {
      let started = Date.now();
      const ctl = await runCtlProcess([
        "status",
        "--endpoint",
        etcd.endpoint,
        "--timeout",
        "1s",
      ]);
      const ctlMs = Date.now() - started;
      assert.equal(ctl.code, 1, ctl.stderr);
      assert.equal(ctl.stdout, "");
      assert.match(ctl.stderr, /^Error reading status: [^\n]+\n$/);
      assert.match(ctl.stderr, cause);
      for (const endpoint of etcd.endpoints) {
        assert.ok(ctl.stderr.includes(endpoint), ctl.stderr);
      }
      assert.ok(ctlMs < 3_000, `locksmithctl took ${ctlMs} ms`);

      const cold = await openStore(etcd.endpoints, key, 1_000);
      try {
        for (const store of [warm, cold]) {
          started = Date.now();
          await assert.rejects(
            lockSlot(store, "m1"),
            (error: Error) => {
              assert.ok(error instanceof EtcdUnavailableError, String(error));
              assert.match(error.message, cause);
              for (const endpoint of etcd.endpoints) {
                assert.ok(error.message.includes(endpoint), error.message);
              }
              assert.ok(!error.message.includes("\n"));
              return true;
            },
          );
          const ms = Date.now() - started;
          assert.ok(ms < 2_000, `update took ${ms} ms`);
        }
      } finally {
        await cold.close();
      }
    };

    await t.step(
      "whole cluster stopped: locksmithctl status and EtcdLockStore.update fail with one line naming the endpoints",
      async () => {
        await etcd.stopAll();
        try {
          await expectClearFailure(
            /cannot reach etcd \(http:\/\/127\.0\.0\.1:\d+: connection refused; http:\/\/127\.0\.0\.1:\d+: connection refused; /,
          );
        } finally {
          await etcd.startAll();
        }
      },
    );

    await t.step(
      "whole cluster paused (SIGSTOP): the same, after the timeout",
      async () => {
        for (const member of etcd.members) member.pause();
        try {
          await expectClearFailure(/did not answer within 1s/);
        } finally {
          for (const member of etcd.members) member.resume();
          await etcd.waitHealthy();
        }
      },
    );
  } finally {
    await warm.close();
    await etcd.close();
  }
});
