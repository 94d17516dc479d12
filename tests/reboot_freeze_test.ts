/**
 * A holder frozen (SIGSTOP, as a VM pause would) at each step of the
 * reboot phase, with a slot TTL of 1 minute and a notification URL that
 * never answers (issue 19, item 1): while it is stopped its lease expires,
 * another machine reclaims the slot and reboots on it. On SIGCONT the
 * frozen holder must not call logind's Reboot: it finds its slot gone and
 * queues again. Real daemons, a real etcd, a private bus per machine with
 * python-dbusmock's logind template.
 *
 * The steps run side by side, each on its own group, so that the test
 * waits out one slot TTL, not four.
 */

import assert from "node:assert/strict";
import { startEtcd } from "./harness/etcd.ts";
import { type Machine, startMachine } from "./harness/machine.ts";
import { type BlackHole, startBlackHole } from "./harness/black_hole.ts";

/** Long enough for a slot TTL of 1 minute to run out and the other machine to reboot. */
const RECLAIM_TIMEOUT_MS = 150_000;

interface Step {
  /** The step of the reboot phase the holder is frozen in. */
  readonly name: string;
  /** Config keys of the holder beside the common ones. */
  readonly config?: (dir: string) => Record<string, string>;
  /** Programs the holder may run. */
  readonly allowRun?: readonly string[];
  /** Prepares the holder's machine before its daemon starts. */
  readonly prepare?: (m: Machine) => Promise<void>;
  /** Resolves once the holder is inside the step: the moment to freeze it. */
  readonly reached: (m: Machine) => Promise<unknown>;
  /** Called while the holder is frozen (e.g. logind accepts reboots again). */
  readonly whileFrozen?: (m: Machine) => Promise<void>;
}

/** A pre-reboot check that takes 5 s on its second run (right before the reboot) and marks that run. */
const CHECK_SCRIPT = `#!/bin/sh
dir=$(dirname "$0")
if [ -e "$dir/check-ran-once" ]; then
  touch "$dir/check-running"
  sleep 5
fi
touch "$dir/check-ran-once"
exit 0
`;

async function fileAppears(path: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (true) {
    try {
      await Deno.stat(path);
      return;
    } catch {
      if (Date.now() > end) throw new Error(`${path} did not appear`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

const STEPS: readonly Step[] = [
  {
    name: "login delay",
    config: () => ({ LOCKSMITHD_LOGIN_DELAY: "8s" }),
    prepare: async (m) => {
      await m.bus.logind.addSession({ id: "c1", user: "alice", uid: 1000 });
    },
    reached: (m) => m.waitForLine(/warned logged-in users/, 60_000, true),
  },
  {
    name: "pre-reboot check",
    config: (dir) => ({ LOCKSMITHD_PRE_REBOOT_CHECK: `/bin/sh ${dir}/check` }),
    allowRun: ["/bin/sh"],
    prepare: async (m) => {
      await Deno.writeTextFile(`${m.bus.dir}/check`, CHECK_SCRIPT);
    },
    reached: (m) => fileAppears(`${m.bus.dir}/check-running`),
  },
  {
    name: "notification flush",
    reached: (m) =>
      m.waitForLine(/rebooting: asking logind to reboot/, 60_000, true),
  },
  {
    name: "reboot retry backoff",
    prepare: (m) => m.bus.logind.refuseReboot(),
    reached: (m) =>
      m.waitForLine(/reboot request failed: .*retrying in/, 60_000, true),
    whileFrozen: (m) => m.bus.logind.allowReboot(),
  },
];

interface StepResult {
  readonly step: string;
  /** Reboot calls the holder made after its slot was given away. */
  readonly locklessReboots: number;
}

async function freezeAt(
  endpoint: string,
  notifyUrl: string,
  step: Step,
  index: number,
): Promise<StepResult> {
  const group = `freeze-${index}`;
  const common = {
    LOCKSMITHD_GROUP: group,
    LOCKSMITHD_SLOT_TTL: "1m",
    LOCKSMITHD_NOTIFY_URL: notifyUrl,
  };
  const holder = await startMachine({
    id: `${group}-holder`,
    endpoint,
    config: common,
    allowRun: step.allowRun ?? [],
  });
  const other = await startMachine({
    id: `${group}-other`,
    endpoint,
    config: common,
  });
  try {
    if (step.config) {
      await Deno.writeTextFile(
        holder.configFile,
        Object.entries(step.config(holder.bus.dir))
          .map(([k, v]) => `${k}=${v}\n`).join(""),
        { append: true },
      );
    }
    await step.prepare?.(holder);
    holder.startDaemon();
    await holder.waitForLine(/waiting for a reboot to be needed/);
    await holder.needReboot();
    await holder.waitForLine(/took a slot/, 60_000, true);
    other.startDaemon();
    await other.waitForLine(/waiting for a reboot to be needed/);
    await other.needReboot();
    await other.waitForLine(/no slot free for this machine/, 60_000, true);

    await step.reached(holder);
    holder.signal("SIGSTOP");
    const callsAtFreeze = await holder.reboots();
    const linesAtFreeze = holder.lines.length;
    await step.whileFrozen?.(holder);
    // The holder's lease runs out; the other machine reclaims the slot and reboots.
    await other.waitForLine(
      /reclaimed the slot of freeze-\d-holder/,
      RECLAIM_TIMEOUT_MS,
      true,
    );
    await other.waitForLine(/reboot requested$/, 30_000, true);
    assert.equal(
      await other.reboots(),
      1,
      `${step.name}: the other machine rebooted`,
    );

    holder.signal("SIGCONT");
    // What the holder does once it runs again: it either calls Reboot
    // (the fault) or decides not to; either way the decision is logged.
    const decided = await holder.waitForLine(
      /reboot requested$|not rebooting/,
      60_000,
    );
    const after = holder.lines.slice(linesAtFreeze).join("\n");
    const locklessReboots = (await holder.reboots()) - callsAtFreeze;
    assert.doesNotMatch(
      decided,
      /reboot requested$/,
      `${step.name}: the frozen holder rebooted after its slot was reclaimed; its log after SIGCONT:\n${after}`,
    );
    assert.equal(
      locklessReboots,
      0,
      `${step.name}: Reboot calls after SIGCONT`,
    );
    return { step: step.name, locklessReboots };
  } finally {
    await holder.close();
    await other.close();
  }
}

Deno.test({
  name:
    "a holder frozen at any step of the reboot phase does not reboot after its slot was reclaimed",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const etcd = await startEtcd();
    let blackHole: BlackHole | undefined;
    try {
      blackHole = startBlackHole();
      const results = await Promise.allSettled(
        STEPS.map((step, i) =>
          freezeAt(etcd.endpoint, blackHole!.url, step, i + 1)
        ),
      );
      const failures = results.flatMap((r, i) =>
        r.status === "rejected" ? [`${STEPS[i]!.name}: ${r.reason}`] : []
      );
      assert.deepEqual(failures, []);
    } finally {
      await blackHole?.close();
      await etcd.close();
    }
  },
});
