/**
 * The rules locksmithd exists to enforce, with the daemon as a subprocess
 * (its real permission set) on a private system bus against a real etcd:
 * never outside the window even when logind refuses, a refused reboot does
 * not block the fleet, the slot is released by boot id (a restart on the
 * same boot keeps it), a sentinel from before this boot does not reboot,
 * SIGHUP is survived, and an unusable sentinel path is a configuration
 * error.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { type Machine, startMachine } from "./harness/machine.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { IDLE, NEED_REBOOT } from "../lib/dbus/update_engine.ts";

let etcd: EtcdCluster;
let client: Etcd3;
let counter = 0;

async function withMachine(
  config: Record<string, string>,
  body: (m: Machine & { key: string }) => Promise<void>,
  env: Record<string, string> = {},
): Promise<void> {
  const group = `rules-${++counter}`;
  const m = await startMachine({
    id: `r${counter}`,
    endpoint: etcd.endpoint,
    config: { LOCKSMITHD_GROUP: group, ...config },
    env,
  });
  try {
    await body(Object.assign(m, { key: semaphoreKey(group) }));
  } finally {
    await m.close();
  }
}

const doc = (semaphore: number, max: number, holders: string[]) =>
  JSON.stringify({ semaphore, max, holders });

/** A daily window that opened at the start of this minute and closes `left` seconds from now. */
function windowClosingIn(left: number): Record<string, string> {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  return {
    REBOOT_WINDOW_START: `${pad(now.getUTCHours())}:${
      pad(now.getUTCMinutes())
    }`,
    REBOOT_WINDOW_LENGTH: `${now.getUTCSeconds() + left}s`,
    LOCKSMITHD_REBOOT_WINDOW_TZ: "UTC",
  };
}

Deno.test("locksmithd keeps its rules against logind, boots and sentinels", async (t) => {
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoints });
  try {
    await t.step(
      "a reboot logind refuses until the window closes is never made late: the slot is given back",
      async () => {
        await withMachine(windowClosingIn(12), async (m) => {
          await m.bus.logind.refuseReboot();
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(/took a slot/);
          await m.waitForLine(
            /the reboot window closed before the reboot was accepted/,
            30_000,
          );
          await m.waitForLine(
            /released the slot held by r\d+: the reboot window closed before rebooting/,
          );
          await m.bus.logind.allowReboot();
          await m.waitForLine(/waiting for the reboot window/, 10_000, true);
          assert.equal(await client.get(m.key).string(), doc(1, 1, []));
          assert.ok((await m.reboots()) >= 1, "logind was asked");
          assert.ok(m.running);
        });
      },
    );

    await t.step(
      "a reboot logind keeps refusing gives the slot back after LOCKSMITHD_REBOOT_RETRY_LIMIT",
      async () => {
        await withMachine(
          { LOCKSMITHD_REBOOT_RETRY_LIMIT: "6s" },
          async (m) => {
            await m.bus.logind.refuseReboot();
            m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
            m.startDaemon();
            await m.waitForLine(
              /the reboot request has failed for .*; giving the slot back so that the fleet is not blocked/,
              30_000,
            );
            await m.waitForLine(
              /released the slot held by r\d+: the reboot request kept failing/,
              20_000,
              true,
            );
            assert.equal(await client.get(m.key).string(), doc(1, 1, []));
            await m.waitForLine(/trying again in/, 20_000, true);
          },
        );
      },
    );

    await t.step(
      "a restart on the same boot keeps the slot while the reboot is pending, and releases it once nothing is",
      async () => {
        await withMachine({}, async (m) => {
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(/reboot requested$/);
          await m.stopDaemon();
          // Same boot (the harness keeps the boot id), reboot still pending.
          m.startDaemon();
          await m.waitForLine(
            /keeping the slot held by r\d+: this boot took it and its reboot is still pending/,
          );
          await m.waitForLine(/reboot requested$/);
          assert.equal(await client.get(m.key).string(), doc(0, 1, [m.id]));
          await m.stopDaemon();
          m.bus.updateEngine.setStatus({ currentOperation: IDLE });
          m.startDaemon();
          await m.waitForLine(
            /released the slot held by r\d+: this boot took it but no reboot is pending any more/,
          );
          assert.equal(await client.get(m.key).string(), doc(1, 1, []));
          // A reboot needed again: the slot is taken on this boot; after the
          // reboot (a new boot id) it is released because the boot changed.
          await m.stopDaemon();
          m.bus.updateEngine.setStatus({ currentOperation: NEED_REBOOT });
          m.startDaemon();
          await m.waitForLine(/reboot requested$/, 20_000);
          await m.reboot(); // a new boot id; nothing pending
          await m.waitForLine(
            /released the slot held by r\d+: the reboot has happened \(the boot id changed\)/,
            20_000,
            true,
          );
          assert.equal(await client.get(m.key).string(), doc(1, 1, []));
        });
      },
    );

    await t.step(
      "a sentinel file from before this boot does not reboot the machine, and the log says why",
      async () => {
        await withMachine(
          { LOCKSMITHD_LOGIN_DELAY: "0" },
          async (m) => {
            await Deno.writeTextFile(m.sentinel, "");
            const old = new Date("2020-01-01T00:00:00Z");
            await Deno.utime(m.sentinel, old, old);
            m.startDaemon();
            await m.waitForLine(
              /the reboot sentinel .* was last modified at 2020-01-01T00:00:00.000Z, before this boot .*: ignoring it/,
            );
            await m.waitForLine(
              /waiting for a reboot to be needed/,
              10_000,
              true,
            );
            await new Promise((r) => setTimeout(r, 3_000));
            assert.equal(await m.reboots(), 0);
            await Deno.utime(m.sentinel, new Date(), new Date());
            await m.waitForLine(/reboot needed \(sentinel file/);
            await m.waitForLine(/reboot requested$/);
          },
        );
      },
    );

    await t.step("SIGHUP is logged and survived", async () => {
      await withMachine({}, async (m) => {
        m.startDaemon();
        await m.waitForLine(/waiting for a reboot to be needed/);
        m.signal("SIGHUP");
        await m.waitForLine(
          /SIGHUP received: locksmithd reads its configuration at start only; restart it to apply changes/,
        );
        // The line is logged by the handler: the signal has been handled.
        assert.ok(m.running, "still running after SIGHUP");
        await m.needReboot();
        await m.waitForLine(/reboot requested$/);
      });
    });

    await t.step(
      "a sentinel path the daemon may not read is a configuration error at start, naming the flag",
      async () => {
        await withMachine(
          {},
          async (m) => {
            m.startDaemon();
            assert.equal(await m.exited(), 2);
            assert.match(
              m.lines.join("\n"),
              /^locksmithd: missing Deno permissions: read access to \/var\/lib\/locksmith-test\/reboot-required \(LOCKSMITHD_REBOOT_SENTINEL\): --allow-read=\/var\/lib\/locksmith-test\/reboot-required; run again with --allow-read=\/var\/lib\/locksmith-test\/reboot-required$/m,
            );
          },
          {
            LOCKSMITHD_REBOOT_SENTINEL:
              "/var/lib/locksmith-test/reboot-required",
          },
        );
      },
    );
  } finally {
    client.close();
    await etcd.close();
  }
});
