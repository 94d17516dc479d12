/**
 * locksmithd as a subprocess with its real permission flags, against a real
 * etcd and a private system bus (python-dbusmock's logind, an update_engine
 * stand-in).
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import {
  type Machine,
  type MachineOptions,
  startMachine,
} from "./harness/machine.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { NEED_REBOOT } from "../lib/dbus/update_engine.ts";

let etcd: EtcdCluster;
let client: Etcd3;
let counter = 0;

/** A machine on its own group, so that tests do not share a semaphore. */
async function machine(
  config: Record<string, string> = {},
  options: Partial<MachineOptions> = {},
): Promise<Machine & { key: string }> {
  const group = `daemon-${++counter}`;
  const m = await startMachine({
    id: `m${counter}`,
    endpoint: etcd.endpoint,
    config: { LOCKSMITHD_GROUP: group, ...config },
    ...options,
  });
  return Object.assign(m, { key: semaphoreKey(group) });
}

async function withMachine(
  config: Record<string, string>,
  body: (m: Machine & { key: string }) => Promise<void>,
  options: Partial<MachineOptions> = {},
): Promise<void> {
  const m = await machine(config, options);
  try {
    await body(m);
  } finally {
    await m.close();
  }
}

const doc = (semaphore: number, max: number, holders: string[]) =>
  JSON.stringify({ semaphore, max, holders });

