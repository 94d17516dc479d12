/**
 * The {@link EtcdPort} over etcd's JSON gateway (`POST /v3/kv/range`,
 * `/v3/kv/txn`, `/v3/watch`, `/v3/lease/*`) with `fetch`: no gRPC client to
 * load, so a command starts in milliseconds and a waiting daemon stays
 * small. Requests go to the members as {@link EndpointSet} decides (failover
 * and hedging); with a user and password, each member's token is fetched
 * once and renewed when etcd says it expired. A server without the gateway
 * makes the first request fail with {@link NoGatewayError}, so that the
 * caller can fall back to gRPC.
 *
 * @module
 */

import { EtcdRequestError } from "../../common/errors.ts";
import { describeFetchError } from "../../common/fetch_error.ts";
import { EndpointFailure } from "../client/endpoint_set.ts";
import {
  type Json,
  rangeJson,
  rangeResultFrom,
  txnJson,
  txnResultFrom,
} from "./gateway_json.ts";
import { GatewayWatch } from "./gateway_watch.ts";
import {
  answerError,
  PortCore,
  type SendAttempt,
  UNAVAILABLE_CODES,
  type WatchMemberOptions,
} from "../client/port_core.ts";
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
import type { EtcdPortOptions } from "../client/etcd_options.ts";
import { checkConnectionOptions, readTlsFiles } from "../client/tls.ts";

/** The servers have no JSON gateway (disabled, or too old): use gRPC. */
export class NoGatewayError extends Error {
  /**
   * Creates a `NoGatewayError`.
   *
   * @param endpoint the endpoint that answered without a gateway
   */
  constructor(endpoint: string) {
    super(`etcd at ${endpoint} has no JSON gateway (/v3/...)`);
    this.name = "NoGatewayError";
  }
}

/** Why `fetch` failed, in words an operator recognises. */
export function describeEtcdFetchError(error: unknown): string {
  return describeFetchError(error, "etcd");
}

/** Opens the gateway port: checks the options and reads the TLS files (errors name the file). */
export async function openGatewayPort(
  options: EtcdPortOptions,
): Promise<GatewayPort> {
  const tls = checkConnectionOptions(options);
  let client: Deno.HttpClient | undefined;
  if (tls) {
    const files = await readTlsFiles(options);
    const text = (b: Uint8Array | undefined) =>
      b === undefined ? undefined : new TextDecoder().decode(b);
    client = Deno.createHttpClient({
      ...(files.ca ? { caCerts: [text(files.ca)!] } : {}),
      ...(files.cert && files.key
        ? { cert: text(files.cert)!, key: text(files.key)! }
        : {}),
    });
  }
  return new GatewayPort(options, client);
}

/** The {@link EtcdPort} over etcd's JSON gateway; see the module documentation. */
export class GatewayPort extends PortCore implements EtcdPort {
  /** Always `"gateway"`. */
  readonly transport = "gateway" as const;
  readonly #client: Deno.HttpClient | undefined;
  readonly #login: Json;

  /**
   * Creates a `GatewayPort`; see {@link openGatewayPort}.
   *
   * @param options endpoints, credentials and timeouts
   * @param client an HTTP client carrying the TLS settings, closed by {@link GatewayPort.close}
   */
  constructor(options: EtcdPortOptions, client?: Deno.HttpClient) {
    super(options);
    this.#client = client;
    this.#login = { name: options.username, password: options.password };
  }

