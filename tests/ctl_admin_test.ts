/**
 * locksmithctl's fleet view and controls as a subprocess, with its real
 * permission flags, against a real etcd: status (the original's two
 * outputs byte for byte, holder records, the queue, a pause, the TTL),
 * `--all-groups`, `--watch`, `pause`/`resume`, `set-ttl`, `unlock --stale`.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { runCtlProcess, spawnProgram } from "./harness/ctl_process.ts";
import { startLeaseHolder } from "./harness/lease_holder.ts";
import { openEtcdStore } from "../lib/etcd/open.ts";
import { LeaseSession } from "../lib/etcd/queue/lease_session.ts";
import { EtcdWaitQueue } from "../lib/etcd/queue/wait_queue.ts";
import { semaphoreKey, settingsKey } from "../lib/semaphore/keys.ts";
import { parseCtlArgs } from "../lib/ctl/args.ts";
import { UsageError } from "../lib/common/errors.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("locksmithctl's fleet view and controls against a real etcd", async (t) => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  const ctl = (...args: string[]) =>
    runCtlProcess(["--endpoint", etcd.endpoint, ...args]);
  const cleanup: (() => Promise<void>)[] = [];
  try {
    await t.step(
      "status keeps the original's two outputs byte for byte when there is nothing more to say",
      async () => {
        const empty = await ctl("status", "--group", "seed");
        assert.deepEqual([empty.code, empty.stdout, empty.stderr], [
          0,
          "Available: 1\nMax: 1\n",
          "",
        ]);
        // Holders written as the original locksmith writes them: no records.
        await client.put(semaphoreKey("seed")).value(
          '{"semaphore":0,"max":2,"holders":["a1","b2"]}',
        );
        const held = await ctl("status", "--group", "seed");
        assert.equal(
          held.stdout,
          "Available: 0\nMax: 2\n\nMACHINE ID\na1\nb2\n",
        );
      },
    );

    await t.step(
      "pause refuses new slots with error kind 'paused' while holders keep theirs; resume lets them in again",
      async () => {
        const g = ["--group", "paused"];
        assert.equal((await ctl("set-max", "2", ...g)).code, 0);
        assert.equal((await ctl("lock", "holder", ...g)).code, 0);
        const pause = await ctl("pause", ...g);
        assert.deepEqual([pause.code, pause.stdout, pause.stderr], [
          0,
          "Paused: no new slot is given until 'locksmithctl resume'; holders keep theirs\n",
          "",
        ]);
        assert.equal((await ctl("pause", ...g)).stdout, "Already paused\n");
        const status = await ctl("status", ...g);
        assert.match(
          status.stdout,
          // deno-lint-ignore no-regex-spaces
          /^Available: 1\nMax: 2\nPAUSED since \d{4}-\d\d-\d\dT[\d:.]+Z: no new slot is given until 'locksmithctl resume'\n\nMACHINE ID  HELD FOR  BY            BOOT  LEASE\nholder      \d+s +locksmithctl  -     -\n$/,
        );
        const refused = await ctl("lock", "newcomer", ...g);
        assert.equal(refused.code, 1);
        assert.equal(
          refused.stderr,
          `Error locking: the semaphore ${
            semaphoreKey("paused")
          } is paused: no slot is given until 'locksmithctl resume'\n`,
        );
        const json = JSON.parse(
          (await ctl("--json", "lock", "x", ...g)).stdout,
        );
        assert.equal(json.error, "paused");
        assert.equal(
          JSON.parse((await ctl("--json", "status", ...g)).stdout).paused,
          true,
        );
        assert.equal((await ctl("unlock", "holder", ...g)).code, 0);
        assert.equal((await ctl("resume", ...g)).stdout, "Resumed\n");
        assert.equal((await ctl("resume", ...g)).stdout, "Not paused\n");
        assert.equal((await ctl("lock", "newcomer", ...g)).code, 0);
      },
    );

    await t.step(
      "set-ttl stores the slot TTL with the semaphore, refuses one shorter than a minute, and 'default' removes it",
      async () => {
        const g = ["--group", "ttl"];
        const short = await ctl("set-ttl", "30s", ...g);
        assert.deepEqual([short.code, short.stdout, short.stderr], [
          2,
          "",
          `locksmithctl: set-ttl: "30s" is shorter than the minimum slot TTL 1m (it must cover a machine that is down for its reboot)\n`,
        ]);
        assert.equal(
          (await ctl("set-ttl", "10m", ...g)).stdout,
          "Old: default\nNew: 10m\n",
        );
        assert.equal(
          await client.get(settingsKey(semaphoreKey("ttl"))).string(),
          '{"slotTtlSeconds":600}',
        );
        assert.equal(
          (await ctl("status", ...g)).stdout,
          "Available: 1\nMax: 1\nSlot TTL: 10m\n",
        );
        assert.deepEqual(
          JSON.parse((await ctl("--json", "set-ttl", "off", ...g)).stdout),
          {
            ok: true,
            command: "set-ttl",
            key: semaphoreKey("ttl"),
            old: 600,
            new: 0,
          },
        );
        assert.equal(
          (await ctl("set-ttl", "default", ...g)).stdout,
          "Old: off\nNew: default\n",
        );
        assert.equal(
          await client.get(settingsKey(semaphoreKey("ttl"))).string(),
          null,
        );
        // Settings that do not parse are never overwritten by a TTL.
        await client.put(settingsKey(semaphoreKey("ttl"))).value("{oops");
        const corrupt = await ctl("set-ttl", "10m", ...g);
        assert.equal(corrupt.code, 1);
        assert.equal(
          corrupt.stderr,
          `Error setting the slot TTL: semaphore document at ${
            settingsKey(semaphoreKey("ttl"))
          } is corrupt: not valid JSON; 'locksmithctl set-ttl default' removes it\n`,
        );
        assert.equal(
          (await ctl("status", ...g)).stdout,
          "Available: 1\nMax: 1\nSlot TTL: none (the stored settings do not parse: not valid JSON)\n",
        );
        assert.equal(
          (await ctl("set-ttl", "default", ...g)).stdout,
          "Old: unreadable\nNew: default\n",
        );
      },
    );

    await t.step(
      "status shows a renewing holder's lease alive, then expired once it is killed; unlock --stale reclaims it",
      async () => {
        const g = ["--group", "stale"];
        const holder = await startLeaseHolder(
          etcd.endpoint,
          "stale",
          "dead-machine",
          2,
          200,
        );
        cleanup.push(async () => {
          try {
            holder.kill("SIGKILL");
          } catch { /* gone */ }
          await holder.status;
        });
        const alive = await ctl("status", ...g);
        assert.match(
          alive.stdout,
          // deno-lint-ignore no-regex-spaces
          /^Available: 0\nMax: 1\n\nMACHINE ID    HELD FOR  BY            BOOT                LEASE\ndead-machine  \d+s +lease_holder  boot-of-the-holder  alive\n$/,
        );
        assert.equal(
          (await ctl("unlock", "--stale", ...g)).stdout,
          "No stale slot\n",
        );
        holder.kill("SIGKILL");
        await holder.status;
        let expired = "";
        for (let i = 0; i < 100 && !expired.includes("expired"); i++) {
          await sleep(100);
          expired = (await ctl("status", ...g)).stdout;
        }
        // deno-lint-ignore no-regex-spaces
        assert.match(expired, /dead-machine  .*  expired\n$/);
        const groups = await ctl("status", "--all-groups");
        // deno-lint-ignore no-regex-spaces
        assert.match(groups.stdout, /\nstale      0 +1 +1 +1 +0 +-\n/);
        const reclaim = await ctl("unlock", "--stale", ...g);
        assert.match(
          reclaim.stdout,
          /^Reclaimed dead-machine: its lease \d+ expired; held for \d+s \(boot boot-of-the-holder\)\n$/,
        );
        assert.equal(
          (await ctl("unlock", "--stale", ...g)).stdout,
          "No stale slot\n",
        );
        assert.equal(
          (await ctl("status", ...g)).stdout,
          "Available: 1\nMax: 1\n",
        );
        const withId = await ctl("unlock", "--stale", "x", ...g);
        assert.equal(withId.code, 2);
      },
    );

    await t.step("status lists the wait queue in order", async () => {
      const group = "queued";
      assert.equal((await ctl("lock", "holder", "--group", group)).code, 0);
      for (const id of ["first-waiter", "second-waiter"]) {
        const store = await openEtcdStore({
          endpoints: etcd.endpoints,
          timeoutMs: 5_000,
        }, group);
        const queue = new EtcdWaitQueue(store, {
          id,
          session: new LeaseSession(store.port, { timeoutMs: 5_000 }),
        });
        await queue.join();
        cleanup.push(async () => {
          await queue.close();
          await store.close();
        });
      }
      const status = await ctl("status", "--group", group);
      assert.match(
        status.stdout,
        // deno-lint-ignore no-regex-spaces
        /^Available: 0\nMax: 1\n\nMACHINE ID  HELD FOR  BY            BOOT  LEASE\nholder      \d+s +locksmithctl  -     -\n\nWAITING        SINCE\nfirst-waiter   \d+s ago\nsecond-waiter  \d+s ago\n$/,
      );
      const json = JSON.parse(
        (await ctl("--json", "status", "--group", group)).stdout,
      );
      assert.deepEqual(json.waiting.map((w: { id: string }) => w.id), [
        "first-waiter",
        "second-waiter",
      ]);
      assert.equal(json.waitingCount, 2);
    });

    await t.step(
      "status --all-groups lists every group's semaphore in one table",
      async () => {
        const r = await ctl("status", "--all-groups");
        assert.equal(r.code, 0, r.stderr);
        const lines = r.stdout.split("\n");
        assert.equal(
          lines[0],
          "GROUP      AVAILABLE  MAX  HOLDERS  STALE  WAITING  SLOT TTL  STATE",
        );
        assert.deepEqual(lines.slice(1).map((l) => l.split(/ +/)[0]), [
          "(default)",
          "paused",
          "queued",
          "seed",
          "stale", // "ttl" is gone: nothing is stored under it any more
          "",
        ]);
        assert.match(r.stdout, /\nqueued +0 +1 +1 +0 +2 +- *\n/);
        const json = JSON.parse(
          (await ctl("--json", "status", "--all-groups")).stdout,
        );
        assert.equal(json.groups.length, 5);
        assert.deepEqual(json.groups[3], {
          group: "seed",
          key: semaphoreKey("seed"),
          available: 0,
          max: 2,
          holders: ["a1", "b2"],
          stale: [],
          waitingCount: 0,
          slotTtlSeconds: null,
          paused: false,
        });
      },
    );

    await t.step(
      "status --watch prints one JSON line per change until SIGINT, then exits 0",
      async () => {
        const g = ["--group", "watched"];
        const child = spawnProgram("ctl", [
          "--endpoint",
          etcd.endpoint,
          "status",
          "--watch",
          "--json",
          ...g,
        ]);
        const reader = child.stdout.pipeThrough(new TextDecoderStream())
          .getReader();
        let text = "";
        const nextLine = async (): Promise<Record<string, unknown>> => {
          const deadline = Date.now() + 15_000;
          while (!text.includes("\n")) {
            if (Date.now() > deadline) throw new Error(`no line: ${text}`);
            const { value, done } = await reader.read();
            if (done) throw new Error(`ended: ${text}`);
            text += value;
          }
          const line = text.slice(0, text.indexOf("\n"));
          text = text.slice(text.indexOf("\n") + 1);
          return JSON.parse(line);
        };
        try {
          const first = await nextLine();
          assert.deepEqual([first.available, first.holders], [1, []]);
          assert.equal((await ctl("lock", "m1", ...g)).code, 0);
          const locked = await nextLine();
          assert.deepEqual([locked.available, locked.holders], [0, ["m1"]]);
          assert.equal((await ctl("pause", ...g)).code, 0);
          assert.equal((await nextLine()).paused, true);
          assert.equal((await ctl("set-ttl", "5m", ...g)).code, 0);
          assert.equal((await nextLine()).slotTtlSeconds, 300);
          child.kill("SIGINT");
          const status = await child.status;
          assert.equal(status.code, 0);
          assert.equal(await new Response(child.stderr).text(), "");
        } finally {
          try {
            child.kill("SIGKILL");
          } catch { /* ended */ }
          await reader.cancel().catch(() => {});
          await child.status;
        }
        // Without a terminal, each drawing starts with a time line.
        const once = spawnProgram("ctl", [
          "--endpoint",
          etcd.endpoint,
          "status",
          "--watch",
          ...g,
        ], { stderr: "null" });
        const textReader = once.stdout.pipeThrough(new TextDecoderStream())
          .getReader();
        let drawn = "";
        while (!drawn.includes("Slot TTL: 5m\n")) {
          const { value, done } = await textReader.read();
          if (done) break;
          drawn += value;
        }
        once.kill("SIGINT");
        assert.equal((await once.status).code, 0);
        await textReader.cancel().catch(() => {});
        assert.match(
          drawn,
          /^--- \d{4}-\d\d-\d\dT[\d:.]+Z\nAvailable: 0\nMax: 1\nPAUSED since [^\n]+\nSlot TTL: 5m\n/,
        );
      },
    );
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    client.close();
    await etcd.close();
  }
});

Deno.test("the new commands' arguments: set-ttl's value, and the flags that do not go together", () => {
  assert.equal(parseCtlArgs(["set-ttl", "15m"]).ttl, 900);
  assert.equal(parseCtlArgs(["set-ttl", "off"]).ttl, 0);
  assert.equal(parseCtlArgs(["set-ttl", "default"]).ttl, "default");
  assert.equal(parseCtlArgs(["unlock", "--stale"]).stale, true);
  assert.deepEqual(
    [parseCtlArgs(["pause"]).command, parseCtlArgs(["resume"]).command],
    ["pause", "resume"],
  );
  assert.throws(
    () => parseCtlArgs(["set-ttl"]),
    new UsageError(
      "set-ttl takes 1 argument, got 0; run 'locksmithctl help set-ttl'",
    ),
  );
  assert.throws(
    () => parseCtlArgs(["status", "--watch", "--all-groups"]),
    new UsageError(
      "status --watch follows one semaphore; --all-groups cannot be combined with it",
    ),
  );
  assert.throws(
    () => parseCtlArgs(["unlock", "--stale", "m1"]),
    new UsageError(
      "unlock --stale reclaims every stale slot and takes no ID; run 'locksmithctl help unlock'",
    ),
  );
});
