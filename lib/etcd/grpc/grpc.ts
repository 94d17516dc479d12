/**
 * The {@link EtcdPort} over gRPC with `npm:etcd3`, for servers without the
 * JSON gateway (`--enable-grpc-gateway=false`). It behaves as the gateway
 * adapter (`gateway.ts`) does: one etcd3 client per member, driven through
 * etcd3's raw RPC clients (`KVClient`, `LeaseClient`, `WatchClient`,
 * `AuthClient`) with etcd3's own retries and circuit breakers turned off, so
 * that the same {@link EndpointSet} decides failover and hedging; with a
 * user and password, each member's token is fetched once and renewed when
 * etcd says it is not valid. Loading it (grpc-js, and the protobuf
 * definitions etcd3 parses at import) adds about 0.1 s and 30 MB to a
 * process (`bench/startup/port_open.ts`), which is why `open.ts` loads it
 * only when the gateway is missing.
 *
 * @module
 */

import type { Interceptor } from "npm:@grpc/grpc-js@1.14.7";
import type { Etcd3, IOptions } from "npm:etcd3@1.1.2";
import { EtcdRequestError } from "../../common/errors.ts";
import { EndpointFailure } from "../client/endpoint_set.ts";
import {
  callInterceptor,
  grpcCredentials,
  memberClient,
  portError,
} from "./grpc_client.ts";
import {
  rangeMessage,
  rangeResultFrom,
  txnMessage,
  txnResultFrom,
} from "./grpc_messages.ts";
import { GrpcWatch } from "./grpc_watch.ts";
import {
  PortCore,
  type SendAttempt,
  type WatchMemberOptions,
} from "../client/port_core.ts";
import { int } from "../client/wire_shapes.ts";
import type { EtcdPortOptions } from "../client/etcd_options.ts";
import type {
  CallOptions,
  EtcdPort,
  RangeRequest,
  RangeResult,
  TxnRequest,
  TxnResult,
  WatchRequest,
  WatchStream,
} from "../client/port.ts";

/**
 * The endpoint set abandons every attempt at the call's deadline (the
 * interceptor then cancels it before anything more is sent); grpc-js's own
 * deadline is only a backstop, this much later, so that a call that runs out
 * of time is reported as such by the set, as for the gateway.
 */
const BACKSTOP_MS = 250;

/**
 * Opens the gRPC port: checks the options and reads the TLS files (errors
 * name the file); nothing is sent before the first request.
 */
export async function openGrpcPort(
  options: EtcdPortOptions,
): Promise<GrpcPort> {
  return new GrpcPort(options, await grpcCredentials(options));
}

/** One attempt's call options: the deadline, and the interceptor adding abandonment and the token. */
interface AttemptCall {
  readonly deadline: number;
  readonly interceptors: Interceptor[];
}

/** One RPC on the client of `endpoint`. */
type Rpc<T> = (
  client: Etcd3,
  options: AttemptCall,
  endpoint: string,
) => Promise<T>;

/** The {@link EtcdPort} over gRPC; see the module documentation. */
export class GrpcPort extends PortCore implements EtcdPort {
  /** Always `"grpc"`. */
  readonly transport = "grpc" as const;
  readonly #options: EtcdPortOptions;
  readonly #credentials: IOptions["credentials"];
  readonly #secure: boolean;
  readonly #clients = new Map<string, Etcd3>();
  #closed = false;

  /**
   * Creates a `GrpcPort`; see {@link openGrpcPort}.
   *
   * @param options endpoints, credentials and timeouts
   * @param credentials etcd3's TLS credentials, if TLS is used
   */
  constructor(options: EtcdPortOptions, credentials: IOptions["credentials"]) {
    super(options);
    this.#options = options;
    this.#credentials = credentials;
    this.#secure = credentials !== undefined ||
      options.endpoints.some((e) => e.startsWith("https:"));
  }

