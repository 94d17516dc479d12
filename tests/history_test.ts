/**
 * The reboot history against a real etcd: each slot event is stored with
 * its change, `locksmithctl history` pairs them into reboots, the ring
 * keeps the last 1,000 changes under a 10,000-event run, and an entry
 * written by hand as junk is skipped with one warning and blocks nothing.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import { openEtcdStore } from "../lib/etcd/open.ts";
import { readHistories } from "../lib/etcd/store/history_read.ts";
import {
  lockSlot,
  setMaxSlots,
  unlockSlot,
} from "../lib/semaphore/lock_store.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { HISTORY_SLOTS, historyPrefix } from "../lib/semaphore/history.ts";

const ID = "69d27b356a94476da859461d3a3bc6fd";

Deno.test("locksmithctl history shows a slot taken and unlocked, with its time away; an open slot comes first, marked", async () => {
  const etcd = await startEtcd();
  try {
    const ctl = (...args: string[]) =>
      runCtlProcess(["--endpoint", etcd.endpoint, ...args]);
    assert.equal((await ctl("set-max", "2")).code, 0);
    assert.equal((await ctl("lock", ID)).code, 0);
    assert.equal((await ctl("lock", "still-away")).code, 0);
    assert.equal((await ctl("unlock", ID)).code, 0);
    const text = await ctl("history");
    assert.equal(text.code, 0, text.stderr);
    const [header, first, second] = text.stdout.trimEnd().split("\n");
    assert.match(header ?? "", /MACHINE\s+TOOK AT\s+BACK AT\s+AWAY\s+OUTCOME/);
    assert.match(
      first ?? "",
      /^\* still-away .* - +\d+s\+ +holding: never released$/,
    );
    assert.match(
      second ?? "",
      new RegExp(`^  ${ID} .*Z +\\d+s +unlocked by an operator$`),
    );
    const json = JSON.parse((await ctl("history", "--json")).stdout);
    assert.equal(json.ok, true);
    assert.deepEqual(
      json.reboots.map((
        r: { id: string; outcome: string },
      ) => [r.id, r.outcome]),
      [["still-away", "holding"], [ID, "unlocked"]],
    );
    assert.equal(typeof json.reboots[1].away_seconds, "number");
    assert.equal(json.reboots[1].by, "locksmithctl");
    // --all-groups adds a group column and every group's reboots.
    assert.equal((await ctl("--group", "web", "lock", "w1")).code, 0);
    const all = await ctl("history", "--all-groups");
    assert.match(all.stdout, /^GROUP +MACHINE/);
    assert.match(all.stdout, /\nweb +\* w1 /);
    assert.match(all.stdout, /\n\(default\) +\* still-away /);
  } finally {
    await etcd.close();
  }
});

Deno.test("the history keeps the events of the last 1,000 changes under a 10,000-event run", async () => {
  const etcd = await startEtcd();
  const store = await openEtcdStore({
    endpoints: etcd.endpoints,
    timeoutMs: 10_000,
  });
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    const events = 10_000;
    for (let i = 0; i < events / 2; i++) {
      const id = `m${String(i).padStart(5, "0")}`;
      await lockSlot(store, id, {
        record: { id, since: new Date().toISOString(), by: "test" },
      });
      await unlockSlot(store, id, {
        kind: "released",
        at: new Date().toISOString(),
      });
    }
    const keys = await client.getAll().prefix(historyPrefix(store.key)).keys();
    assert.equal(keys.length, HISTORY_SLOTS);
    const [history] = await readHistories(store, [store.key]);
    assert.equal(history?.events.length, HISTORY_SLOTS);
    assert.deepEqual(history?.skipped, []);
    // Exactly the newest 1,000, oldest first: m04500 taken ... m04999 released.
    const expected = Array.from({ length: HISTORY_SLOTS }, (_, j) => {
      const i = events / 2 - HISTORY_SLOTS / 2 + Math.floor(j / 2);
      return `${j % 2 === 0 ? "taken" : "released"} m${
        String(i).padStart(5, "0")
      }`;
    });
    assert.deepEqual(history?.events.map((e) => `${e.kind} ${e.id}`), expected);
    // A change without events (set-max) clears its slot: still no more than 1,000.
    await setMaxSlots(store, 3);
    const after = await client.getAll().prefix(historyPrefix(store.key)).keys();
    assert.equal(after.length, HISTORY_SLOTS - 1);
  } finally {
    client.close();
    await store.close();
    await etcd.close();
  }
});

Deno.test("a history key written by hand as junk is skipped with one warning, and slots are still taken and released", async () => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    const prefix = historyPrefix(semaphoreKey());
    const ctl = (...args: string[]) =>
      runCtlProcess(["--endpoint", etcd.endpoint, ...args]);
    await client.put(`${prefix}1`).value("not json {");
    await client.put(`${prefix}junk`).value(JSON.stringify({ events: [1] }));
    await client.put(`${prefix}7`).value(Buffer.from([0xff, 0xfe]));
    // The document's next versions land on slots 1, 2: the junk in slot 1 is overwritten.
    assert.equal((await ctl("lock", ID)).code, 0);
    assert.equal((await ctl("unlock", ID)).code, 0);
    const shown = await ctl("history");
    assert.equal(shown.code, 0);
    assert.match(
      shown.stdout,
      new RegExp(`  ${ID} .* unlocked by an operator`),
    );
    const warnings = shown.stderr.trimEnd().split("\n");
    assert.equal(warnings.length, 1, shown.stderr);
    assert.match(
      warnings[0] ?? "",
      /^locksmithctl: skipped 2 history entries that do not parse \(coreos\.com\/updateengine\/rebootlock\/semaphore\/history\/7, \.\.\.\)$/,
    );
    const json = JSON.parse((await ctl("history", "--json")).stdout);
    assert.deepEqual(json.skipped, [`${prefix}7`, `${prefix}junk`]);
  } finally {
    client.close();
    await etcd.close();
  }
});
