/**
 * Never trust a stale copy: a document that was corrupt (or deleted) once
 * and repaired since is read afresh before anything is refused, by the lock
 * store (the daemon's release), `locksmithd serve` and `locksmithctl
 * status --watch`; and a document that does not parse is never written
 * over. Real etcd, a real `serve` and a real locksmithctl.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { startServeProcess } from "./harness/serve_process.ts";
import { spawnProgram } from "./harness/ctl_process.ts";
import { openEtcdLockStore } from "../lib/etcd/open.ts";
import { lockSlot, unlockSlot } from "../lib/semaphore/lock_store.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { CorruptDocumentError } from "../lib/common/errors.ts";
import { fleetLockKey } from "../lib/fleetlock/protocol/protocol.ts";

const CORRUPT = '{"semaphore": 0, "max": 1, "holders": ["a"'; // cut short

Deno.test("a stale copy is never trusted", async (t) => {
  const etcd = await startEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoints });
  const open = (group: string) =>
    openEtcdLockStore({ endpoints: etcd.endpoints, timeoutMs: 5_000 }, group);
  try {
    await t.step(
      "a release that met a corrupt document succeeds at once after the repair, and never wrote over it",
      async () => {
        const key = semaphoreKey("release");
        const holder = await open("release");
        try {
          await lockSlot(holder, "a");
          const good = await raw.get(key).string();
          await raw.put(key).value(CORRUPT);
          // The holder's release meets the corrupt document.
          await assert.rejects(
            () => unlockSlot(holder, "a"),
            CorruptDocumentError,
          );
          assert.equal(
            await raw.get(key).string(),
            CORRUPT,
            "not written over",
          );
          await raw.put(key).value(good!);
          const released = await unlockSlot(holder, "a");
          assert.deepEqual(released.after.holders, []);
          assert.deepEqual(
            JSON.parse((await raw.get(key).string())!).holders,
            [],
          );
        } finally {
          await holder.close();
        }
      },
    );

    await t.step(
      "a document deleted since it was cached reads as absent, and the next lock takes a slot",
      async () => {
        const key = semaphoreKey("deleted");
        const store = await open("deleted");
        try {
          await lockSlot(store, "a");
          await raw.delete().key(key);
          assert.equal((await store.read()).raw, undefined);
          const taken = await lockSlot(store, "b");
          assert.deepEqual(taken.after.holders, ["b"]);
        } finally {
          await store.close();
        }
      },
    );

    await t.step(
      "locksmithd serve answers again at once after a corrupt document is repaired",
      async () => {
        const serve = await startServeProcess({ endpoint: etcd.endpoint });
        const call = async (endpoint: string, id: string) => {
          const res = await fetch(`${serve.url}v1/${endpoint}`, {
            method: "POST",
            headers: { "fleet-lock-protocol": "true" },
            body: JSON.stringify({ client_params: { id, group: "fixed" } }),
          });
          return { status: res.status, body: await res.text() };
        };
        try {
          const key = fleetLockKey("fixed");
          assert.equal((await call("pre-reboot", "n1")).status, 200);
          const good = await raw.get(key).string();
          await raw.put(key).value(CORRUPT);
          const broken = await call("steady-state", "n1");
          assert.equal(broken.status, 500, broken.body);
          assert.equal(JSON.parse(broken.body).kind, "internal_error");
          assert.equal(
            await raw.get(key).string(),
            CORRUPT,
            "not written over",
          );
          await raw.put(key).value(good!);
          const released = await call("steady-state", "n1");
          assert.equal(released.status, 200, released.body);
          assert.match(released.body, /n1 released its slot \(0\/1 held\)/);
          assert.equal((await call("pre-reboot", "n2")).status, 200);
        } finally {
          await serve.close();
        }
      },
    );

    await t.step(
      "locksmithctl status --watch shows a repaired document at once, however long it was corrupt",
      async () => {
        const key = semaphoreKey("watched");
        await raw.put(key).value('{"semaphore":1,"max":2,"holders":["w1"]}');
        const child = spawnProgram("ctl", [
          "--endpoint",
          etcd.endpoint,
          "--group",
          "watched",
          "status",
          "--watch",
          "--json",
        ]);
        const lines: string[] = [];
        const troubles: string[] = [];
        const pump = (stream: ReadableStream<Uint8Array>, into: string[]) =>
          stream.pipeThrough(new TextDecoderStream()).pipeTo(
            new WritableStream({
              write(chunk) {
                into.push(...chunk.split("\n").filter((l) => l !== ""));
              },
            }),
          );
        const pumps = [pump(child.stdout, lines), pump(child.stderr, troubles)];
        const until = async (what: string, ok: () => boolean) => {
          const deadline = Date.now() + 20_000;
          while (!ok()) {
            if (Date.now() > deadline) {
              throw new Error(`${what}: ${[...lines, ...troubles].join("\n")}`);
            }
            await new Promise((r) => setTimeout(r, 20));
          }
        };
        try {
          await until("first view", () => lines.length === 1);
          await raw.put(key).value(CORRUPT);
          await until(
            "the corrupt document",
            () => troubles.some((l) => l.includes("is corrupt")),
          );
          // Corrupt for a while (as when an operator takes time to repair):
          // a blind backoff would by now wait 8 s before its next read.
          await new Promise((r) => setTimeout(r, 7_500));
          const seen = lines.length;
          await raw.put(key).value(
            '{"semaphore":0,"max":2,"holders":["w1","w2"]}',
          );
          const repaired = Date.now();
          await until("the repaired document", () => lines.length > seen);
          const waited = Date.now() - repaired;
          const view = JSON.parse(lines.at(-1)!);
          assert.deepEqual(view.holders, ["w1", "w2"]);
          assert.ok(waited < 3_000, `shown ${waited} ms after the repair`);
          child.kill("SIGINT");
          assert.equal((await child.status).code, 0);
        } finally {
          try {
            child.kill("SIGKILL");
          } catch { /* ended */ }
          await child.status;
          await Promise.allSettled(pumps);
        }
      },
    );
  } finally {
    raw.close();
    await etcd.close();
  }
});
