/**
 * The port the programs use: etcd's JSON gateway, switching to gRPC when the
 * servers turn out to have none. How the gRPC adapter is loaded is the
 * caller's choice: `open.ts` imports it by a literal specifier (so that
 * `deno cache` and `deno compile` include it), locksmithctl by a computed
 * one (so that `deno run` does not resolve it and its npm packages at every
 * start).
 *
 * @module
 */

import { UsageError } from "../common/errors.ts";
import { describeRefusal, requirePermissions } from "../host/permissions.ts";
import { etcd3ProtoDir, grpcPermissionNeeds } from "./grpc/grpc_needs.ts";
import { NoGatewayError, openGatewayPort } from "./gateway/gateway.ts";
import type { EtcdConnectionOptions } from "./client/etcd_options.ts";
import type {
  CallOptions,
  EtcdPort,
  PortStats,
  RangeRequest,
  RangeResult,
  TxnRequest,
  TxnResult,
  WatchHandlers,
  WatchRequest,
  WatchStream,
} from "./client/port.ts";

/** The gRPC adapter module (`grpc.ts`), as a fallback loader returns it. */
export type GrpcModule = typeof import("./grpc/grpc.ts");

/**
 * An {@link EtcdPort} that talks through `first` until it answers
 * {@link NoGatewayError}, then loads `fallback` (once) and uses it from
 * then on.
 */
export class FallbackPort implements EtcdPort {
  /** The endpoints, for messages. */
  readonly endpoints: readonly string[];
  #current: EtcdPort;
  #switching: Promise<EtcdPort> | undefined;
  readonly #fallback: () => Promise<EtcdPort>;
  #before: Record<string, number> = {};

  /**
   * Creates a `FallbackPort`.
   *
   * @param first the port to use first (the gateway)
   * @param fallback loads the port to use when `first` has no gateway
   */
  constructor(first: EtcdPort, fallback: () => Promise<EtcdPort>) {
    this.endpoints = first.endpoints;
    this.#current = first;
    this.#fallback = fallback;
  }

  /** The transport in use now. */
  get transport(): "gateway" | "grpc" {
    return this.#current.transport;
  }

  async #run<T>(call: (port: EtcdPort) => Promise<T>): Promise<T> {
    const port = this.#current;
    try {
      return await call(port);
    } catch (error) {
      if (!(error instanceof NoGatewayError)) throw error;
      this.#switching ??= this.#fallback().then(async (next) => {
        this.#before = { ...port.stats().requests };
        await port.close();
        this.#current = next;
        return next;
      });
      return await call(await this.#switching);
    }
  }

  /** Reads keys; see {@link EtcdPort.range}. */
  range(request: RangeRequest, options: CallOptions): Promise<RangeResult> {
    return this.#run((p) => p.range(request, options));
  }

  /** Runs a guarded transaction; see {@link EtcdPort.txn}. */
  txn(request: TxnRequest, options: CallOptions): Promise<TxnResult> {
    return this.#run((p) => p.txn(request, options));
  }

  /**
   * Opens a watch stream; see {@link EtcdPort.watch}. A gateway watch that
   * finds no gateway ends as disconnected; the next request switches to
   * gRPC, so the owner's re-read and new watch go there.
   */
  watch(
    requests: readonly WatchRequest[],
    handlers: WatchHandlers,
    endpoint?: string,
  ): WatchStream {
    return this.#current.watch(requests, handlers, endpoint);
  }

  /** Grants a lease; see {@link EtcdPort.leaseGrant}. */
  leaseGrant(
    ttlSeconds: number,
    options: CallOptions,
  ): Promise<{ id: string; ttl: number }> {
    return this.#run((p) => p.leaseGrant(ttlSeconds, options));
  }

  /** Renews a lease; see {@link EtcdPort.leaseKeepAlive}. */
  leaseKeepAlive(id: string, options: CallOptions): Promise<number> {
    return this.#run((p) => p.leaseKeepAlive(id, options));
  }

  /** Revokes a lease; see {@link EtcdPort.leaseRevoke}. */
  leaseRevoke(id: string, options: CallOptions): Promise<void> {
    return this.#run((p) => p.leaseRevoke(id, options));
  }

  /** The endpoints in the order the current port would try them. */
  endpointOrder(): string[] {
    return this.#current.endpointOrder();
  }

  /** Requests sent so far, by kind, through both ports. */
  stats(): PortStats {
    const requests: Record<string, number> = { ...this.#before };
    for (const [kind, n] of Object.entries(this.#current.stats().requests)) {
      requests[kind] = (requests[kind] ?? 0) + n;
    }
    return { requests };
  }

  /** Closes the port in use. */
  close(): Promise<void> {
    return this.#current.close();
  }
}

/**
 * Opens an {@link EtcdPort}: the JSON gateway, falling back to gRPC (loaded
 * by `loadGrpc`, only then) when the servers have no gateway. Reads the TLS
 * files now, so that a missing one is reported before any request.
 */
export async function openFallbackPort(
  options: EtcdConnectionOptions,
  loadGrpc: () => Promise<GrpcModule>,
): Promise<EtcdPort> {
  const gateway = await openGatewayPort(options);
  return new FallbackPort(gateway, async () => {
    const why = `etcd at ${options.endpoints.join(",")} has no JSON gateway`;
    requirePermissions(grpcPermissionNeeds(why, etcd3ProtoDir()));
    try {
      const { openGrpcPort } = await loadGrpc();
      return await openGrpcPort(options);
    } catch (error) {
      // The gRPC client reads its .proto files when it loads.
      const refusal = describeRefusal(
        error,
        `etcd at ${
          options.endpoints.join(",")
        } has no JSON gateway, and the gRPC client needs its protocol files`,
      );
      if (refusal !== undefined) throw new UsageError(refusal);
      throw error;
    }
  });
}
