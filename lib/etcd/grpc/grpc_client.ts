/**
 * What the gRPC adapter (`grpc.ts`) needs from `npm:etcd3` and
 * `@grpc/grpc-js`: a client per member built from locksmith's connection
 * options (TLS files, the IP-servername workaround), a per-call interceptor
 * (abandonment, auth token, leader requirement), and the port's error for
 * what the client threw (its gRPC status, in words an operator recognises).
 * Loaded only with the gRPC adapter.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  InterceptingCall,
  type Interceptor,
  status,
} from "npm:@grpc/grpc-js@1.14.7";
import { noop } from "npm:cockatiel@3.2.1";
import { Etcd3, type IOptions } from "npm:etcd3@1.1.2";
import { EndpointFailure } from "../client/endpoint_set.ts";
import { answerError, UNAVAILABLE_CODES } from "../client/port_core.ts";
import {
  checkConnectionOptions,
  readTlsFiles,
  type TlsOptions,
} from "../client/tls.ts";
import { allowIpEndpointsOverTls } from "./tls_ip_servername.ts";

/**
 * etcd3's TLS credentials from the TLS files that were given (errors name
 * the file), or `undefined` without TLS files; installs the IP-servername
 * workaround whenever TLS is used.
 */
export async function grpcCredentials(
  options: TlsOptions,
): Promise<IOptions["credentials"]> {
  const tls = checkConnectionOptions(options);
  if (tls || options.endpoints.some((h) => h.startsWith("https:"))) {
    allowIpEndpointsOverTls();
  }
  if (!tls) return undefined;
  const files = await readTlsFiles(options);
  const [ca, cert, key] = [files.ca, files.cert, files.key].map((pem) =>
    pem === undefined ? undefined : Buffer.from(pem)
  );
  return {
    // grpc-js falls back to the system roots when no CA is given.
    rootCertificate: ca as Buffer,
    ...(cert && key ? { certChain: cert, privateKey: key } : {}),
  };
}

/**
 * An etcd3 client for one member with etcd3's own fault handling turned off
 * (no retries, no circuit breaker: the port's endpoint set decides where to
 * go) and without etcd3's auth (the port adds each member's token itself).
 */
export function memberClient(
  endpoint: string,
  credentials: IOptions["credentials"],
): Etcd3 {
  return new Etcd3({
    hosts: [endpoint],
    ...(credentials ? { credentials } : {}),
    faultHandling: { host: () => noop, global: noop },
  });
}

/** What {@link callInterceptor} adds to a call. */
export interface CallExtras {
  /** Cancels the call when it aborts; a call started after the abort is cancelled before anything is sent. */
  readonly signal?: AbortSignal | undefined;
  /** The member's auth token, sent as `token` metadata. */
  readonly token?: string | undefined;
  /** Asks the member to refuse (or end) the call when it has no leader. */
  readonly requireLeader?: boolean;
}

/** etcd's text for an expired or unknown token. */
const INVALID_TOKEN = "etcdserver: invalid auth token";

/**
 * A grpc-js interceptor adding `extras` to one call. It also rewords etcd's
 * "invalid auth token" status: etcd3 answers that one by fetching a token
 * through its own auth and repeating the call, without limit when (as here)
 * its auth is not configured; the port renews the token itself instead.
 */
export function callInterceptor(extras: CallExtras): Interceptor {
  return (options, nextCall) => {
    const call: InterceptingCall = new InterceptingCall(nextCall(options), {
      start(metadata, _listener, next) {
        if (extras.token !== undefined) metadata.set("token", extras.token);
        if (extras.requireLeader) metadata.set("hasleader", "true");
        next(metadata, {
          onReceiveStatus(received, nextStatus) {
            nextStatus(
              received.details.includes(INVALID_TOKEN)
                ? { ...received, details: TOKEN_REJECTED }
                : received,
            );
          },
        });
        if (extras.signal?.aborted) abandon(call);
      },
    });
    extras.signal?.addEventListener("abort", () => abandon(call), {
      once: true,
    });
    return call;
  };
}

