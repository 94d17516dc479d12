/**
 * An {@link etcd.EtcdPort} that passes everything to another one and counts what
 * it sends, by what the request does, so that the benchmark can say where a
 * grant's requests go. A Txn is named by its shape, as the wait queue and
 * the store build them:
 *
 * - `Txn join`: put with a lease, guarded by the entry's version 0;
 * - `Txn CAS won` / `Txn CAS lost`: the document's compare-and-swap (lock,
 *   unlock), by its outcome;
 * - `Txn startup read`: the start-up read, which also removes a stale entry;
 * - `Txn leave`: leaving the queue (a nested, guarded delete);
 * - `Txn re-read`: reading the document and the queue again;
 * - `Txn other`: anything else (removing junk, an old entry).
 *
 * Watches are counted as streams and as creates (one per watched key or
 * range), as etcd counts them.
 */

import type * as etcd from "../lib/etcd/client/port.ts";

/** The kind of a Txn by its shape; see the module documentation. */
export function txnKind(request: etcd.TxnRequest): string {
  const [first] = request.compare;
  const ops = request.success;
  if (
    first?.target === "VERSION" && ops.some((o) => "put" in o && o.put.lease)
  ) {
    return "join";
  }
  if (first?.target === "MOD" && ops.some((o) => "put" in o)) return "CAS";
  if (request.compare.length > 0) return "other";
  if (ops.some((o) => "txn" in o) && ops.some((o) => "range" in o)) {
    return "leave";
  }
  if (ops.some((o) => "deleteRange" in o)) return "startup read";
  if (ops.every((o) => "range" in o)) return "re-read";
  return "other";
}

/** Counts what passes through; see the module documentation. */
export class CountingPort implements etcd.EtcdPort {
  /** Requests by kind. */
  readonly counts: Record<string, number> = {};
  readonly #inner: etcd.EtcdPort;

  /**
   * Wraps `inner`.
   *
   * @param inner the port that does the work
   */
  constructor(inner: etcd.EtcdPort) {
    this.#inner = inner;
  }

  /** The endpoints, for messages. */
  get endpoints(): readonly string[] {
    return this.#inner.endpoints;
  }

  /** The inner port's transport. */
  get transport(): "gateway" | "grpc" {
    return this.#inner.transport;
  }

  #count(kind: string, n = 1): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + n;
  }

  /** Reads keys; counted as `Range`. */
  range(
    request: etcd.RangeRequest,
    options: etcd.CallOptions,
  ): Promise<etcd.RangeResult> {
    this.#count("Range");
    return this.#inner.range(request, options);
  }

  /** Runs a Txn; counted by its kind (CAS by its outcome). */
  async txn(
    request: etcd.TxnRequest,
    options: etcd.CallOptions,
  ): Promise<etcd.TxnResult> {
    const kind = txnKind(request);
    if (kind !== "CAS") this.#count(`Txn ${kind}`);
    const result = await this.#inner.txn(request, options);
    if (kind === "CAS") {
      this.#count(`Txn CAS ${result.succeeded ? "won" : "lost"}`);
    }
    return result;
  }

  /** Opens a watch stream; counted as a stream and as its creates. */
  watch(
    requests: readonly etcd.WatchRequest[],
    handlers: etcd.WatchHandlers,
    endpoint?: string,
  ): etcd.WatchStream {
    this.#count("Watch streams");
    this.#count("Watch creates", requests.length);
    return this.#inner.watch(requests, handlers, endpoint);
  }

  /** Grants a lease; counted as `LeaseGrant`. */
  leaseGrant(
    ttlSeconds: number,
    options: etcd.CallOptions,
  ): Promise<{ id: string; ttl: number }> {
    this.#count("LeaseGrant");
    return this.#inner.leaseGrant(ttlSeconds, options);
  }

  /** Renews a lease; counted as `LeaseKeepAlive`. */
  leaseKeepAlive(id: string, options: etcd.CallOptions): Promise<number> {
    this.#count("LeaseKeepAlive");
    return this.#inner.leaseKeepAlive(id, options);
  }

  /** Revokes a lease; counted as `LeaseRevoke`. */
  leaseRevoke(id: string, options: etcd.CallOptions): Promise<void> {
    this.#count("LeaseRevoke");
    return this.#inner.leaseRevoke(id, options);
  }

  /** The endpoints in the inner port's order. */
  endpointOrder(): string[] {
    return this.#inner.endpointOrder();
  }

  /** The inner port's own statistics. */
  stats(): etcd.PortStats {
    return this.#inner.stats();
  }

  /** Closes the inner port. */
  close(): Promise<void> {
    return this.#inner.close();
  }
}