Deno.test("locksmithd against a real etcd and a private system bus", async (t) => {
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoints });
  try {
    await t.step("strategy off logs and exits 0", async () => {
      await withMachine({ REBOOT_STRATEGY: "off" }, async (m) => {
        m.startDaemon();
        assert.equal(await m.exited(), 0);
        assert.match(m.lines.join("\n"), /strategy is off/);
        assert.equal(await m.reboots(), 0);
      });
    });

    await t.step(
      "an invalid config value stops it with exit 2 and one line naming the key",
      async () => {
        await withMachine({ REBOOT_STRATEGY: "fast" }, async (m) => {
          m.startDaemon();
          assert.equal(await m.exited(), 2);
          assert.equal(m.lines.length, 1, m.lines.join("\n"));
          assert.match(
            m.lines[0]!,
            /^locksmithd: REBOOT_STRATEGY="fast" \(from .*update\.conf:1\) is not one of etcd-lock, fleetlock, reboot, best-effort, off$/,
          );
        });
      },
    );

    await t.step(
      "etcd-lock: a StatusUpdate NEED_REBOOT signal leads to a slot, then Reboot(false)",
      async () => {
        await withMachine({}, async (m) => {
          m.startDaemon();
          await m.waitForLine(/waiting for a reboot to be needed/);
          assert.equal(await m.reboots(), 0);
          await m.needReboot();
          await m.waitForLine(/reboot requested$/);
          assert.deepEqual(await m.bus.logind.rebootCalls(), [false]);
          assert.equal(await client.get(m.key).string(), doc(0, 1, [m.id]));
          assert.match(m.lines.join("\n"), /took a slot: 1 of 1 held/);
        });
      },
    );

    await t.step(
      "at start a slot held with no reboot pending is released",
      async () => {
        await withMachine({}, async (m) => {
          await client.put(m.key).value(doc(0, 1, [m.id]));
          m.startDaemon();
          await m.waitForLine(
            /released the slot held by .*: the reboot has happened/,
          );
          assert.equal(await client.get(m.key).string(), doc(1, 1, []));
          assert.equal(await m.reboots(), 0);
        });
      },
    );

    await t.step(
      "at start a slot held while the reboot is still pending is kept and used",
      async () => {
        await withMachine({}, async (m) => {
          await client.put(m.key).value(doc(0, 1, [m.id]));
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(/reboot requested$/);
          assert.match(m.lines.join("\n"), /already holds a slot/);
          assert.equal(await client.get(m.key).string(), doc(0, 1, [m.id]));
        });
      },
    );

    await t.step("strategy reboot reboots at once without etcd", async () => {
      await withMachine({
        REBOOT_STRATEGY: "reboot",
        LOCKSMITHD_ENDPOINT: "http://127.0.0.1:1",
      }, async (m) => {
        m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
        m.startDaemon();
        await m.waitForLine(/reboot requested$/);
        assert.match(m.lines.join("\n"), /\(no slot\)/);
      });
    });

    await t.step(
      "best-effort reboots without a slot when etcd does not answer",
      async () => {
        await withMachine({
          REBOOT_STRATEGY: "best-effort",
          LOCKSMITHD_BEST_EFFORT_WAIT: "2s",
        }, async (m) => {
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon(["--endpoint", "http://127.0.0.1:2"]);
          await m.waitForLine(/reboot requested$/);
          assert.match(
            m.lines.join("\n"),
            /best-effort: no etcd endpoint \(http:\/\/127\.0\.0\.1:2\) has answered since locksmithd started, nor within 2s .*rebooting without a slot/,
          );
        });
      },
    );

    await t.step("best-effort takes a slot when etcd answers", async () => {
      await withMachine({ REBOOT_STRATEGY: "best-effort" }, async (m) => {
        m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
        m.startDaemon();
        await m.waitForLine(/reboot requested$/);
        assert.equal(await client.get(m.key).string(), doc(0, 1, [m.id]));
      });
    });

    await t.step(
      "without update_engine on the bus, the sentinel file's appearance means reboot",
      async () => {
        await withMachine({}, async (m) => {
          m.startDaemon();
          await m.waitForLine(/waiting for a reboot to be needed/);
          await new Promise((r) => setTimeout(r, 300));
          assert.equal(await m.reboots(), 0);
          await Deno.writeTextFile(m.sentinel, "");
          await m.waitForLine(/reboot requested$/);
        }, { updateEngine: false });
      },
    );

    await t.step(
      "malformed StatusUpdate signals are logged and ignored, a good one still works",
      async () => {
        await withMachine({}, async (m) => {
          m.startDaemon();
          await m.waitForLine(/waiting for a reboot to be needed/);
          await m.bus.updateEngine.emitRaw({
            signature: "s",
            body: [NEED_REBOOT],
          });
          await m.bus.updateEngine.emitRaw({
            signature: "xdsss",
            body: [0n, 0, NEED_REBOOT, "", ""],
          });
          await m.bus.updateEngine.emitRaw({ signature: "", body: [] });
          // Logged while the signals are sent: earlier lines count.
          await m.waitForLine(
            /ignoring a malformed StatusUpdate signal/,
            20_000,
            true,
          );
          await new Promise((r) => setTimeout(r, 200));
          assert.ok(m.running, "the daemon is still running");
          assert.equal(await m.reboots(), 0);
          await m.needReboot();
          await m.waitForLine(/reboot requested$/);
        });
      },
    );

    await t.step(
      "logged-in users delay the reboot by LOCKSMITHD_LOGIN_DELAY",
      async () => {
        await withMachine({ LOCKSMITHD_LOGIN_DELAY: "2s" }, async (m) => {
          await m.bus.logind.addSession();
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(/1 user session\(s\) logged in: rebooting in 2s/);
          const started = Date.now();
          await m.waitForLine(/reboot requested$/);
          assert.ok(
            Date.now() - started >= 1_800,
            `rebooted after ${Date.now() - started} ms`,
          );
        });
      },
    );

    await t.step(
      "outside its reboot window it waits and does not reboot",
      async () => {
        const now = new Date();
        const opens = new Date(now.getTime() + 3 * 3_600_000);
        const start = `${opens.getUTCHours()}:${
          String(opens.getUTCMinutes()).padStart(2, "0")
        }`;
        await withMachine({
          LOCKSMITHD_REBOOT_WINDOW_START: start,
          LOCKSMITHD_REBOOT_WINDOW_LENGTH: "1h",
          LOCKSMITHD_REBOOT_WINDOW_TZ: "UTC",
        }, async (m) => {
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(
            /waiting for the reboot window .* for 1h \(UTC\): it opens at /,
          );
          await new Promise((r) => setTimeout(r, 500));
          assert.equal(await m.reboots(), 0);
          assert.equal(
            await client.get(m.key).string(),
            null,
            "no slot taken outside the window",
          );
        });
      },
    );

    await t.step("inside its reboot window it reboots", async () => {
      const now = new Date();
      const start = `${now.getUTCHours()}:${
        String(now.getUTCMinutes()).padStart(2, "0")
      }`;
      await withMachine({
        REBOOT_WINDOW_START: start,
        REBOOT_WINDOW_LENGTH: "1h",
        LOCKSMITHD_REBOOT_WINDOW_TZ: "UTC",
      }, async (m) => {
        m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
        m.startDaemon();
        await m.waitForLine(/reboot requested$/);
      });
    });

    await t.step(
      "SIGTERM while waiting for a slot exits promptly with status 0",
      async () => {
        await withMachine({}, async (m) => {
          await client.put(m.key).value(doc(0, 1, ["other"]));
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(
            /no slot free for this machine \(max 1, held by other; first in line\); waiting/,
          );
          const started = Date.now();
          assert.equal(await m.stopDaemon("SIGTERM"), 0);
          assert.ok(
            Date.now() - started < 3_000,
            `took ${Date.now() - started} ms`,
          );
          assert.match(m.lines.at(-1)!, /SIGTERM received: stopping/);
          assert.equal(await client.get(m.key).string(), doc(0, 1, ["other"]));
        });
      },
    );
  } finally {
    client.close();
    await etcd.close();
  }
});

