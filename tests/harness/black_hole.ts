/**
 * A black hole: a TCP listener on loopback that accepts connections and
 * never answers, like a member frozen or cut off behind a firewall that
 * drops packets (a connection attempt does not fail, it just hangs).
 */

/** A running black hole. */
export interface BlackHole {
  /** Its URL, for use as an etcd endpoint. */
  readonly url: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Closes the listener and every accepted connection. */
  close(): Promise<void>;
}

/** Starts a black hole on a free loopback port. */
export function startBlackHole(): BlackHole {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch { /* closed */ }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    get accepted() {
      return conns.length;
    },
    async close() {
      listener.close();
      await accepting;
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed by the peer */ }
      }
    },
  };
}
