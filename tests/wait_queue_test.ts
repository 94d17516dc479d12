/**
 * The wait queue against a real etcd: compaction, lost watches, dead and
 * stopped waiters, junk entries, FIFO order without idle slots, the
 * hand-over, and a paused member in a 3-member cluster. Waiters run the
 * daemon's own acquire step (`acquireSlot`).
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { keyHistory } from "./harness/history.ts";
import { checkHistory } from "./harness/invariants.ts";
import { REPO_ROOT } from "./harness/permissions.ts";
import { until } from "./harness/until.ts";
import { MemoryLog } from "./fakes.ts";
import { openEtcdStore } from "../lib/etcd/open.ts";
import type { EtcdLockStore } from "../lib/etcd/store/etcd_lock_store.ts";
import type { EtcdPort } from "../lib/etcd/client/port.ts";
import { LeaseSession } from "../lib/etcd/queue/lease_session.ts";
import { EtcdWaitQueue } from "../lib/etcd/queue/wait_queue.ts";
import { lockSlot, unlockSlot } from "../lib/semaphore/lock_store.ts";
import { semaphoreKey, waitersPrefix } from "../lib/semaphore/keys.ts";
import { acquireSlot } from "../lib/daemon/loop/acquire.ts";
import { Run } from "../lib/daemon/loop/run.ts";
import { systemClock } from "../lib/daemon/wiring/daemon_main.ts";
import { noopRebootPorts } from "./harness/noop_reboot.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Waiter {
  readonly id: string;
  readonly store: EtcdLockStore;
  readonly queue: EtcdWaitQueue;
  readonly log: MemoryLog;
  /** Runs the daemon's acquire step; resolves when this machine holds a slot. */
  acquire(handoverMs?: number): Promise<string>;
  close(): Promise<void>;
}

async function waiter(
  endpoints: readonly string[],
  group: string,
  id: string,
  ttlSeconds = 300,
  wrapPort?: (port: EtcdPort) => EtcdPort,
): Promise<Waiter> {
  const store = await openEtcdStore({ endpoints, timeoutMs: 3_000 }, group);
  if (wrapPort) (store as { port: EtcdPort }).port = wrapPort(store.port);
  const log = new MemoryLog();
  const queue = new EtcdWaitQueue(store, {
    id,
    session: new LeaseSession(store.port, { timeoutMs: 3_000, ttlSeconds }),
    log: (line) => log.info(line),
  });
  const stop = new AbortController();
  return {
    id,
    store,
    queue,
    log,
    acquire: (handoverMs = 10_000) => {
      const run = new Run(
        { strategy: "etcd-lock", machineId: id, loginDelayMs: 0, handoverMs },
        {
          store,
          queue,
          ...noopRebootPorts("test"),
          clock: systemClock,
          log,
          random: Math.random,
        },
        stop.signal,
      );
      return acquireSlot(run, queue, undefined);
    },
    close: async () => {
      stop.abort();
      await queue.close().catch(() => {});
      await store.close();
    },
  };
}

