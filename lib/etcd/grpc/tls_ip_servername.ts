/**
 * Works around a difference between Deno's `node:tls` and Node's: grpc-js
 * sets the TLS `servername` to the endpoint host, which for an IP address
 * (`https://10.0.0.5:2379`) Node ignores with a deprecation warning (DEP0123,
 * SNI must not carry an IP address per RFC 6066) but Deno rejects with
 * ERR_INVALID_ARG_VALUE. Dropping an IP servername gives Node's behaviour:
 * no SNI, and the certificate is still verified against the IP address.
 *
 * @module
 */

import tls from "node:tls";
import { isIP } from "node:net";

let installed = false;

/** Installs the workaround once per process; safe to call repeatedly. */
export function allowIpEndpointsOverTls(): void {
  if (installed) return;
  installed = true;
  const connect = tls.connect;
  const patched = function (this: unknown, ...args: unknown[]) {
    const options = args[0];
    if (
      typeof options === "object" && options !== null &&
      "servername" in options &&
      typeof options.servername === "string" && isIP(options.servername) !== 0
    ) {
      const { servername: _ip, ...rest } = options as Record<string, unknown>;
      args[0] = rest;
    }
    return (connect as (...a: unknown[]) => tls.TLSSocket).apply(this, args);
  };
  (tls as { connect: unknown }).connect = patched;
}
