/**
 * locksmithctl wired to the real world: etcd, `/etc/machine-id`, the system
 * bus, stdout and stderr. Heavy modules (the etcd and D-Bus clients) are
 * imported only by the commands that use them, to keep start-up fast.
 *
 * @module
 */

import { ctlEnvNames, type CtlInvocation, parseCtlArgs } from "./ctl_args.ts";
import { type CtlDeps, runCtlInvocation } from "./ctl_commands.ts";
import { exitCodeOf, oneLine } from "./errors.ts";
import type { LockStore } from "./lock_store.ts";
import { readMachineId } from "./machine_id.ts";
import { semaphoreKey } from "./keys.ts";

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

/** Opens the etcd-backed store for an invocation. */
export async function openEtcdStore(inv: CtlInvocation): Promise<LockStore> {
  const [{ connectEtcd }, { EtcdLockStore }] = await Promise.all([
    import("./etcd_client.ts"),
    import("./etcd_lock_store.ts"),
  ]);
  const client = await connectEtcd(inv);
  return new EtcdLockStore(client, semaphoreKey(inv.group), inv);
}

/** The real dependencies of locksmithctl. */
export function realCtlDeps(): CtlDeps {
  return {
    openStore: openEtcdStore,
    machineId: () => readMachineId(),
    isRoot: () => Deno.uid() === 0,
    reboot: async () => {
      const { rebootThroughLogind } = await import("./ctl_dbus.ts");
      await rebootThroughLogind();
    },
    sendNeedReboot: async () => {
      const { sendNeedRebootSignal } = await import("./ctl_dbus.ts");
      await sendNeedRebootSignal();
    },
    stdout: (text) => write(Deno.stdout, text),
    stderr: (text) => write(Deno.stderr, text),
  };
}

/** Runs locksmithctl with `args` and returns its exit status. */
export async function runCtl(
  args: readonly string[],
  deps: CtlDeps = realCtlDeps(),
): Promise<number> {
  const env: Record<string, string | undefined> = {};
  for (const name of ctlEnvNames()) env[name] = Deno.env.get(name);
  let invocation: CtlInvocation;
  try {
    invocation = parseCtlArgs(args, env);
  } catch (error) {
    deps.stderr(`locksmithctl: ${oneLine(error)}\n`);
    return exitCodeOf(error);
  }
  return await runCtlInvocation(invocation, deps);
}
