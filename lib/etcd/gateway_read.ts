/**
 * Reading the semaphore through etcd's JSON gateway (`POST /v3/kv/range`)
 * with `fetch`, for `locksmithctl status`: it answers in a few milliseconds
 * where loading the gRPC client takes a few hundred. Reads only; every
 * change goes through the gRPC client's compare-and-swap. A server without
 * the gateway (disabled, or an old `/v3beta` path) makes the reader return
 * `undefined`, so the caller falls back to gRPC.
 *
 * @module
 */

import type { EtcdConnectionOptions } from "./grpc_client.ts";
import { EtcdUnavailableError } from "../common/errors.ts";
import { formatDuration } from "../common/duration.ts";
import { checkConnectionOptions, readTlsFiles } from "./tls.ts";

/** A stored value as read through the gateway. */
export interface GatewayRead {
  /** The stored text, or `undefined` when the key is absent. */
  readonly raw: string | undefined;
  /** The key's `mod_revision`; `0` when absent. */
  readonly revision: number;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

function base64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** The gateway is not there: fall back to gRPC. */
class NoGateway extends Error {}

/** Why a request failed, in words an operator recognises. */
function describe(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error
    ? `: ${error.cause.message}`
    : "";
  const text = error instanceof Error
    ? `${error.message}${cause}`
    : String(error);
  if (/Connection refused|ECONNREFUSED/i.test(text)) {
    return "connection refused (ECONNREFUSED)";
  }
  if (/certificate|tls|handshake/i.test(text)) {
    return `TLS failed: ${text.replace(/\s+/g, " ")}`;
  }
  return text.replace(/\s+/g, " ");
}

/**
 * Reads `key` through the gateway of the first endpoint that answers, within
 * `options.timeoutMs`. Returns `undefined` when the servers have no gateway;
 * throws {@link EtcdUnavailableError} naming the endpoints when none answers.
 * A stored value that is not UTF-8 is returned as `undefined` too, so that
 * the gRPC path reports it precisely.
 */
export async function readThroughGateway(
  options: EtcdConnectionOptions,
  key: string,
): Promise<GatewayRead | undefined> {
  const tls = checkConnectionOptions(options);
  const files = tls ? await readTlsFiles(options) : {};
  const decode = (bytes: Uint8Array | undefined) =>
    bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  const client = tls
    ? Deno.createHttpClient({
      ...(files.ca ? { caCerts: [decode(files.ca)!] } : {}),
      ...(files.cert && files.key
        ? { cert: decode(files.cert)!, key: decode(files.key)! }
        : {}),
    })
    : undefined;
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const post = async (
    endpoint: string,
    path: string,
    body: unknown,
    token?: string,
  ) => {
    const res = await fetch(new URL(path, endpoint), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(token ? { authorization: token } : {}),
      },
      body: JSON.stringify(body),
      signal: deadline,
      ...(client ? { client } : {}),
    });
    const text = await res.text();
    if (res.status === 404 || res.status === 405 || res.status === 501) {
      throw new NoGateway();
    }
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(text);
    } catch {
      throw new NoGateway();
    }
    if (!res.ok) {
      const message = typeof json.message === "string"
        ? json.message
        : text.slice(0, 200);
      throw new EtcdUnavailableError(
        `etcd at ${endpoint} refused the request: ${message}`,
      );
    }
    return json;
  };
  const failures: string[] = [];
  try {
    for (const endpoint of options.endpoints) {
      try {
        let token: string | undefined;
        if (options.username !== undefined) {
          const auth = await post(endpoint, "/v3/auth/authenticate", {
            name: options.username,
            password: options.password,
          });
          token = typeof auth.token === "string" ? auth.token : undefined;
        }
        const res = await post(
          endpoint,
          "/v3/kv/range",
          { key: base64(key) },
          token,
        );
        const kvs = res.kvs as
          | { value?: string; mod_revision?: string }[]
          | undefined;
        const kv = kvs?.[0];
        if (kv === undefined) return { raw: undefined, revision: 0 };
        try {
          return {
            raw: decoder.decode(fromBase64(kv.value ?? "")),
            revision: Number(kv.mod_revision),
          };
        } catch {
          return undefined;
        }
      } catch (error) {
        // fetch refuses some ports outright (the Fetch standard's "bad
        // ports", e.g. 1 or 9): such an endpoint is gRPC's to try.
        if (error instanceof NoGateway || /are blocked/.test(String(error))) {
          return undefined;
        }
        if (error instanceof EtcdUnavailableError) throw error;
        if (deadline.aborted) break;
        failures.push(describe(error));
      }
    }
  } finally {
    client?.close();
  }
  const where = options.endpoints.join(",");
  if (deadline.aborted) {
    throw new EtcdUnavailableError(
      `etcd at ${where} did not answer within ${
        formatDuration(options.timeoutMs)
      }`,
    );
  }
  throw new EtcdUnavailableError(
    `cannot reach etcd at ${where}: ${failures.at(-1)}`,
  );
}
