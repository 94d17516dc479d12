/**
 * What locksmithd's configuration needs from Deno's permissions, checked at
 * start before anything is contacted, so that every shortfall is reported
 * at once, in one line, with the flags to add.
 *
 * @module
 */

import type { PermissionNeed } from "../../host/permissions.ts";
import { MACHINE_ID_PATH } from "../../host/machine_id_file.ts";
import { etcdPermissionNeeds } from "../../etcd/client/etcd_permissions.ts";
import type { DaemonConfig } from "../../config/config.ts";
import { usesLock } from "../loop/decisions.ts";

/**
 * The permissions locksmithd needs with `config`, given the needs of its
 * system bus connection (`busNeeds`).
 */
export function daemonPermissionNeeds(
  config: DaemonConfig,
  busNeeds: readonly PermissionNeed[],
): PermissionNeed[] {
  const needs: PermissionNeed[] = [];
  if (config.machineId === undefined) {
    needs.push({
      descriptor: { name: "read", path: MACHINE_ID_PATH },
      why: "this machine's id; or set LOCKSMITHD_MACHINE_ID",
    });
  }
  needs.push({
    descriptor: { name: "read", path: config.rebootSentinel },
    why: "LOCKSMITHD_REBOOT_SENTINEL",
  });
  needs.push(...busNeeds);
  needs.push({
    descriptor: { name: "sys", kind: "osUptime" },
    why: "the boot time: releasing the slot after boot, stale sentinels",
  });
  if (config.strategy === "fleetlock" && config.fleetLockUrl !== undefined) {
    const url = new URL(config.fleetLockUrl);
    const port = url.port || (url.protocol === "https:" ? "443" : "80");
    needs.push({
      descriptor: { name: "net", host: `${url.hostname}:${port}` },
      why: "LOCKSMITHD_FLEETLOCK_URL",
    });
    if (config.fleetLockCaFile !== undefined) {
      needs.push({
        descriptor: { name: "read", path: config.fleetLockCaFile },
        why: "LOCKSMITHD_FLEETLOCK_CAFILE",
      });
    }
  }
  if (usesLock(config.strategy)) {
    needs.push(...etcdPermissionNeeds(config.etcd, {
      caFile: "LOCKSMITHD_ETCD_CAFILE",
      certFile: "LOCKSMITHD_ETCD_CERTFILE",
      keyFile: "LOCKSMITHD_ETCD_KEYFILE",
    }));
  }
  return needs;
}