  /** Asks `endpoint` for a token; see {@link PortCore.authenticate}. */
  protected async authenticate(
    endpoint: string,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    const json = await this.#post(
      endpoint,
      "/v3/auth/authenticate",
      this.#login,
      signal,
    );
    return typeof json.token === "string" ? json.token : undefined;
  }

  /** One POST to one endpoint; throws {@link EndpointFailure} when the member did not answer usefully. */
  async #post(
    endpoint: string,
    path: string,
    body: Json,
    signal: AbortSignal,
    token?: string,
  ): Promise<Json> {
    let res: Response;
    let text: string;
    try {
      res = await fetch(new URL(path, endpoint), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: token } : {}),
        },
        body: JSON.stringify(body),
        signal,
        ...(this.#client ? { client: this.#client } : {}),
      });
      text = await res.text();
    } catch (error) {
      if (signal.aborted) {
        throw new EndpointFailure(endpoint, "timeout", "no answer");
      }
      throw new EndpointFailure(
        endpoint,
        "refused",
        describeEtcdFetchError(error),
      );
    }
    let json: Json;
    try {
      json = JSON.parse(text);
    } catch {
      if (res.status === 404 || res.status === 405 || res.status === 501) {
        throw new NoGatewayError(endpoint);
      }
      throw new EndpointFailure(
        endpoint,
        "unavailable",
        `answered HTTP ${res.status} without JSON`,
      );
    }
    if (res.ok) return json;
    const code = typeof json.code === "number" ? json.code : 2;
    const message = typeof json.message === "string"
      ? json.message
      : text.slice(0, 200);
    if (UNAVAILABLE_CODES.has(code)) {
      throw new EndpointFailure(endpoint, "unavailable", message);
    }
    throw answerError(endpoint, code, message);
  }

  /** Sends `body` to `path` on the members; see {@link PortCore.call}. */
  #sender(path: string, body: Json): SendAttempt<Json> {
    return (endpoint, signal, token) =>
      this.#post(endpoint, path, body, signal, token);
  }

  #call(
    kind: string,
    path: string,
    body: Json,
    options: CallOptions,
  ): Promise<Json> {
    return this.call(kind, options, this.#sender(path, body));
  }

  /** Reads keys; see {@link EtcdPort.range}. */
  async range(
    request: RangeRequest,
    options: CallOptions,
  ): Promise<RangeResult> {
    return rangeResultFrom(
      await this.#call("range", "/v3/kv/range", rangeJson(request), options),
    );
  }

  /** Runs a guarded transaction; see {@link EtcdPort.txn}. */
  txn(request: TxnRequest, options: CallOptions): Promise<TxnResult> {
    return this.callTxn(
      options,
      this.#sender("/v3/kv/txn", txnJson(request)),
      txnResultFrom,
    );
  }

  /** Grants a lease; see {@link EtcdPort.leaseGrant}. */
  async leaseGrant(
    ttlSeconds: number,
    options: CallOptions,
  ): Promise<{ id: string; ttl: number }> {
    const json = await this.#call("leaseGrant", "/v3/lease/grant", {
      TTL: String(ttlSeconds),
    }, options);
    if (typeof json.ID !== "string") {
      throw new EtcdRequestError(
        2,
        `etcd granted no lease: ${
          typeof json.error === "string" ? json.error : "no ID"
        }`,
      );
    }
    return { id: json.ID, ttl: Number(json.TTL ?? ttlSeconds) };
  }

  /** Renews a lease; see {@link EtcdPort.leaseKeepAlive}. */
  async leaseKeepAlive(id: string, options: CallOptions): Promise<number> {
    const json = await this.#call("leaseKeepAlive", "/v3/lease/keepalive", {
      ID: id,
    }, options);
    const result = (json.result ?? {}) as Json;
    return Number(result.TTL ?? 0);
  }

  /** Revokes a lease; see {@link EtcdPort.leaseRevoke}. */
  leaseRevoke(id: string, options: CallOptions): Promise<void> {
    return this.callRevoke(
      options,
      this.#sender("/v3/lease/revoke", { ID: id }),
    );
  }

  /** Opens a watch stream on `member`; see {@link PortCore.openWatch}. */
  protected openWatch(
    requests: readonly WatchRequest[],
    member: WatchMemberOptions,
  ): WatchStream {
    return new GatewayWatch({ ...member, requests, client: this.#client });
  }

  /** Ends every watch stream and the HTTP client. */
  close(): Promise<void> {
    this.closeWatches();
    this.#client?.close();
    return Promise.resolve();
  }
}