  /** Asks `endpoint` for a token; see {@link PortCore.authenticate}. */
  protected async authenticate(
    endpoint: string,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    const { username, password, timeoutMs } = this.#options;
    const response = await this.#rpc(
      endpoint,
      signal,
      Date.now() + timeoutMs,
      (client, options) =>
        client.auth.authenticate({ name: username!, password }, options),
    );
    return response.token || undefined;
  }

  /** The etcd3 client of `endpoint`, created on first use. */
  #client(endpoint: string): Etcd3 {
    if (this.#closed) throw new Error("the etcd gRPC port is closed");
    let client = this.#clients.get(endpoint);
    if (client === undefined) {
      client = memberClient(endpoint, this.#credentials);
      this.#clients.set(endpoint, client);
    }
    return client;
  }

  /**
   * One RPC on one member; turns what etcd3 throws into the port's errors:
   * {@link EndpointFailure} when the member did not answer usefully, else
   * etcd's answer.
   */
  async #rpc<T>(
    endpoint: string,
    signal: AbortSignal,
    deadline: number,
    call: Rpc<T>,
    token?: string,
  ): Promise<T> {
    if (signal.aborted) {
      throw new EndpointFailure(endpoint, "timeout", "no answer");
    }
    try {
      return await call(this.#client(endpoint), {
        deadline,
        interceptors: [callInterceptor({ signal, token })],
      }, endpoint);
    } catch (error) {
      throw portError(error, endpoint, signal.aborted, this.#secure);
    }
  }

  /** Runs `call` on a member, within `options.deadline`; see {@link PortCore.call}. */
  #sender<T>(options: CallOptions, call: Rpc<T>): SendAttempt<T> {
    return (endpoint, signal, token) =>
      this.#rpc(endpoint, signal, options.deadline + BACKSTOP_MS, call, token);
  }

  #call<T>(kind: string, options: CallOptions, call: Rpc<T>): Promise<T> {
    return this.call(kind, options, this.#sender(options, call));
  }

  /** Reads keys; see {@link EtcdPort.range}. */
  async range(
    request: RangeRequest,
    options: CallOptions,
  ): Promise<RangeResult> {
    const message = rangeMessage(request);
    return rangeResultFrom(
      await this.#call("range", options, (c, o) => c.kv.range(message, o)),
    );
  }

  /** Runs a guarded transaction; see {@link EtcdPort.txn}. */
  txn(request: TxnRequest, options: CallOptions): Promise<TxnResult> {
    const message = txnMessage(request);
    return this.callTxn(
      options,
      this.#sender(options, (c, o) => c.kv.txn(message, o)),
      txnResultFrom,
    );
  }

  /** Grants a lease; see {@link EtcdPort.leaseGrant}. */
  async leaseGrant(
    ttlSeconds: number,
    options: CallOptions,
  ): Promise<{ id: string; ttl: number }> {
    const response = await this.#call(
      "leaseGrant",
      options,
      (c, o) => c.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }, o),
    );
    if (!response.ID || response.ID === "0") {
      throw new EtcdRequestError(
        2,
        `etcd granted no lease: ${response.error || "no ID"}`,
      );
    }
    return { id: String(response.ID), ttl: int(response.TTL) || ttlSeconds };
  }

  /**
   * Renews a lease; see {@link EtcdPort.leaseKeepAlive}. gRPC has only a
   * keep-alive stream: this opens one, sends the lease id, reads the one
   * answer and closes it (as `etcdctl lease keep-alive --once` does).
   */
  leaseKeepAlive(id: string, options: CallOptions): Promise<number> {
    return this.#call("leaseKeepAlive", options, async (c, o, endpoint) => {
      const stream = await c.leaseClient.leaseKeepAlive(o);
      try {
        return await new Promise<number>((resolve, reject) => {
          stream.on("data", (r) => resolve(int(r.TTL)));
          stream.on("error", reject);
          stream.on("end", () =>
            reject(
              new EndpointFailure(endpoint, "unavailable", "ended the stream"),
            ));
          stream.write({ ID: id });
        });
      } finally {
        stream.end();
        stream.cancel();
      }
    });
  }

  /** Revokes a lease; see {@link EtcdPort.leaseRevoke}. */
  leaseRevoke(id: string, options: CallOptions): Promise<void> {
    return this.callRevoke(
      options,
      this.#sender(options, (c, o) => c.leaseClient.leaseRevoke({ ID: id }, o)),
    );
  }

  /** Opens a watch stream on `member`; see {@link PortCore.openWatch}. */
  protected openWatch(
    requests: readonly WatchRequest[],
    member: WatchMemberOptions,
  ): WatchStream {
    return new GrpcWatch({
      ...member,
      client: () => this.#client(member.endpoint),
      requests,
      secure: this.#secure,
    });
  }

  /** Ends every watch stream and closes every member's connections. */
  close(): Promise<void> {
    this.#closed = true;
    this.closeWatches();
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
    return Promise.resolve();
  }
}
