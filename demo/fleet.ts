/**
 * `deno task demo`: a live rolling reboot of a small fleet on loopback. A real
 * etcd, one private system bus per machine (python-dbusmock's logind records
 * the Reboot call instead of rebooting), and one real locksmithd per machine.
 * Shows, as it happens, who waits, who holds a slot and who rebooted, then
 * checks every revision of the semaphore.
 *
 * With `--fleetlock`, a mixed fleet: every other machine runs the
 * `fleetlock` strategy and takes its slot through `locksmithd serve` (the
 * FleetLock server, as Fedora CoreOS's Zincati would), the others take
 * theirs from etcd (`etcd-lock`); both share one semaphore.
 *
 * Every run starts `locksmithd serve` and prints the address of its live
 * fleet page; `--wait S` waits S seconds before the rollout and after it,
 * to watch it in a browser.
 *
 *   deno task demo [--machines N] [--max M] [--fleetlock] [--wait S]
 */

import { parseArgs } from "node:util";
import { startEtcd } from "../tests/harness/etcd.ts";
import {
  type FleetEvent,
  fleetIds,
  rollFleet,
} from "../tests/harness/fleet.ts";
import { runCtlProcess } from "../tests/harness/ctl_process.ts";
import { keyHistory } from "../tests/harness/history.ts";
import { checkHistory } from "../tests/harness/invariants.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import {
  type ServeProcess,
  startServeProcess,
} from "../tests/harness/serve_process.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    machines: { type: "string", default: "6" },
    max: { type: "string", default: "2" },
    fleetlock: { type: "boolean", default: false },
    wait: { type: "string", default: "0" },
  },
});
const wait = Number(values.wait);
if (!Number.isInteger(wait) || wait < 0 || wait > 3_600) {
  console.error("demo: --wait must be a whole number of seconds up to 3600");
  Deno.exit(2);
}
const machines = Number(values.machines);
const max = Number(values.max);
if (!Number.isInteger(machines) || machines < 1 || machines > 20) {
  console.error("demo: --machines must be a whole number from 1 to 20");
  Deno.exit(2);
}
if (!Number.isInteger(max) || max < 1 || max > machines) {
  console.error(
    "demo: --max must be a whole number from 1 to the number of machines",
  );
  Deno.exit(2);
}

type State =
  | "idle"
  | "needs reboot"
  | "waiting"
  | "HOLDS SLOT"
  | "REBOOTING"
  | "booting"
  | "rebooted";
const states = new Map<string, State>(
  fleetIds(machines).map((id) => [id, "idle"]),
);
/** With --fleetlock, every other machine takes its slot through the FleetLock server. */
const onFleetLock = new Set(
  values.fleetlock ? fleetIds(machines).filter((_, i) => i % 2 === 1) : [],
);
/** `03` for an etcd-lock machine, `03F` with --fleetlock (and `03E` for the others). */
const short = (id: string) =>
  `${id.slice(-2)}${values.fleetlock ? (onFleetLock.has(id) ? "F" : "E") : ""}`;
const started = performance.now();
const stamp = () =>
  `[${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s]`;

function board(): string {
  const by = (s: State) =>
    [...states].filter(([, v]) => v === s).map(([k]) => short(k));
  return `slots: [${
    by("HOLDS SLOT").concat(by("REBOOTING"), by("booting")).join(" ") || "-"
  }]  waiting: ${by("waiting").join(" ") || "-"}  rebooted: ${
    by("rebooted").join(" ") || "-"
  }`;
}

function set(id: string, state: State, note = ""): void {
  if (states.get(id) === state) return;
  states.set(id, state);
  const name = values.fleetlock
    ? `${id} ${onFleetLock.has(id) ? "(F)" : "(E)"}`
    : id;
  console.log(
    `${stamp()} ${name}  ${state.padEnd(12)} ${note.padEnd(28)} ${board()}`,
  );
}

function onEvent(event: FleetEvent): void {
  if (event.kind === "reboot-requested") {
    return set(event.machine, "REBOOTING", "asked logind to reboot");
  }
  if (event.kind === "rebooted") {
    return set(event.machine, "booting", "back up, daemon restarting");
  }
  if (event.kind !== "log") return;
  const { machine, line } = event;
  if (/reboot needed/.test(line) && states.get(machine) === "idle") {
    set(machine, "needs reboot", "update_engine said so");
  } else if (/no slot free/.test(line)) {
    set(
      machine,
      "waiting",
      onFleetLock.has(machine) ? "pre-reboot answered 409" : "semaphore full",
    );
  } else if (/took a slot/.test(line)) {
    set(
      machine,
      "HOLDS SLOT",
      onFleetLock.has(machine) ? "pre-reboot answered 200" : "took a slot",
    );
  } else if (/released the slot held by/.test(line)) {
    set(machine, "rebooted", "released its slot after boot");
  } else if (/WARN/.test(line)) console.log(`${stamp()} ${machine}  ${line}`);
}

