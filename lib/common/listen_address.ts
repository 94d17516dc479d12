/**
 * A listen address (`HOST:PORT`) in a config value, e.g.
 * `LOCKSMITHD_METRICS_ADDR`: parsed and formatted.
 *
 * @module
 */

import { splitHostPort } from "./value_parsers.ts";
import { ConfigValueError } from "./value_error.ts";

/** Where the metrics server listens. */
export interface ListenAddress {
  /** Host name or IP address to bind (`0.0.0.0` for all IPv4 interfaces, `::` for all). */
  readonly hostname: string;
  /** TCP port; `0` picks a free one (tests). */
  readonly port: number;
}

/**
 * Parses a listen address for `key` (e.g. `LOCKSMITHD_METRICS_ADDR`):
 * `HOST:PORT` (`127.0.0.1:9101`, `localhost:9101`), `[IPv6]:PORT`
 * (`[::1]:9101`) or `:PORT` for every interface. Throws a
 * {@link ConfigValueError} naming the key. Pure.
 */
export function parseListenAddress(key: string, text: string): ListenAddress {
  const address = splitHostPort(text.trim(), "0.0.0.0");
  if (address === undefined || !(address.port >= 1 && address.port <= 65535)) {
    throw new ConfigValueError(
      key,
      text,
      "is not HOST:PORT with a port 1-65535, e.g. 127.0.0.1:9101, [::1]:9101 or :9101 (every interface)",
    );
  }
  return address;
}

/** Formats a listen address as `HOST:PORT`, with brackets around an IPv6 address. */
export function formatListenAddress(address: ListenAddress): string {
  const host = address.hostname.includes(":")
    ? `[${address.hostname}]`
    : address.hostname;
  return `${host}:${address.port}`;
}
