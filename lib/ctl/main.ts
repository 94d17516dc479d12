/**
 * locksmithctl wired to the real world: etcd, `/etc/machine-id`, the system
 * bus, stdout and stderr. Heavy modules (the etcd and D-Bus clients) are
 * imported only by the commands that use them, to keep start-up fast.
 *
 * @module
 */

import { ctlEnvNames, type CtlInvocation, parseCtlArgs } from "./args.ts";
import { type CtlDeps, runCtlInvocation } from "./commands.ts";
import { exitCodeOf, oneLine } from "../common/errors.ts";
import {
  type PermissionNeed,
  readGrantedEnv,
  requirePermissions,
} from "../common/permissions.ts";
import { ctlPermissionNeeds, usesSystemBus } from "./permission_needs.ts";
import type { LockStore } from "../semaphore/lock_store.ts";
import { readMachineId } from "../common/machine_id.ts";
import type { SemaphoreAdmin } from "../semaphore/admin.ts";

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

/** Opens the etcd-backed store for an invocation (through etcd's JSON gateway, falling back to gRPC). */
export async function openEtcdStore(inv: CtlInvocation): Promise<LockStore> {
  const { openEtcdLockStore } = await import("../etcd/open.ts");
  return await openEtcdLockStore(inv, inv.group);
}

/** Opens the operator's port on the invocation's semaphore (status, pause, set-ttl, ...). */
export async function openEtcdAdmin(
  inv: CtlInvocation,
): Promise<SemaphoreAdmin> {
  const [{ openEtcdStore }, { EtcdSemaphoreAdmin }] = await Promise.all([
    import("../etcd/open.ts"),
    import("../etcd/semaphore_admin.ts"),
  ]);
  return new EtcdSemaphoreAdmin(await openEtcdStore(inv, inv.group));
}

/** Aborts on SIGINT or SIGTERM, until disposed. */
function interrupts(): { signal: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  const abort = () => stop.abort();
  const names = ["SIGINT", "SIGTERM"] as const;
  for (const name of names) Deno.addSignalListener(name, abort);
  return {
    signal: stop.signal,
    dispose: () => names.forEach((n) => Deno.removeSignalListener(n, abort)),
  };
}

/** The real dependencies of locksmithctl. */
export function realCtlDeps(): CtlDeps {
  return {
    openStore: openEtcdStore,
    openAdmin: openEtcdAdmin,
    now: () => new Date(),
    stdoutIsTerminal: () => Deno.stdout.isTerminal(),
    interrupts,
    machineId: () => readMachineId(),
    isRoot: () => Deno.uid() === 0,
    checkPermissions: async (inv) => {
      let bus: PermissionNeed[] = [];
      if (usesSystemBus(inv)) {
        const { busPermissionNeeds, parseBusAddress, systemBusAddress } =
          await import("../dbus/system_bus.ts");
        bus = busPermissionNeeds(parseBusAddress(systemBusAddress()));
      }
      requirePermissions(ctlPermissionNeeds(inv, bus));
    },
    connectLogind: async () => {
      const { connectLogind } = await import("./dbus.ts");
      return await connectLogind();
    },
    sendNeedReboot: async () => {
      const { sendNeedRebootSignal } = await import("./dbus.ts");
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