Deno.test("locksmithd survives etcd outages", async (t) => {
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoints });
  const member = etcd.members[0]!;
  try {
    await t.step(
      "etcd down at start: it retries with backoff and takes the slot when etcd is back",
      async () => {
        await withMachine({}, async (m) => {
          await member.stop();
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(
            /cannot check this machine's slot: cannot reach etcd .*; retrying in \d/,
          );
          await member.start();
          await etcd.waitHealthy();
          await m.waitForLine(/reboot requested$/, 30_000, true);
          assert.equal(await client.get(m.key).string(), doc(0, 1, [m.id]));
        });
      },
    );

    await t.step(
      "etcd gone while waiting for a slot: it logs each backoff step, keeps waiting, and takes the slot when etcd returns",
      async () => {
        await withMachine({}, async (m) => {
          await client.put(m.key).value(doc(0, 1, ["other"]));
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(/no slot free/);
          await member.stop();
          await m.waitForLine(/cannot take a slot: .*retrying in/, 30_000);
          await m.waitForLine(/cannot take a slot: .*retrying in/, 30_000);
          const outage = m.lines.filter((l) => /cannot take a slot/.test(l));
          assert.ok(outage.length >= 2);
          assert.ok(m.running);
          assert.equal(await m.reboots(), 0);
          await member.start();
          await etcd.waitHealthy();
          const fresh = new Etcd3({ hosts: etcd.endpoints });
          try {
            await fresh.put(m.key).value(doc(1, 1, []));
          } finally {
            fresh.close();
          }
          await m.waitForLine(/reboot requested$/, 60_000, true);
          assert.equal(await client.get(m.key).string(), doc(0, 1, [m.id]));
        });
      },
    );

    await t.step(
      "best-effort waiting on a full semaphore never reboots without a slot while etcd is stopped for 15 s, then takes the slot once free",
      async () => {
        await withMachine({ REBOOT_STRATEGY: "best-effort" }, async (m) => {
          await client.put(m.key).value(doc(0, 1, ["holder-1"]));
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(/no slot free/);
          await member.stop();
          await new Promise((r) => setTimeout(r, 15_000));
          assert.equal(await m.reboots(), 0, "no reboot during the outage");
          await member.start();
          await etcd.waitHealthy();
          const fresh = new Etcd3({ hosts: etcd.endpoints });
          try {
            await fresh.put(m.key).value(doc(1, 1, []));
          } finally {
            fresh.close();
          }
          await m.waitForLine(/reboot requested$/, 90_000, true);
          assert.doesNotMatch(m.lines.join("\n"), /without a slot/);
          assert.equal(await client.get(m.key).string(), doc(0, 1, [m.id]));
        });
      },
    );
  } finally {
    client.close();
    await etcd.close();
  }
});
