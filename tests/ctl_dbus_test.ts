/** locksmithctl's D-Bus commands on a private system bus, and a daemon woken by them. */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import { startMachine } from "./harness/machine.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";

Deno.test("locksmithctl on the system bus", async (t) => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  const m = await startMachine({
    id: "ctl-dbus",
    endpoint: etcd.endpoint,
    config: { LOCKSMITHD_GROUP: "ctl-dbus" },
  });
  const ctl = (args: string[]) =>
    runCtlProcess([...args, "--endpoint", etcd.endpoint], {
      env: m.bus.env,
      extraRead: [m.bus.dir],
      extraWrite: [m.bus.dir],
    });
  try {
    await t.step(
      "send-need-reboot wakes a waiting locksmithd, which reboots",
      async () => {
        m.startDaemon();
        await m.waitForLine(/waiting for a reboot to be needed/);
        const r = await ctl(["send-need-reboot"]);
        assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""]);
        await m.waitForLine(/reboot requested$/, 20_000, true);
        assert.equal(await m.reboots(), 1);
        await m.stopDaemon();
        await m.bus.logind.clearCalls();
      },
    );

    await t.step(
      "reboot takes this machine's slot, then asks logind to Reboot(false)",
      async () => {
        const machineId = (await Deno.readTextFile("/etc/machine-id")).trim();
        assert.equal(
          Deno.uid(),
          0,
          "locksmithctl reboot must be tested as root",
        );
        const r = await ctl(["reboot", "--group", "ctl-reboot"]);
        assert.deepEqual([r.code, r.stderr], [0, ""]);
        assert.deepEqual(await m.bus.logind.rebootCalls(), [false]);
        assert.equal(
          await client.get(semaphoreKey("ctl-reboot")).string(),
          JSON.stringify({ semaphore: 0, max: 1, holders: [machineId] }),
        );
      },
    );

    await t.step(
      "reboot refuses when the slot cannot be taken, and does not reboot",
      async () => {
        await m.bus.logind.clearCalls();
        await client.put(semaphoreKey("ctl-full")).value(
          '{"semaphore":0,"max":1,"holders":["other"]}',
        );
        const r = await ctl(["reboot", "--group", "ctl-full"]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /^Error rebooting: semaphore is at 0/);
        assert.deepEqual(await m.bus.logind.rebootCalls(), []);
      },
    );

    await t.step(
      "reboot takes no slot when logind says CanReboot is no",
      async () => {
        await m.bus.logind.clearCalls();
        await m.bus.logind.replaceMethod("CanReboot", "", "s", 'ret = "no"');
        try {
          const r = await ctl(["reboot", "--group", "ctl-cannot"]);
          assert.equal(r.code, 1);
          assert.equal(
            r.stderr,
            'Error rebooting: logind says CanReboot is "no": this process may not reboot the machine; no slot was taken\n',
          );
          assert.deepEqual(await m.bus.logind.rebootCalls(), []);
          assert.equal(
            await client.get(semaphoreKey("ctl-cannot")).string(),
            null,
          );
        } finally {
          await m.bus.logind.replaceMethod("CanReboot", "", "s", 'ret = "yes"');
        }
      },
    );

    await t.step(
      "reboot refused by logind gives back the slot it took, and says so",
      async () => {
        const machineId = (await Deno.readTextFile("/etc/machine-id")).trim();
        await m.bus.logind.refuseReboot(
          "org.freedesktop.DBus.Error.AccessDenied",
        );
        try {
          const r = await ctl(["reboot", "--group", "ctl-refused", "--json"]);
          assert.equal(r.code, 1);
          assert.match(
            r.stderr,
            new RegExp(
              `^Error rebooting: logind refused the reboot: .*AccessDenied.*; the slot taken for ${machineId} was released\n$`,
            ),
          );
          assert.equal(JSON.parse(r.stdout).error, "failed");
          assert.equal(
            await client.get(semaphoreKey("ctl-refused")).string(),
            JSON.stringify({ semaphore: 1, max: 1, holders: [] }),
          );
        } finally {
          await m.bus.logind.allowReboot();
        }
      },
    );

    await t.step(
      "reboot without access to the system bus takes no slot",
      async () => {
        const r = await runCtlProcess(
          ["reboot", "--group", "ctl-nobus", "--endpoint", etcd.endpoint],
          {
            env: { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${m.bus.dir}/nope` },
            extraRead: [m.bus.dir],
            extraWrite: [m.bus.dir],
          },
        );
        assert.equal(r.code, 1);
        assert.match(
          r.stderr,
          /^Error rebooting: cannot connect to the D-Bus system bus/,
        );
        assert.equal(
          await client.get(semaphoreKey("ctl-nobus")).string(),
          null,
        );
      },
    );

    await t.step(
      "without a system bus, D-Bus commands fail with one line",
      async () => {
        const r = await runCtlProcess(["send-need-reboot"], {
          env: { DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${m.bus.dir}/nope` },
          extraRead: [m.bus.dir],
          extraWrite: [m.bus.dir],
        });
        assert.equal(r.code, 1);
        assert.match(
          r.stderr,
          /^Error sending need-reboot: cannot connect to the D-Bus system bus at [^\n]+\n$/,
        );
      },
    );
  } finally {
    await m.close();
    client.close();
    await etcd.close();
  }
});

Deno.test("deno.json: run and compile tasks use the same permission set", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  const tasks: Record<string, string> = config.tasks;
  for (const program of ["ctl", "daemon"]) {
    const run = tasks[program]!;
    const compile = tasks[`compile:${program}`]!;
    // The same permission set and the same runtime flags for run and compile.
    const v8 = /--v8-flags=\S+ /.exec(run)?.[0] ?? "";
    // Both load what they import dynamically only when it is needed:
    // locksmithctl its gRPC and D-Bus clients (8 ms a command), locksmithd
    // everything after its signal listener (so that a SIGTERM during the
    // load is honoured, not fatal).
    const lazy = "--unstable-lazy-dynamic-imports ";
    assert.equal(run, `deno run -q -P=${program} ${lazy}${v8}${program}.ts`);
    assert.equal(
      compile,
      `bash scripts/compile.sh -P=${program} ${v8}--output dist/locksmith${
        program === "ctl" ? "ctl" : "d"
      } ${program}.ts`,
    );
    assert.ok(
      !/--allow-|-A\b/.test(run + compile),
      "flags come only from the permission set",
    );
    const set = config.permissions[program];
    assert.ok(set, `permission set ${program}`);
    assert.ok(!("all" in set), "never all permissions");
  }
  // The unit runs the daemon with the task's V8 flags (`--lite-mode` and the
  // bytecode flushing of bench/README.md's daemon section).
  const daemonV8 = /--v8-flags=\S+ /.exec(tasks.daemon!)?.[0] ?? "";
  assert.match(daemonV8, /^--v8-flags=--lite-mode[, ]/);
  for (const unit of ["locksmithd-deno.service"]) {
    const text = await Deno.readTextFile(
      new URL(`../systemd/${unit}`, import.meta.url),
    );
    assert.ok(
      text.includes(` -P=daemon --unstable-lazy-dynamic-imports ${daemonV8}`),
      `${unit}: ExecStart with -P=daemon --unstable-lazy-dynamic-imports ${daemonV8}`,
    );
  }
});
