/**
 * Fleets of real locksmithd processes, each with its own private bus,
 * sharing one semaphore in a real etcd, rolling through a reboot under
 * faults. For every run: never more holders than `max` at any revision,
 * every live machine reboots exactly once, machines take slots in the order
 * they joined the queue (one may take a slot beside a machine ahead of it
 * only when slots are free for both), and while a live machine waits no
 * slot stays free for more than a second (beyond the hand-over time for a
 * machine that died while waiting).
 */

import assert from "node:assert/strict";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { rollFleet } from "./harness/fleet.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import {
  assertRolledThrough,
  orderBreaks,
  startFleetMonitor,
} from "./harness/fleet_monitor.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

/** Hand-over time of locksmithd: a free slot left this long by a silent head goes to the next. */
const HANDOVER_MS = 10_000;

interface Run {
  readonly machines: number;
  readonly max: number;
  readonly group: string;
  readonly dead?: readonly string[];
  readonly during?: (etcd: EtcdCluster, signal: AbortSignal) => Promise<void>;
}

async function roll(etcd: EtcdCluster, run: Run): Promise<void> {
  const key = semaphoreKey(run.group);
  const setMax = await runCtlProcess([
    "set-max",
    String(run.max),
    "--group",
    run.group,
    "--endpoint",
    etcd.endpoint,
  ]);
  assert.equal(setMax.code, 0, setMax.stderr);
  const monitor = await startFleetMonitor(etcd.endpoints, key);
  const result = await rollFleet({
    machines: run.machines,
    endpoint: etcd.endpoint,
    group: run.group,
    rebootMs: 300,
    timeoutMs: 180_000,
    dead: run.dead,
    during: run.during && ((signal) => run.during!(etcd, signal)),
  });
  const timeline = await monitor.stop();
  const dead = new Set(run.dead ?? []);
  const report = assertRolledThrough(result, timeline, { key, ...run, dead });
  assert.deepEqual(
    orderBreaks(timeline, dead),
    [],
    "machines took slots in the order they joined the queue",
  );
  console.log(
    `  ${run.group}: ${run.machines} machines, max ${run.max}: ${report.versions} versions, at most ${report.maxHolders} holders, longest idle slot ${
      Math.round(timeline.longestIdle.ms)
    } ms, slots taken in join order (${
      timeline.takes.filter((take) =>
        take.waitingAhead.some((id) => !dead.has(id))
      ).length
    } beside a machine ahead, with slots free for both)`,
  );
  // Each machine that died in the queue costs the next one the hand-over
  // time once it reaches the head.
  const allowance = dead.size * HANDOVER_MS + 1_000;
  assert.ok(
    timeline.longestIdle.ms < allowance,
    `a slot stayed free for ${
      Math.round(timeline.longestIdle.ms)
    } ms while machines waited (idle stretches: ${
      timeline.idle.slice(0, 5).map(Math.round).join(", ")
    } ms)`,
  );
}

Deno.test("fleets of 10 and 20 daemons on one etcd, max 2 and 3, with compactions every second", async (t) => {
  const etcd = await startEtcd();
  const compact = async (cluster: EtcdCluster, signal: AbortSignal) => {
    while (!signal.aborted) {
      await sleep(1_000, signal);
      const out = await new Deno.Command("etcdctl", {
        args: [
          `--endpoints=${cluster.endpoint}`,
          "endpoint",
          "status",
          "-w",
          "json",
        ],
        stdout: "piped",
        stderr: "null",
      }).output();
      const revision = JSON.parse(new TextDecoder().decode(out.stdout))[0]
        ?.Status?.header?.revision;
      if (revision) {
        await new Deno.Command("etcdctl", {
          args: [
            `--endpoints=${cluster.endpoint}`,
            "compact",
            String(revision),
          ],
          stdout: "null",
          stderr: "null",
        }).output();
      }
    }
  };
  try {
    for (
      const run of [
        { machines: 10, max: 2, group: "fleet-10-2-a" },
        { machines: 10, max: 2, group: "fleet-10-2-b" },
        { machines: 10, max: 3, group: "fleet-10-3" },
        { machines: 20, max: 2, group: "fleet-20-2" },
        { machines: 20, max: 3, group: "fleet-20-3-a" },
        { machines: 20, max: 3, group: "fleet-20-3-b" },
      ]
    ) {
      await t.step(
        `${run.machines} machines, max ${run.max}`,
        () => roll(etcd, { ...run, during: compact }),
      );
    }
  } finally {
    await etcd.close();
  }
});

Deno.test("fleets of 10 and 20 daemons on a 3-member cluster with a follower paused for 5 s mid-run", async (t) => {
  const etcd = await startEtcd({ members: 3 });
  const pauseFollower = async (cluster: EtcdCluster, signal: AbortSignal) => {
    await sleep(1_500, signal);
    if (signal.aborted) return;
    const [follower] = await cluster.followers();
    follower!.pause();
    await sleep(5_000);
    follower!.resume();
  };
  try {
    await etcd.waitHealthy();
    for (
      const run of [
        { machines: 10, max: 2, group: "paused-10-2" },
        { machines: 20, max: 3, group: "paused-20-3" },
      ]
    ) {
      await t.step(`${run.machines} machines, max ${run.max}`, async () => {
        await roll(etcd, { ...run, during: pauseFollower });
        await etcd.waitHealthy();
      });
    }
  } finally {
    await etcd.close();
  }
});

Deno.test("fleets in which machines die while they wait", async (t) => {
  const etcd = await startEtcd();
  try {
    await t.step("10 machines, max 2, one dies", () =>
      roll(etcd, {
        machines: 10,
        max: 2,
        group: "dead-10-2",
        dead: ["machine-05"],
      }));
    await t.step("20 machines, max 3, two die", () =>
      roll(etcd, {
        machines: 20,
        max: 3,
        group: "dead-20-3",
        dead: ["machine-07", "machine-15"],
      }));
  } finally {
    await etcd.close();
  }
});
