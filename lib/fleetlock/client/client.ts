/**
 * locksmithd's FleetLock client: the {@link LockServer} of the `fleetlock`
 * strategy, speaking to any FleetLock server (locksmith's own
 * `locksmithd serve`, airlock, poseidon/fleetlock) as Zincati does. Each
 * call is one `POST` (`pre-reboot` to take the slot, `steady-state` to
 * give it back) with a timeout; the client never retries by itself: the
 * daemon decides (`lib/daemon/loop/server_slot.ts`). After no answer, the
 * daemon asks {@link FleetLockClient.probe} now and then while it waits.
 * What is sent and how answers are read is in `client_request.ts`.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { describeFetchError } from "../../common/fetch_error.ts";
import { VERSION } from "../../common/version.ts";
import type {
  LockServer,
  LockServerAnswer,
} from "../../semaphore/lock_server.ts";
import {
  answeredByServer,
  DEFAULT_FLEETLOCK_TIMEOUT_MS,
  describeRefusal,
  type FleetLockAuth,
  isFull,
  parseErrorBody,
  readGrant,
  requestBody,
  requestHeaders,
  resolveBaseUrl,
  type ResolvedBase,
} from "../protocol/client_request.ts";
import type { FleetLockEndpoint } from "../protocol/protocol.ts";

/** Longest answer body read: 64 KiB (a FleetLock answer is one line). */
export const MAX_ANSWER_BYTES = 64 * 1024;

/** Options of {@link FleetLockClient}. */
export interface FleetLockClientOptions {
  /** The server's base URL (`http://` or `https://`), resolved as Zincati resolves it. */
  readonly baseUrl: string;
  /** The id sent as `client_params.id`. */
  readonly id: string;
  /** The group sent as `client_params.group` (FleetLock's default is `default`). */
  readonly group: string;
  /** Limit of each request, in ms (default 30 s). */
  readonly timeoutMs?: number | undefined;
  /** PEM CA certificates trusted for `https://` besides the default store. */
  readonly caCerts?: readonly string[] | undefined;
  /** A bearer token (`Authorization: Bearer`); else the base URL's userinfo, if any, as Basic. */
  readonly token?: string | undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads at most {@link MAX_ANSWER_BYTES} of a body as text (a longer one is cut). */
async function readCapped(response: Response): Promise<string> {
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < MAX_ANSWER_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(Math.min(size, MAX_ANSWER_BYTES));
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, bytes.length - offset);
    bytes.set(part, offset);
    offset += part.length;
  }
  return decoder.decode(bytes);
}

/** A FleetLock client for one machine in one group; see the module documentation. */
export class FleetLockClient implements LockServer {
  /** For log lines: `FleetLock server http://h:8080/ (group default, id ...)`. */
  readonly name: string;
  /** The base URL as resolved (request URLs, credentials, warnings). */
  readonly base: ResolvedBase;
  /** The id sent. */
  readonly id: string;
  /** The group sent. */
  readonly group: string;
  readonly #timeoutMs: number;
  readonly #body: Uint8Array<ArrayBuffer>;
  readonly #headers: Record<string, string>;
  readonly #http: Deno.HttpClient;

  /**
   * Creates a client; sends nothing yet.
   *
   * @param options server, identity, timeout, TLS and credentials
   */
  constructor(options: FleetLockClientOptions) {
    this.base = resolveBaseUrl(options.baseUrl);
    this.id = options.id;
    this.group = options.group;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_FLEETLOCK_TIMEOUT_MS;
    const auth: FleetLockAuth | undefined = options.token !== undefined
      ? { bearer: options.token }
      : this.base.basic;
    this.#headers = requestHeaders(auth, `locksmithd/${VERSION}`);
    this.#body = encoder.encode(requestBody(options.id, options.group));
    this.#http = Deno.createHttpClient({
      ...(options.caCerts ? { caCerts: [...options.caCerts] } : {}),
    });
    this.name =
      `FleetLock server ${this.base.shown} (group ${options.group}, id ${options.id})`;
  }

  /** `POST v1/pre-reboot`: takes this machine's slot. */
  lock(signal: AbortSignal): Promise<LockServerAnswer> {
    return this.#call("pre-reboot", signal);
  }

  /** `POST v1/steady-state`: gives this machine's slot back. */
  unlock(signal: AbortSignal): Promise<LockServerAnswer> {
    return this.#call("steady-state", signal);
  }

  /**
   * `GET -/healthy` (resolved against the base URL), with the credentials
   * but without the FleetLock header and body, so that no server reads it
   * as a call: `true` when the server itself answered, whatever it said
   * (see `answeredByServer`); `false` without an answer in time.
   */
  probe(signal: AbortSignal): Promise<boolean> {
    const { authorization, "user-agent": userAgent } = this.#headers;
    return this.#timed(signal, async (both) => {
      try {
        const response = await fetch(this.base.probeUrl, {
          headers: {
            "user-agent": userAgent as string,
            ...(authorization === undefined ? {} : { authorization }),
          },
          client: this.#http,
          signal: both,
        });
        const text = await readCapped(response);
        return response.ok ||
          answeredByServer(
            response.status,
            parseErrorBody(response.status, text),
          );
      } catch {
        signal.throwIfAborted();
        return false;
      }
    });
  }

  /** Closes the HTTP client's connections. */
  close(): Promise<void> {
    this.#http.close();
    return Promise.resolve();
  }

  /** Runs `request` with the call timeout added to `signal` (`timeout` aborts when it fires). */
  async #timed<T>(
    signal: AbortSignal,
    request: (both: AbortSignal, timeout: AbortSignal) => Promise<T>,
  ): Promise<T> {
    signal.throwIfAborted();
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.#timeoutMs);
    try {
      return await request(
        AbortSignal.any([signal, timeout.signal]),
        timeout.signal,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  #call(
    endpoint: FleetLockEndpoint,
    signal: AbortSignal,
  ): Promise<LockServerAnswer> {
    const url = this.base.urls[endpoint];
    return this.#timed(signal, async (both, timeout) => {
      try {
        const response = await fetch(url, {
          method: "POST",
          headers: this.#headers,
          body: this.#body,
          client: this.#http,
          signal: both,
        });
        const text = await readCapped(response);
        if (response.ok) return readGrant(response.status, text);
        const body = parseErrorBody(response.status, text);
        return {
          ok: false,
          status: response.status,
          kind: body.kind,
          full: isFull(response.status, body.kind),
          // A 5xx may come after the change was applied (an etcd timeout, a proxy).
          uncertain: response.status >= 500,
          answered: answeredByServer(response.status, body),
          message: describeRefusal(url, response.status, body),
        };
      } catch (error) {
        signal.throwIfAborted();
        const timedOut = timeout.aborted;
        return {
          ok: false,
          status: undefined,
          kind: timedOut ? "timeout" : "unreachable",
          full: false,
          uncertain: true,
          answered: false,
          message: timedOut
            ? `FleetLock server ${url} did not answer within ${
              formatDuration(this.#timeoutMs)
            }`
            : `FleetLock server ${url} cannot be reached: ${
              describeFetchError(error, "the FleetLock server")
            }`,
        };
      }
    });
  }
}
