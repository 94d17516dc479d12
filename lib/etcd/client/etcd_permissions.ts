/**
 * What talking to etcd needs from Deno's permissions: network access to
 * each endpoint, and read access to the TLS files.
 *
 * @module
 */

import type { PermissionNeed } from "../../host/permissions.ts";
import type { TlsOptions } from "./tls.ts";

/** The permissions etcd access with `options` needs (the TLS files named after the key or flag that gave them). */
export function etcdPermissionNeeds(
  options: TlsOptions,
  names: { caFile: string; certFile: string; keyFile: string },
): PermissionNeed[] {
  const needs: PermissionNeed[] = options.endpoints.map((endpoint) => {
    const url = new URL(endpoint);
    const port = url.port || (url.protocol === "https:" ? "443" : "80");
    return {
      descriptor: { name: "net", host: `${url.hostname}:${port}` },
      why: "etcd",
    };
  });
  for (const field of ["caFile", "certFile", "keyFile"] as const) {
    const path = options[field];
    if (path !== undefined) {
      needs.push({ descriptor: { name: "read", path }, why: names[field] });
    }
  }
  return needs;
}
