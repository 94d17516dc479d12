/**
 * Where the D-Bus system bus is, and what Deno permissions a connection to
 * it needs, for a socket at `P` (exact path, no symlink resolution:
 * `/var/run/...` and `/run/...` are different grants):
 * `--allow-read=P --allow-write=P --allow-net=unix:P --allow-sys=uid`.
 * `sys=uid` is for the EXTERNAL authentication, which sends the process's
 * uid. Pure, but for reading `DBUS_SYSTEM_BUS_ADDRESS` and querying
 * permissions (never prompting).
 *
 * @module
 */

import { UsageError } from "../common/errors.ts";
import {
  envIfGranted,
  flagFor,
  missing,
  type PermissionNeed,
} from "../host/permissions.ts";

/** Environment variable naming the system bus address. */
export const SYSTEM_BUS_ADDRESS_ENV = "DBUS_SYSTEM_BUS_ADDRESS";

/** Socket of the system bus when {@link SYSTEM_BUS_ADDRESS_ENV} is unset or empty. */
export const DEFAULT_SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket";

/** System bus address used when {@link SYSTEM_BUS_ADDRESS_ENV} is unset or empty. */
export const DEFAULT_SYSTEM_BUS_ADDRESS: string =
  `unix:path=${DEFAULT_SYSTEM_BUS_SOCKET}`;

/** Where a bus listens, from a D-Bus address. */
export type BusEndpoint =
  | { readonly transport: "unix"; readonly path: string }
  | {
    readonly transport: "tcp";
    readonly host: string;
    readonly port: number;
  };

function unescapeValue(value: string, address: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new UsageError(
      `D-Bus address ${JSON.stringify(address)} has a bad %-escape`,
    );
  }
}

/**
 * Parses a D-Bus address (`unix:path=/run/dbus/system_bus_socket`, a `;`
 * separated list, values %-escaped) into the first endpoint this library can
 * connect to: `unix:path=` or `tcp:host=,port=`. Abstract sockets and other
 * transports are skipped. Throws a {@link UsageError} when none is usable.
 */
export function parseBusAddress(address: string): BusEndpoint {
  const skipped: string[] = [];
  for (const entry of address.split(";")) {
    if (entry.trim() === "") continue;
    const colon = entry.indexOf(":");
    if (colon <= 0) {
      throw new UsageError(
        `D-Bus address ${JSON.stringify(address)} is malformed: ` +
          `${JSON.stringify(entry)} has no "transport:" prefix`,
      );
    }
    const transport = entry.slice(0, colon);
    const params = new Map<string, string>();
    for (const pair of entry.slice(colon + 1).split(",")) {
      if (pair === "") continue;
      const eq = pair.indexOf("=");
      if (eq <= 0) {
        throw new UsageError(
          `D-Bus address ${JSON.stringify(address)} is malformed: ` +
            `${JSON.stringify(pair)} is not key=value`,
        );
      }
      params.set(pair.slice(0, eq), unescapeValue(pair.slice(eq + 1), address));
    }
    const path = params.get("path");
    if (transport === "unix" && path !== undefined && path !== "") {
      if (/[,;=]/.test(path)) {
        // dbus-next splits addresses on these characters without unescaping.
        skipped.push(`${entry} (a socket path with , ; or = is not supported)`);
        continue;
      }
      return { transport: "unix", path };
    }
    const port = Number(params.get("port"));
    if (transport === "tcp" && Number.isInteger(port) && port > 0) {
      return {
        transport: "tcp",
        host: params.get("host") || "localhost",
        port,
      };
    }
    skipped.push(entry);
  }
  throw new UsageError(
    `D-Bus address ${
      JSON.stringify(address)
    } has no usable endpoint (supported: unix:path=..., tcp:host=...,port=...)${
      skipped.length ? `; skipped ${skipped.join(", ")}` : ""
    }`,
  );
}

/**
 * The system bus address: `$DBUS_SYSTEM_BUS_ADDRESS` when set, non-empty and
 * readable, else {@link DEFAULT_SYSTEM_BUS_ADDRESS}.
 */
export function systemBusAddress(): string {
  // An address that may not be read counts as unset (never a prompt).
  const value = envIfGranted(SYSTEM_BUS_ADDRESS_ENV);
  return value ? value : DEFAULT_SYSTEM_BUS_ADDRESS;
}

/** What a connection to `endpoint` needs for its transport: the socket, or the host and port. */
function transportNeeds(endpoint: BusEndpoint): PermissionNeed[] {
  const why = "the system bus";
  if (endpoint.transport === "tcp") {
    const host = `${endpoint.host}:${endpoint.port}`;
    return [{ descriptor: { name: "net", host }, why }];
  }
  const p = endpoint.path;
  return [
    { descriptor: { name: "read", path: p }, why },
    { descriptor: { name: "write", path: p }, why },
    { descriptor: { name: "net", host: `unix:${p}` }, why },
  ];
}

/** The EXTERNAL authentication sends the process's uid. */
const UID_NEED: PermissionNeed = {
  descriptor: { name: "sys", kind: "uid" },
  why: "D-Bus authentication sends the uid",
};

/**
 * The Deno permission flags a connection to `endpoint` needs (EXTERNAL
 * authentication included), e.g. for a socket `P`:
 * `--allow-read=P --allow-write=P --allow-net=unix:P --allow-sys=uid`.
 */
export function busPermissionFlags(endpoint: BusEndpoint): string[] {
  return busPermissionNeeds(endpoint).map((need) => flagFor(need.descriptor));
}

/** What a connection to `endpoint` needs from Deno's permissions (EXTERNAL authentication included). */
export function busPermissionNeeds(endpoint: BusEndpoint): PermissionNeed[] {
  return [...transportNeeds(endpoint), UID_NEED];
}

/** The flags of the permissions a connection to `endpoint` lacks (queried, never prompted), `--allow-sys=uid` first. */
export function missingPermissions(endpoint: BusEndpoint): string[] {
  return missing([UID_NEED, ...transportNeeds(endpoint)])
    .map((need) => flagFor(need.descriptor));
}
