/**
 * etcd endpoint lists, kept apart from the etcd client so that parsing a
 * command line does not load gRPC.
 *
 * @module
 */

import { quote, UsageError } from "../../common/errors.ts";

/** Default etcd endpoint when none is given. */
export const DEFAULT_ENDPOINT = "http://127.0.0.1:2379";

/**
 * Splits endpoint values (repeatable and comma separated) into a validated list.
 * Throws a {@link UsageError} naming the bad endpoint; returns the default when empty.
 */
export function parseEndpoints(values: readonly string[]): string[] {
  const endpoints = values.flatMap((v) => v.split(",")).map((v) => v.trim())
    .filter((v) => v !== "");
  for (const endpoint of endpoints) {
    let url: URL | undefined;
    try {
      // The URL parser silently drops tabs and newlines: refuse them instead.
      // deno-lint-ignore no-control-regex
      url = /[\u0000-\u001f\u007f]/.test(endpoint)
        ? undefined
        : new URL(endpoint);
    } catch {
      url = undefined;
    }
    if (
      url === undefined ||
      (url.protocol !== "http:" && url.protocol !== "https:") ||
      url.hostname === "" || (url.pathname !== "/" && url.pathname !== "")
    ) {
      throw new UsageError(
        `endpoint ${quote(endpoint)} is not a URL like http://127.0.0.1:2379`,
      );
    }
  }
  return endpoints.length > 0 ? endpoints : [DEFAULT_ENDPOINT];
}
