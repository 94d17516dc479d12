/**
 * Issue 19, case 4: queue entries that no live locksmithd owns never hold a
 * fleet up. Two valid-looking waiter entries without a lease (as
 * `etcdctl put` or a key mirror writes them) stand at the head of the queue
 * before a fleet of real daemons needs a reboot; the fleet still rolls
 * through at the usual pace.
 *
 * The removal after the grace period (60 s, not configurable in the daemon)
 * and its one warning are covered by tests/queue_liveness_test.ts with a
 * shortened grace; here the run ends well within the grace, so the entries
 * must still be there afterwards (a waiter never removes them early).
 */

import assert from "node:assert/strict";
import { startEtcd } from "./harness/etcd.ts";
import { rollFleet } from "./harness/fleet.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import {
  assertRolledThrough,
  startFleetMonitor,
} from "./harness/fleet_monitor.ts";
import { semaphoreKey, waiterKey } from "../lib/semaphore/keys.ts";
import { OWNERLESS_GRACE_MS } from "../lib/etcd/queue/queue_ownerless.ts";

/** Hand-over time of locksmithd: a free slot left this long by a silent head goes to the next. */
const HANDOVER_MS = 10_000;

/** Runs etcdctl against `endpoint`; returns its stdout. */
async function etcdctl(endpoint: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("etcdctl", {
    args: [`--endpoints=${endpoint}`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  assert.ok(
    out.success,
    `etcdctl ${args.join(" ")}: ${text.decode(out.stderr)}`,
  );
  return text.decode(out.stdout);
}

Deno.test("a fleet of 4 daemons, max 1, passes over two lease-less waiter entries at the head of the queue at once", async () => {
  const etcd = await startEtcd();
  try {
    const group = "ownerless-4-1";
    const key = semaphoreKey(group);
    const setMax = await runCtlProcess([
      "set-max",
      "1",
      "--group",
      group,
      "--endpoint",
      etcd.endpoint,
    ]);
    assert.equal(setMax.code, 0, setMax.stderr);
    // As an operator's `etcdctl put` or a key mirror writes them: the
    // format locksmithd writes, but no lease.
    const ghosts = ["ghost-1", "ghost-2"];
    const written = performance.now();
    for (const ghost of ghosts) {
      await etcdctl(
        etcd.endpoint,
        "put",
        waiterKey(key, ghost),
        JSON.stringify({ id: ghost, since: new Date().toISOString() }),
      );
    }
    // Started after the ghosts were written: it counts only the machines
    // as waiting, so that its idle figure is about them.
    const monitor = await startFleetMonitor(etcd.endpoints, key);

    let firstJoin: number | undefined;
    let firstTake: number | undefined;
    let tookFirst = () => {};
    const taken = new Promise<void>((resolve) => (tookFirst = resolve));
    const waitLines: string[] = [];
    const started = performance.now();
    const result = await rollFleet({
      machines: 4,
      endpoint: etcd.endpoint,
      group,
      rebootMs: 300,
      timeoutMs: 120_000,
      onEvent: (event) => {
        if (event.kind !== "log") return;
        const line = event.line;
        if (/joined the wait queue|in line/.test(line)) {
          waitLines.push(`${event.machine}: ${line}`);
        }
        if (firstJoin === undefined && /joined the wait queue/.test(line)) {
          firstJoin = performance.now();
        }
        if (firstTake === undefined && /took a slot/.test(line)) {
          firstTake = performance.now();
          tookFirst();
        }
      },
      // Fails the run at once if the first slot is not taken well within
      // the hand-over time (the old code stalled here for good).
      during: async (signal) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const stopped = new Promise<void>((resolve) =>
          signal.addEventListener("abort", () => resolve(), { once: true })
        );
        try {
          await Promise.race([
            taken,
            stopped,
            new Promise<never>((_, reject) => {
              timer = setTimeout(
                () =>
                  reject(
                    new Error(
                      `no slot taken within ${
                        HANDOVER_MS / 2
                      } ms of the reboot request; waiting:\n${
                        waitLines.join("\n")
                      }`,
                    ),
                  ),
                HANDOVER_MS / 2,
              );
            }),
          ]);
        } finally {
          clearTimeout(timer);
        }
      },
    });
    const allRebooted = performance.now() - started;
    const timeline = await monitor.stop();

    assertRolledThrough(result, timeline, { key, machines: 4, max: 1 });
    assert.deepEqual(
      timeline.takeOrder,
      timeline.joinOrder,
      "machines took slots in the order they joined the queue",
    );
    const firstTakeMs = firstTake! - firstJoin!;
    console.log(
      `  first slot taken ${
        Math.round(firstTakeMs)
      } ms after the first machine joined; all 4 rebooted ${
        (allRebooted / 1000).toFixed(1)
      } s after start; longest idle slot ${
        Math.round(timeline.longestIdle.ms)
      } ms`,
    );
    assert.ok(
      firstTakeMs < 1_000,
      `the first slot was taken ${Math.round(firstTakeMs)} ms after a join`,
    );
    assert.ok(
      timeline.longestIdle.ms < 1_000,
      `a slot stayed free for ${
        Math.round(timeline.longestIdle.ms)
      } ms while machines waited`,
    );
    // No machine saw itself behind the lease-less entries.
    const behindGhost = waitLines.filter((l) => /ghost-/.test(l));
    assert.deepEqual(behindGhost, [], "no machine waited on a ghost entry");
    // Within the grace period nobody removed them.
    if (performance.now() - written < OWNERLESS_GRACE_MS - 5_000) {
      const left = await etcdctl(
        etcd.endpoint,
        "get",
        "--keys-only",
        "--prefix",
        waiterKey(key, "ghost-"),
      );
      assert.deepEqual(
        left.split("\n").filter((l) => l !== "").sort(),
        ghosts.map((g) => waiterKey(key, g)),
        "the lease-less entries stay until their grace period is over",
      );
    }
  } finally {
    await etcd.close();
  }
});
