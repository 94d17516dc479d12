/**
 * locksmithctl wired to the real world: etcd, `/etc/machine-id`, the system
 * bus, stdout and stderr. Heavy modules are imported only by the commands
 * that use them, to keep start-up fast: the etcd client by the etcd
 * commands; the gRPC client only when etcd has no JSON gateway, and the
 * D-Bus client only for `reboot` and `send-need-reboot`. Their specifiers
 * are literals, so that `deno cache`, `deno compile` and `deno publish` see
 * them. `deno run` resolves them (and their npm packages) at start, 8 ms of
 * every command, unless run with `--unstable-lazy-dynamic-imports` as the
 * `ctl` task is: Deno then loads them when imported, checking read access
 * to their files (the `ctl` permission set's `./lib`).
 *
 * @module
 */

import { stopOnSignals } from "../host/signals.ts";
import { unknownEnvWarnings } from "../common/env_names.ts";
import { envWithPrefix } from "../host/permissions.ts";
import { ctlEnvNames, type CtlInvocation, parseCtlArgs } from "./args.ts";
import { type CtlDeps, runCtlInvocation } from "./commands.ts";
import { exitCodeOf, oneLine } from "../common/errors.ts";
import {
  type PermissionNeed,
  readGrantedEnv,
  requirePermissions,
} from "../host/permissions.ts";
import { ctlPermissionNeeds, usesSystemBus } from "./ctl_permissions.ts";
import type { LockStore } from "../semaphore/lock_store.ts";
import { readMachineId } from "../host/machine_id_file.ts";
import { semaphoreKey } from "../semaphore/keys.ts";
import type { SemaphoreAdmin } from "../semaphore/admin.ts";
import type { EtcdLockStore } from "../etcd/store/etcd_lock_store.ts";

const encoder = new TextEncoder();

function write(
  stream: { writeSync(p: Uint8Array): number },
  text: string,
): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) {
    offset += stream.writeSync(bytes.subarray(offset));
  }
}

/** Connects to the invocation's semaphore (the gRPC client loaded only when etcd has no JSON gateway). */
async function openStore(inv: CtlInvocation): Promise<EtcdLockStore> {
  const [{ openFallbackPort }, { EtcdLockStore }] = await Promise.all([
    import("../etcd/fallback_port.ts"),
    import("../etcd/store/etcd_lock_store.ts"),
  ]);
  const port = await openFallbackPort(
    inv,
    () => import("../etcd/grpc/grpc.ts"),
  );
  return new EtcdLockStore(port, semaphoreKey(inv.group), inv);
}

/** Opens the etcd-backed store for an invocation (through etcd's JSON gateway, falling back to gRPC). */
export function openEtcdStore(inv: CtlInvocation): Promise<LockStore> {
  return openStore(inv);
}

/** Opens the operator's port on the invocation's semaphore (status, pause, set-ttl, ...). */
export async function openEtcdAdmin(
  inv: CtlInvocation,
): Promise<SemaphoreAdmin> {
  const [store, { EtcdSemaphoreAdmin }] = await Promise.all([
    openStore(inv),
    import("../etcd/store/semaphore_admin.ts"),
  ]);
  return new EtcdSemaphoreAdmin(store);
}

/** The D-Bus actions (`dbus.ts`), loaded only by `reboot` and `send-need-reboot`. */
function dbusActions(): Promise<typeof import("./dbus.ts")> {
  return import("./dbus.ts");
}

/** The real dependencies of locksmithctl. */
export function realCtlDeps(): CtlDeps {
  return {
    openStore: openEtcdStore,
    openAdmin: openEtcdAdmin,
    now: () => new Date(),
    stdoutIsTerminal: () => Deno.stdout.isTerminal(),
    interrupts: () => stopOnSignals(),
    machineId: () => readMachineId(),
    isRoot: () => Deno.uid() === 0,
    checkPermissions: async (inv) => {
      let bus: PermissionNeed[] = [];
      if (usesSystemBus(inv)) {
        const { busPermissionNeeds, parseBusAddress, systemBusAddress } =
          await import("../dbus/bus_address.ts");
        bus = busPermissionNeeds(parseBusAddress(systemBusAddress()));
      }
      requirePermissions(ctlPermissionNeeds(inv, bus));
    },
    connectLogind: async () => {
      const { connectLogind } = await dbusActions();
      return await connectLogind();
    },
    sendNeedReboot: async () => {
      const { sendNeedRebootSignal } = await dbusActions();
      await sendNeedRebootSignal();
    },
    stdout: (text) => write(Deno.stdout, text),
    stderr: (text) => write(Deno.stderr, text),
  };
}

/** Runs locksmithctl with `args` and returns its exit status. */
export async function runCtl(args: readonly string[]): Promise<number> {
  return await runCtlWith(args, realCtlDeps());
}

/** {@link runCtl} with the outside world given (for tests). */
export async function runCtlWith(
  args: readonly string[],
  deps: CtlDeps,
): Promise<number> {
  const env = readGrantedEnv(ctlEnvNames());
  const listed = envWithPrefix("LOCKSMITHCTL_");
  for (const warning of unknownEnvWarnings(listed, ctlEnvNames())) {
    deps.stderr(`locksmithctl: warning: ${warning}\n`);
  }
  let invocation: CtlInvocation;
  try {
    invocation = parseCtlArgs(args, env);
  } catch (error) {
    const message = oneLine(error);
    deps.stderr(`locksmithctl: ${message}\n`);
    // With --json, stdout carries one object even when the command line is bad.
    const end = args.indexOf("--");
    const flags = end === -1 ? args : args.slice(0, end);
    if (flags.includes("--json")) {
      deps.stdout(
        `${
          JSON.stringify({ ok: false, command: null, error: "usage", message })
        }\n`,
      );
    }
    return exitCodeOf(error);
  }
  return await runCtlInvocation(invocation, deps);
}
