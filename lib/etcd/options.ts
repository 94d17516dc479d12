/**
 * How to reach etcd: endpoints, TLS files, credentials and a deadline.
 *
 * @module
 */

import type { TlsOptions } from "./tls.ts";

/** How to reach etcd: endpoints, TLS files and credentials, and a deadline. */
export interface EtcdConnectionOptions extends TlsOptions {
  /** Deadline of each operation (all its requests and retries), in milliseconds. */
  readonly timeoutMs: number;
}
