/**
 * The `fleetlock` strategy's part of locksmithd's wiring (`daemon_main.ts`): the
 * id it sends (the machine id, or Zincati's id derived from it), the CA
 * file read at start, and the FleetLock client.
 *
 * @module
 */

import { oneLine, quote, UsageError } from "../../common/errors.ts";
import { FleetLockClient } from "../../fleetlock/client/client.ts";
import { DEFAULT_FLEETLOCK_GROUP } from "../../fleetlock/protocol/protocol.ts";
import { id128Defect, zincatiId } from "../../fleetlock/protocol/zincati_id.ts";
import type { DaemonConfig } from "../../config/config.ts";

/**
 * The id the `fleetlock` strategy sends: the machine id, or with
 * `LOCKSMITHD_FLEETLOCK_ID=zincati` Zincati's id of it. Throws a
 * `UsageError` (exit status 2) when Zincati's id is asked for and the
 * machine id is not 32 hexadecimal digits.
 */
export async function fleetLockHolderId(
  config: Pick<DaemonConfig, "fleetLockId" | "machineId">,
  machineId: string,
): Promise<string> {
  if (config.fleetLockId !== "zincati") return machineId;
  const defect = id128Defect(machineId);
  if (defect !== undefined) {
    const from = config.machineId === undefined
      ? "the machine id in /etc/machine-id"
      : "LOCKSMITHD_MACHINE_ID";
    throw new UsageError(
      `LOCKSMITHD_FLEETLOCK_ID=zincati derives Zincati's id from the machine id, but ${from} ${
        quote(machineId)
      } ${defect}`,
    );
  }
  return await zincatiId(machineId);
}

/** Opens the FleetLock client of `config` for holder `id` (reads the CA file, sends nothing). */
export async function openFleetLockClient(
  config: DaemonConfig,
  id: string,
): Promise<FleetLockClient> {
  if (config.fleetLockUrl === undefined) {
    throw new UsageError(
      "REBOOT_STRATEGY=fleetlock needs LOCKSMITHD_FLEETLOCK_URL",
    );
  }
  let caCerts: string[] | undefined;
  if (config.fleetLockCaFile !== undefined) {
    try {
      caCerts = [await Deno.readTextFile(config.fleetLockCaFile)];
    } catch (error) {
      throw new UsageError(
        `LOCKSMITHD_FLEETLOCK_CAFILE ${
          quote(config.fleetLockCaFile)
        } cannot be read: ${oneLine(error)}`,
      );
    }
  }
  return new FleetLockClient({
    baseUrl: config.fleetLockUrl,
    id,
    group: config.group ?? DEFAULT_FLEETLOCK_GROUP,
    timeoutMs: config.fleetLockTimeoutMs,
    caCerts,
    token: config.fleetLockToken,
  });
}
