/**
 * How to reach etcd: endpoints, TLS files, credentials and a deadline; and
 * what an etcd port (gateway or gRPC) takes beside them.
 *
 * @module
 */

import type { TlsOptions } from "./tls.ts";

/** How to reach etcd: endpoints, TLS files and credentials, and a deadline. */
export interface EtcdConnectionOptions extends TlsOptions {
  /** Deadline of each operation (all its requests and retries), in milliseconds. */
  readonly timeoutMs: number;
}

/** What the gateway and gRPC ports take: the connection options, and the hedge delay. */
export interface EtcdPortOptions extends EtcdConnectionOptions {
  /** Ask another member too after this long without an answer (default 250 ms, at most a quarter of `timeoutMs`). */
  readonly hedgeAfterMs?: number;
}
