/**
 * Zincati's FleetLock id: systemd's app-specific id of the machine id
 * (`sd_id128_get_machine_app_specific`) for Zincati's app id. HMAC-SHA256
 * keyed with the 16 bytes of the machine id over the 16 bytes of the app
 * id; the first 16 bytes of the MAC, made a version 4 UUID
 * (`b[6] = (b[6] & 0x0f) | 0x40`, `b[8] = (b[8] & 0x3f) | 0x80`), in
 * lowercase hex without dashes. A machine that moves between Zincati and
 * locksmithd's `fleetlock` strategy (with `LOCKSMITHD_FLEETLOCK_ID=zincati`)
 * keeps its holder id, and a slot taken by one is released by the other.
 *
 * @module
 */

import { quote } from "../../common/errors.ts";

/** Zincati's application id (`zincati::identity::APP_ID`). */
export const ZINCATI_APP_ID = "de35106b6ec24688b63afddaa156679b";

/** Why `text` is not a 128-bit id (32 hex digits, dashes allowed as in a UUID), or `undefined`. */
export function id128Defect(text: string): string | undefined {
  const hex = text.replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) {
    return "is not 32 hexadecimal digits (a systemd machine id)";
  }
  if (
    text.includes("-") &&
    !/^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$/.test(text)
  ) {
    return "has dashes in the wrong places (expected 32 hexadecimal digits or a UUID)";
  }
  return undefined;
}

function id128Bytes(text: string, what: string): Uint8Array<ArrayBuffer> {
  const defect = id128Defect(text);
  if (defect !== undefined) {
    throw new TypeError(`${what} ${quote(text)} ${defect}`);
  }
  const hex = text.replaceAll("-", "");
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
  return bytes;
}

/**
 * systemd's app-specific id of `machineId` for `appId` (both 32 hex
 * digits, or UUIDs with dashes), in lowercase hex. Throws a `TypeError`
 * naming an id that is not 128 bits.
 *
 * @example libsystemd-rs's test vector
 * ```ts
 * import { appSpecificId } from "./zincati_id.ts";
 * await appSpecificId("2e074e9b299c41a59923c51ae16f279b", "033b1b9b264441fcaa173e9e5bf35c5a");
 * // "4d4a86c9c6644a479560ded5d19a30c5"
 * ```
 */
export async function appSpecificId(
  machineId: string,
  appId: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    id128Bytes(machineId, "machine id"),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, id128Bytes(appId, "app id")),
  ).slice(0, 16);
  mac[6] = ((mac[6] as number) & 0x0f) | 0x40;
  mac[8] = ((mac[8] as number) & 0x3f) | 0x80;
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The id Zincati sends for a machine with this machine id. */
export function zincatiId(machineId: string): Promise<string> {
  return appSpecificId(machineId, ZINCATI_APP_ID);
}