/** How {@link callInterceptor} rewords etcd's "invalid auth token". */
export const TOKEN_REJECTED =
  "auth token not valid (expired, or the member restarted)";

function abandon(call: InterceptingCall): void {
  call.cancelWithStatus(status.CANCELLED, "abandoned by the caller");
}

/** A gRPC status: code and etcd's text. */
export interface GrpcStatus {
  /** The gRPC status code (14 unavailable, 7 permission denied, ...). */
  readonly code: number;
  /** The server's text, or what grpc-js says happened. */
  readonly details: string;
}

/**
 * The gRPC status of an error thrown by etcd3. etcd3 turns grpc-js errors
 * into its own classes whose message is grpc-js's `"<code> <NAME>: <details>"`
 * (one class wraps it as `"Lease <that> is expired or revoked"`); errors that
 * are not statuses are reported as code 2 (unknown) with their message.
 */
export function grpcStatusOf(error: unknown): GrpcStatus {
  const message = error instanceof Error ? error.message : String(error);
  const match = /(\d+) [A-Z_]+: ([\s\S]*)$/.exec(message);
  if (match === null) return { code: 2, details: message };
  const details = match[2]!.replace(/ is expired or revoked$/, "");
  return { code: Number(match[1]), details };
}

/**
 * What grpc-js's text for an unreachable member means, in words an operator
 * recognises (`connection refused`, `TLS failed: ...`); other texts are kept,
 * minus grpc-js's notes. `secure` says whether the connection uses TLS: a
 * server that requires a client certificate often just closes the
 * connection during the handshake, which grpc-js reports as `write EPIPE`.
 */
export function describeUnavailable(details: string, secure: boolean): string {
  const connecting = details.startsWith("No connection established");
  const text = details.replace(/\s+/g, " ")
    .replace(/\.? Resolution note:.*$/, "")
    .replace(/^No connection established\. Last error: (Error: )?/, "")
    .replace(/ \(\d{4}-\d\d-\d\dT[\d:.]+Z\)$/, "")
    .replace(
      /^Received RST_STREAM with code \d+ triggered by internal client error: /,
      "",
    )
    .replace(
      "This socket has been ended by the other party",
      "closed by the member",
    );
  if (/ECONNREFUSED|Connection refused/i.test(text)) {
    return "connection refused";
  }
  if (/certificate|tls|ssl|handshake/i.test(text)) {
    return `TLS failed: ${text}`;
  }
  const lost =
    /EPIPE|ECONNRESET|socket hang up|closed by the member|Connection dropped/i
      .test(text);
  if (lost && secure && connecting) {
    return `TLS failed: the server closed the connection (${text}); does it require a client certificate?`;
  }
  return lost ? `connection lost (${text})` : text;
}

/**
 * The port's error for what one attempt on `endpoint` threw:
 * {@link EndpointFailure} when the member did not answer usefully (another
 * may), else etcd's answer as `answerError` maps it for both adapters.
 * `aborted` says whether the attempt was abandoned; `secure`, whether the
 * member is reached over TLS.
 */
export function portError(
  error: unknown,
  endpoint: string,
  aborted: boolean,
  secure: boolean,
): Error {
  if (error instanceof EndpointFailure) return error;
  const { code, details } = grpcStatusOf(error);
  if (aborted || code === 4) {
    return new EndpointFailure(endpoint, "timeout", "no answer");
  }
  if (UNAVAILABLE_CODES.has(code)) {
    // No connection at all (refused, TLS failed) counts as refused, as a
    // failed fetch does for the gateway.
    const refused = details.startsWith("No connection established");
    return new EndpointFailure(
      endpoint,
      refused ? "refused" : "unavailable",
      describeUnavailable(details, secure),
    );
  }
  return answerError(endpoint, code, details);
}
