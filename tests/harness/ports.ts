/** Free loopback TCP ports for test servers. */

/** Returns `n` distinct TCP ports on 127.0.0.1 that were free a moment ago. */
export function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}
