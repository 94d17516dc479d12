/**
 * Why a `fetch` got no answer, in one line an operator recognises: shared
 * by the etcd gateway and the FleetLock client.
 *
 * @module
 */

import { oneLine } from "./errors.ts";

/**
 * Why `fetch` failed, in one line: `connection refused`, the Fetch
 * standard's blocked ports, `TLS failed: <cause>`, or else the innermost
 * cause (`fetch failed` says nothing) without the URL it repeats, e.g.
 * `tcp connect error: Connection reset by peer (os error 104)`.
 *
 * @param error what `fetch` threw
 * @param server what was asked, for the advice on a blocked port (`etcd`)
 */
export function describeFetchError(
  error: unknown,
  server = "the server",
): string {
  const chain: unknown[] = [error];
  let inner = error;
  while (inner instanceof Error && inner.cause !== undefined) {
    inner = inner.cause;
    chain.push(inner);
    if (chain.length >= 8) break;
  }
  const all = chain.map(oneLine).join(": ");
  if (/Connection refused|ECONNREFUSED/i.test(all)) {
    return "connection refused";
  }
  // The Fetch standard's "bad ports" (1, 9, 25, ...) are never contacted.
  const blocked = /Requests to port (\d+) are blocked/.exec(all);
  if (blocked) {
    return `port ${
      blocked[1]
    } is one that HTTP clients refuse to contact; run ${server} on another port`;
  }
  const innermost = oneLine(inner)
    .replace(/^error sending request for url \([^)]*\): /, "")
    .replace(/^client error \(\w+\): /, "");
  if (/certificate|tls|handshake/i.test(all)) {
    return `TLS failed: ${innermost}`;
  }
  return innermost;
}