console.log("locksmith demo: starting etcd on loopback ...");
const etcd = await startEtcd();
const group = "demo";
let serve: ServeProcess | undefined;
try {
  const setMax = await runCtlProcess([
    "set-max",
    String(max),
    "--group",
    group,
    "--endpoint",
    etcd.endpoint,
  ]);
  if (setMax.code !== 0) throw new Error(setMax.stderr);
  console.log(
    `locksmith demo: ${machines} machines, at most ${max} rebooting at once, etcd at ${etcd.endpoint}, group "${group}"`,
  );
  // locksmithd serve: the FleetLock server (--fleetlock) and the live fleet page.
  serve = await startServeProcess({
    endpoint: etcd.endpoint,
    onLine: (line) => {
      if (/WARN|ERROR/.test(line)) console.log(`${stamp()} serve  ${line}`);
    },
  });
  console.log(
    `locksmith demo: watch the rollout live in a browser at ${serve.url} (the fleet page of locksmithd serve)`,
  );
  if (wait > 0) {
    console.log(`locksmith demo: starting in ${wait} s ...`);
    await new Promise((r) => setTimeout(r, wait * 1_000));
  }
  if (values.fleetlock) {
    console.log(
      `locksmith demo: a mixed fleet: ${
        machines - onFleetLock.size
      } machine(s) on etcd-lock (E: the wait queue in etcd), ${onFleetLock.size} on fleetlock (F: pre-reboot and steady-state to locksmithd serve at ${serve.url}, as Zincati would)`,
    );
  }
  console.log(
    "every machine now hears update_engine say UPDATE_STATUS_UPDATED_NEED_REBOOT\n",
  );
  const fleetLockUrl = serve?.url;
  const result = await rollFleet({
    machines,
    endpoint: etcd.endpoint,
    group,
    rebootMs: 1_500,
    onEvent,
    configOf: (id): Record<string, string> =>
      onFleetLock.has(id) && fleetLockUrl
        ? {
          REBOOT_STRATEGY: "fleetlock",
          LOCKSMITHD_FLEETLOCK_URL: fleetLockUrl,
        }
        : {},
  });
  const key = semaphoreKey(group);
  const checked = checkHistory(key, await keyHistory(etcd.endpoints, key));
  // The FleetLock server applies concurrent calls in one write: a write
  // may add or remove several holders; every other rule holds as usual.
  const report = values.fleetlock
    ? {
      ...checked,
      violations: checked.violations.filter((v) =>
        !/ \d+ added and \d+ removed in one write$/.test(v) ||
        / 0 added and 0 removed/.test(v)
      ),
    }
    : checked;
  const status = await runCtlProcess([
    "status",
    "--group",
    group,
    "--endpoint",
    etcd.endpoint,
  ]);
  console.log(
    `\nreboot order: ${
      result.order.map((id) =>
        values.fleetlock ? `${id} (${onFleetLock.has(id) ? "F" : "E"})` : id
      ).join(", ")
    }`,
  );
  console.log(
    `each machine rebooted ${
      [...new Set(Object.values(result.reboots))].join("/")
    } time(s); at most ${report.maxHolders} held a slot at once (max ${max}); ${report.versions} revisions checked, ${report.violations.length} invariant violations`,
  );
  console.log(`locksmithctl status --group ${group}:\n${status.stdout}`);
  const history = await runCtlProcess([
    "history",
    "--group",
    group,
    "--endpoint",
    etcd.endpoint,
  ]);
  console.log(`locksmithctl history --group ${group}:\n${history.stdout}`);
  if (wait > 0) {
    console.log(
      `locksmith demo: the fleet page stays at ${serve.url} for ${wait} s more ...`,
    );
    await new Promise((r) => setTimeout(r, wait * 1_000));
  }
  if (report.violations.length > 0) {
    console.error(report.violations.join("\n"));
    Deno.exitCode = 1;
  }
} finally {
  await serve?.close();
  await etcd.close();
}
