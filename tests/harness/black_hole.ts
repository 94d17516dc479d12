/**
 * A black hole: a TCP listener on loopback that accepts connections and
 * never answers (a member frozen by a pause, or a dead network path).
 */

/** A running black hole. */
export interface BlackHole {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Closes the listener and every connection. */
  close(): void;
}

/** Starts a black hole on a free loopback port. */
export function startBlackHole(): BlackHole {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const conn of listener) conns.push(conn);
    } catch { /* closed */ }
  })();
  const { port } = listener.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${port}`,
    close() {
      try {
        listener.close();
      } catch { /* already closed */ }
      for (const c of conns) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
    },
  };
}