async function etcdctl(endpoints: readonly string[], ...args: string[]) {
  const out = await new Deno.Command("etcdctl", {
    args: [`--endpoints=${endpoints.join(",")}`, ...args],
    env: { ETCDCTL_API: "3" },
  }).output();
  if (!out.success) {
    throw new Error(
      `etcdctl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

async function currentRevision(client: Etcd3, key: string): Promise<number> {
  const res = await client.put(`${key}/other`).value(String(Math.random()))
    .exec();
  return Number(res.header.revision);
}

async function waiterKeys(client: Etcd3, group: string): Promise<string[]> {
  return await client.getAll().prefix(waitersPrefix(semaphoreKey(group)))
    .keys();
}

Deno.test("the wait queue against a real etcd", async (t) => {
  const etcd: EtcdCluster = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  const open: Waiter[] = [];
  const join = async (
    group: string,
    id: string,
    ttl?: number,
    wrapPort?: (port: EtcdPort) => EtcdPort,
  ) => {
    const w = await waiter(etcd.endpoints, group, id, ttl, wrapPort);
    open.push(w);
    return w;
  };
  try {
    await t.step(
      "a waiter takes a freed slot within a second after compactions before and during its wait",
      async () => {
        const holder = await join("compact", "holder-x");
        await lockSlot(holder.store, "holder-x");
        for (let i = 0; i < 20; i++) await currentRevision(client, "compact");
        await etcdctl(
          etcd.endpoints,
          "compact",
          String(await currentRevision(client, "compact")),
        );
        const w = await join("compact", "w");
        const acquiring = w.acquire();
        await until("w joined", () => w.queue.state().place === "head");
        for (let i = 0; i < 20; i++) await currentRevision(client, "compact");
        await etcdctl(
          etcd.endpoints,
          "compact",
          String(await currentRevision(client, "compact")),
        );
        const freed = Date.now();
        await unlockSlot(holder.store, "holder-x");
        await acquiring;
        assert.ok(Date.now() - freed < 1_000, `${Date.now() - freed} ms`);
      },
    );

    await t.step(
      "the one ahead leaving while the queue is being read again is not missed: the third becomes head",
      async () => {
        const holder = await join("reread", "holder");
        await lockSlot(holder.store, "holder");
        const a = await join("reread", "a");
        const b = await join("reread", "b");
        // Two more ahead of c, so that c is behind the front (the first
        // four watch the whole queue and never need to read it again).
        const p = await join("reread", "p");
        const q = await join("reread", "q");
        // c's next re-read is answered only once b has left: the read sees
        // b still there, the watch has already delivered b's leaving.
        let armed = false;
        let hold: Promise<void> | undefined;
        let letGo = () => {};
        let deletesWhileHeld = 0;
        let watchesCreated = 0;
        const c = await join(
          "reread",
          "c",
          undefined,
          (real) =>
            new Proxy(real, {
              get(target, name) {
                if (name === "txn") {
                  return async (...args: Parameters<EtcdPort["txn"]>) => {
                    const answer = await target.txn(...args);
                    const isRead = args[0].compare.length === 0 &&
                      args[0].success.every((op) => "range" in op);
                    if (armed && isRead && hold === undefined) {
                      hold = new Promise<void>((r) => (letGo = r));
                      await hold;
                    }
                    return answer;
                  };
                }
                if (name === "watch") {
                  return (...args: Parameters<EtcdPort["watch"]>) => {
                    const [requests, handlers, endpoint] = args;
                    return target.watch(requests, {
                      ...handlers,
                      onCreated: (revision) => {
                        watchesCreated++;
                        handlers.onCreated?.(revision);
                      },
                      onEvents: (index, events) => {
                        if (hold !== undefined) {
                          deletesWhileHeld += events.filter((e) =>
                            e.type === "DELETE"
                          ).length;
                        }
                        handlers.onEvents(index, events);
                      },
                    }, endpoint);
                  };
                }
                const value = Reflect.get(target, name);
                return typeof value === "function" ? value.bind(target) : value;
              },
            }),
        );
        assert.equal((await a.queue.join()).place, "head");
        assert.equal((await b.queue.join()).place, "second");
        assert.equal((await p.queue.join()).place, "behind");
        assert.equal((await q.queue.join()).place, "behind");
        assert.equal((await c.queue.join()).place, "behind");
        assert.equal(c.queue.state().front, false);
        // What the step depends on: c's watch on the entries ahead is set
        // up (a watch lost meanwhile is the daemon loop's to replace, after
        // a fresh read; no loop runs here).
        await until(
          () =>
            `c's watch on the entries ahead to be set up; c's log:\n${
              c.log.lines.join("\n")
            }`,
          () => watchesCreated > 0,
        );
        armed = true;
        await a.queue.leave(); // c reads the queue again: b is head now
        await until(
          () => `c's re-read to be held; c's log:\n${c.log.lines.join("\n")}`,
          () => hold !== undefined,
        );
        await b.queue.leave();
        await until(
          "b's leaving to be delivered to c's watch while its read is held",
          () => deletesWhileHeld > 0,
        );
        await p.queue.leave();
        await q.queue.leave();
        letGo();
        await until(
          "c to see that it is first in line",
          async () => {
            await c.queue.waitForChange(200);
            return c.queue.state().place === "head";
          },
          3_000,
        );
      },
    );

    await t.step(
      "a change between joining and waiting is not missed",
      async () => {
        const holder = await join("between", "holder");
        await lockSlot(holder.store, "holder");
        const w = await join("between", "w");
        assert.equal((await w.queue.join()).place, "head");
        await unlockSlot(holder.store, "holder"); // before w waits
        const result = await w.queue.waitForChange(5_000);
        assert.equal(result, "changed");
        await until(
          "w sees the free slot",
          () => (w.queue.state().doc?.semaphore ?? 0) > 0,
        );
      },
    );

    await t.step(
      "a waiter killed with SIGKILL leaves an entry that expires with its lease; a stopped one leaves none",
      async () => {
        const start = (id: string) =>
          new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "-A",
              `${REPO_ROOT}tests/harness/queue_waiter.ts`,
              etcd.endpoint,
              "dead",
              id,
              "3",
            ],
            stdout: "piped",
            stderr: "inherit",
          }).spawn();
        const joined = async (child: Deno.ChildProcess) => {
          const reader = child.stdout.pipeThrough(new TextDecoderStream())
            .getReader();
          const { value } = await reader.read();
          reader.releaseLock();
          assert.match(value ?? "", /^joined/);
        };
        const killed = start("killed");
        await joined(killed);
        const stopped = start("stopped");
        await joined(stopped);
        assert.equal((await waiterKeys(client, "dead")).length, 2);
        killed.kill("SIGKILL");
        await killed.status;
        stopped.kill("SIGTERM");
        await stopped.status;
        await until(
          "the stopped waiter's entry is gone at once",
          async () => (await waiterKeys(client, "dead")).length === 1,
          1_000,
        );
        const killedAt = Date.now();
        await until(
          "the killed waiter's entry expires",
          async () => (await waiterKeys(client, "dead")).length === 0,
          6_000,
        );
        assert.ok(Date.now() - killedAt <= 5_000);
        await killed.stdout.cancel().catch(() => {});
        await stopped.stdout.cancel().catch(() => {});
      },
    );

    await t.step(
      "junk under waiters/ is removed by its own key, and never gets a real machine evicted",
      async () => {
        const prefix = waitersPrefix(semaphoreKey("junk"));
        await client.put(`${prefix}%zz`).value("x");
        await client.put(`${prefix}foo`).value("machine-2");
        await client.put(`${prefix}bar`).value('{"id":"someone-else"}');
        const holder = await join("junk", "holder");
        await lockSlot(holder.store, "holder");
        const m2 = await join("junk", "machine-2");
        const m3 = await join("junk", "machine-3");
        assert.equal((await m2.queue.join()).place, "head");
        assert.equal((await m3.queue.join()).place, "second");
        assert.deepEqual((await waiterKeys(client, "junk")).sort(), [
          `${prefix}machine-2`,
          `${prefix}machine-3`,
        ]);
        assert.match(
          m2.log.lines.join("\n"),
          /removing an entry that cannot be a waiter from the queue: .*%zz/,
        );
      },
    );

    await t.step(
      "the second takes a slot the head leaves untaken for the hand-over time, removing only the head",
      async () => {
        const holder = await join("handover", "holder");
        await lockSlot(holder.store, "holder");
        const head = await join("handover", "silent-head");
        assert.equal((await head.queue.join()).place, "head");
        const second = await join("handover", "second");
        const third = await join("handover", "third");
        const acquiring = second.acquire(1_000);
        await until(
          "second joined",
          () => second.queue.state().place === "second",
        );
        assert.equal((await third.queue.join()).place, "behind");
        const freed = Date.now();
        await unlockSlot(holder.store, "holder");
        assert.equal(await acquiring, "held");
        const waited = Date.now() - freed;
        assert.ok(waited >= 1_000 && waited < 3_000, `${waited} ms`);
        const prefix = waitersPrefix(semaphoreKey("handover"));
        assert.deepEqual(await waiterKeys(client, "handover"), [
          `${prefix}third`,
        ]);
        assert.match(
          second.log.lines.join("\n"),
          /silent-head, first in line, did not take it: taking it and removing silent-head from the queue/,
        );
      },
    );

    await t.step(
      "8 waiters on max 2 take slots in the order they joined, no slot idle over 1 s, never more than 2 holders",
      async () => {
        const group = "fifo";
        const admin = await join(group, "admin");
        await admin.store.update((d) => ({ ...d, max: 2, semaphore: 2 }));
        await lockSlot(admin.store, "h1");
        await lockSlot(admin.store, "h2");
        const waiters = [];
        for (let i = 1; i <= 8; i++) {
          const w = await join(group, `w${i}`);
          waiters.push(w);
        }
        const order: string[] = [];
        const runs = [];
        for (const w of waiters) {
          runs.push(
            w.acquire().then(async () => {
              order.push(w.id);
              await sleep(150); // "rebooting"
              await unlockSlot(w.store, w.id);
            }),
          );
          await until(`${w.id} joined`, () => w.queue.state().place !== "out");
        }
        await unlockSlot(admin.store, "h1");
        await unlockSlot(admin.store, "h2");
        const started = Date.now();
        await Promise.all(runs);
        const elapsed = Date.now() - started;
        assert.deepEqual(order, waiters.map((w) => w.id));
        // 8 machines, 2 at a time, 150 ms each: about 600 ms of holding.
        assert.ok(elapsed < 3_000, `took ${elapsed} ms`);
        const report = checkHistory(
          semaphoreKey(group),
          await keyHistory(etcd.endpoints, semaphoreKey(group)),
          [],
        );
        assert.deepEqual(
          report.violations.filter((v) => /exceed/.test(v)),
          [],
        );
      },
    );
  } finally {
    for (const w of open) await w.close().catch(() => {});
    client.close();
    await etcd.close();
  }
});

Deno.test("a waiter survives its member being restarted, then takes the freed slot", async () => {
  const etcd = await startEtcd();
  const open: Waiter[] = [];
  try {
    const holder = await waiter(etcd.endpoints, "restart", "holder");
    open.push(holder);
    await lockSlot(holder.store, "holder");
    const w = await waiter(etcd.endpoints, "restart", "w");
    open.push(w);
    const acquiring = w.acquire();
    await until("w joined", () => w.queue.state().place === "head");
    await etcd.members[0]!.stop();
    await sleep(1_000);
    await etcd.members[0]!.start();
    await etcd.waitHealthy();
    await unlockSlot(holder.store, "holder");
    assert.equal(await acquiring, "held");
    assert.match(
      w.log.lines.join("\n"),
      /the watch was lost|reading the queue again/,
    );
  } finally {
    for (const w of open) await w.close().catch(() => {});
    await etcd.close();
  }
});

Deno.test("a waiter takes a freed slot within 1 s while one follower of a 3-member cluster is paused", async () => {
  const etcd = await startEtcd({ members: 3 });
  const open: Waiter[] = [];
  try {
    await etcd.waitHealthy();
    for (const follower of await etcd.followers()) {
      const group = `paused-${follower.name}`;
      const holder = await waiter(etcd.endpoints, group, "holder");
      const w = await waiter(etcd.endpoints, group, "w");
      open.push(holder, w);
      await lockSlot(holder.store, "holder");
      const acquiring = w.acquire();
      await until("w joined", () => w.queue.state().place === "head");
      follower.pause();
      try {
        await unlockSlot(holder.store, "holder");
        const freed = Date.now();
        assert.equal(await acquiring, "held");
        const waited = Date.now() - freed;
        assert.ok(waited < 1_000, `${follower.name} paused: took ${waited} ms`);
      } finally {
        follower.resume();
      }
      await etcd.waitHealthy();
    }
  } finally {
    for (const w of open) await w.close().catch(() => {});
    await etcd.close();
  }
});
