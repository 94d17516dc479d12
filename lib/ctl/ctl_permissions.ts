/**
 * What each locksmithctl command needs from Deno's permissions, checked
 * before anything is contacted so that a shortfall is one line with the
 * flags to add.
 *
 * @module
 */

import type { PermissionNeed } from "../host/permissions.ts";
import { MACHINE_ID_PATH } from "../host/machine_id_file.ts";
import { etcdPermissionNeeds } from "../etcd/client/etcd_permissions.ts";
import type { CtlInvocation } from "./args.ts";

/** Whether `inv` talks to the system bus (`reboot`, `send-need-reboot`). */
export function usesSystemBus(inv: CtlInvocation): boolean {
  return inv.command === "reboot" || inv.command === "send-need-reboot";
}

/** The permissions `inv` needs; `busNeeds` are those of the system bus (for the D-Bus commands). */
export function ctlPermissionNeeds(
  inv: CtlInvocation,
  busNeeds: readonly PermissionNeed[],
): PermissionNeed[] {
  if (inv.command === "help" || inv.version) return [];
  const needs: PermissionNeed[] = [];
  const usesEtcd = inv.command !== "send-need-reboot";
  const needsId = inv.command === "reboot" ||
    ((inv.command === "lock" || inv.command === "unlock") &&
      inv.id === undefined);
  if (needsId) {
    needs.push({
      descriptor: { name: "read", path: MACHINE_ID_PATH },
      why: "this machine's id; or give the id as an argument",
    });
  }
  if (usesSystemBus(inv)) needs.push(...busNeeds);
  if (usesEtcd) {
    needs.push(...etcdPermissionNeeds(inv, {
      caFile: "--etcd-cafile",
      certFile: "--etcd-certfile",
      keyFile: "--etcd-keyfile",
    }));
  }
  return needs;
}
