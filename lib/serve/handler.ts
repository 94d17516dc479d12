/**
 * The FleetLock HTTP handler: a function from `Request` to `Response`, so it
 * is tested without a socket. It routes, checks method, header, body size
 * and read time, validates the body, the group and the token, applies the
 * call through a {@link FleetLockService}, and answers 200 with a line of
 * text, or `{"kind", "value"}` JSON with the kind's status. Nothing a client
 * sends yields a 500: that is kept for a corrupt stored document or a bug.
 *
 * @module
 */

import {
  ContentionError,
  CorruptDocumentError,
  EtcdUnavailableError,
  isPrintable,
  oneLine,
  quote,
} from "../common/errors.ts";
import { formatDuration } from "../common/duration.ts";
import {
  checkProtocolHeader,
  endpointOf,
  errorBody,
  FLEETLOCK_HEADER,
  FleetLockError,
  type FleetLockErrorKind,
  MAX_BODY_BYTES,
  parseClientParams,
  successLine,
} from "../fleetlock/protocol/protocol.ts";
import type { GroupTokens } from "./auth.ts";
import type { SlotResult, SlotVerdict } from "./batch.ts";

/** The semaphores behind the handler (implemented by `GroupSemaphores`). */
export interface FleetLockService {
  /** Takes a slot of `group` for `id` (idempotent). */
  preReboot(group: string, id: string): Promise<SlotVerdict>;
  /** Releases the slot of `id` in `group` (idempotent). */
  steadyState(group: string, id: string): Promise<SlotVerdict>;
  /** Resolves when etcd answers a read; rejects otherwise. */
  ping(): Promise<void>;
}

/** What a request is counted under: the endpoint, or `other` for unknown paths. */
export type Route =
  | "pre-reboot"
  | "steady-state"
  | "healthy"
  | "metrics"
  | "other";

/** The result a request is counted under. */
export type RequestResult = SlotResult | "ok" | FleetLockErrorKind;

/** Receives one report per request (metrics). */
export interface RequestObserver {
  /** A request was answered. */
  request(route: Route, result: RequestResult, seconds: number): void;
}

/** Where the handler logs state changes and failures. */
export interface ServerLog {
  /** A slot taken or released, etcd back. */
  info(message: string): void;
  /** etcd unavailable, a contended key. */
  warn(message: string): void;
  /** A corrupt document or a bug. */
  error(message: string): void;
}

/** Options of {@link createFleetLockHandler}. */
export interface FleetLockHandlerOptions {
  /** The semaphores. */
  readonly service: FleetLockService;
  /** When set, the only groups served; others get `unknown_group`. */
  readonly allowedGroups?: ReadonlySet<string>;
  /** Tokens per group; absent or empty: no authorization. */
  readonly tokens?: GroupTokens;
  /** Time a request's body may take to arrive, in ms (default 10 s). */
  readonly readTimeoutMs?: number;
  /** The Prometheus exposition for `GET /metrics`; absent: 404. */
  readonly metrics?: () => Promise<{ contentType: string; body: string }>;
  /** Request reports. */
  readonly observer?: RequestObserver;
  /** Log (default: none). */
  readonly log?: ServerLog;
  /** Monotonic clock in ms. Default `performance.now`. */
  readonly now?: () => number;
}

/** Default of {@link FleetLockHandlerOptions.readTimeoutMs}. */
export const DEFAULT_READ_TIMEOUT_MS = 10_000;

const HEALTH_PATH = "/-/healthy";
const METRICS_PATH = "/metrics";

function routeOf(pathname: string, metrics: boolean): Route {
  const endpoint = endpointOf(pathname);
  if (endpoint !== undefined) return endpoint;
  if (pathname === HEALTH_PATH) return "healthy";
  if (pathname === METRICS_PATH && metrics) return "metrics";
  return "other";
}

const NO_STORE = { "cache-control": "no-store" };

function textResponse(body: string, headers: HeadersInit = {}): Response {
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      ...NO_STORE,
      ...headers,
    },
  });
}

function errorResponse(error: FleetLockError, route: Route): Response {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-content-type-options": "nosniff",
    ...NO_STORE,
  };
  if (error.kind === "method_not_allowed") {
    headers["allow"] = route === "healthy" || route === "metrics"
      ? "GET, HEAD"
      : "POST";
  }
  if (error.kind === "unauthorized") {
    headers["www-authenticate"] = 'Bearer realm="locksmith"';
  }
  return new Response(errorBody(error.kind, error.message), {
    status: error.status,
    headers,
  });
}

/** An id or group for a log line: as is when printable, else quoted and escaped. */
function shown(text: string): string {
  return isPrintable(text) && text.length <= 80 ? text : quote(text);
}

/**
 * Reads a body of at most `limit` bytes within `timeoutMs`. Throws
 * `payload_too_large` (a declared or actual size past the limit, before
 * reading further), `request_timeout`, or `bad_request` when the body
 * stream fails (the client went away).
 */
async function readBody(
  request: Request,
  limit: number,
  timeoutMs: number,
): Promise<Uint8Array> {
  const tooLarge = () =>
    new FleetLockError(
      "payload_too_large",
      `the body is larger than ${limit} bytes`,
    );
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge();
  if (request.body === null) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    while (true) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === "timeout") {
        throw new FleetLockError(
          "request_timeout",
          `the body did not arrive within ${formatDuration(timeoutMs)}`,
        );
      }
      if (next.done) break;
      size += next.value.length;
      if (size > limit) throw tooLarge();
      chunks.push(next.value);
    }
  } catch (error) {
    if (error instanceof FleetLockError) throw error;
    throw new FleetLockError("bad_request", "the body could not be read");
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}

/**
 * Creates the FleetLock handler: `POST /v1/pre-reboot`, `POST
 * /v1/steady-state`, `GET /-/healthy` (200 `ok` when etcd answers, else 503)
 * and, with {@link FleetLockHandlerOptions.metrics}, `GET /metrics`. Other
 * paths get 404 and other methods 405, both as FleetLock JSON errors.
 */
export function createFleetLockHandler(
  options: FleetLockHandlerOptions,
): (request: Request) => Promise<Response> {
  const { service, allowedGroups, tokens, log, observer } = options;
  const readTimeoutMs = options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  const now = options.now ?? (() => performance.now());
  let etcdDown = false;

  /** Turns what the service threw into the client's error; logs what the operator must know. */
  const failure = (error: unknown, group: string): FleetLockError => {
    if (error instanceof FleetLockError) return error;
    if (error instanceof ContentionError) {
      log?.warn(`group ${group}: ${oneLine(error)}`);
      return new FleetLockError(
        "etcd_unavailable",
        `the semaphore of group ${group} is being changed by too many other writers; retry later`,
      );
    }
    if (error instanceof EtcdUnavailableError) {
      if (!etcdDown) log?.warn(`group ${group}: ${oneLine(error)}`);
      etcdDown = true;
      return new FleetLockError(
        "etcd_unavailable",
        "etcd is unavailable: the reboot semaphore cannot be read or changed now; retry later",
      );
    }
    if (error instanceof CorruptDocumentError) {
      log?.error(oneLine(error));
      return new FleetLockError(
        "internal_error",
        `the stored semaphore of group ${group} is corrupt; an operator must repair it with locksmithctl`,
      );
    }
    log?.error(`unexpected error: ${oneLine(error)}`);
    return new FleetLockError(
      "internal_error",
      "internal error; see the server's log",
    );
  };

  const etcdAnswered = () => {
    if (etcdDown) log?.info("etcd answers again");
    etcdDown = false;
  };

  const fleetLock = async (
    endpoint: "pre-reboot" | "steady-state",
    request: Request,
  ): Promise<[Response, RequestResult]> => {
    checkProtocolHeader(request.headers.get(FLEETLOCK_HEADER));
    const { id, group } = parseClientParams(
      await readBody(request, MAX_BODY_BYTES, readTimeoutMs),
    );
    if (allowedGroups !== undefined && !allowedGroups.has(group)) {
      throw new FleetLockError(
        "unknown_group",
        `group ${quote(group, 40)} is not served here`,
      );
    }
    if (
      tokens !== undefined &&
      !tokens.allows(group, request.headers.get("authorization"))
    ) {
      throw new FleetLockError(
        "unauthorized",
        request.headers.has("authorization")
          ? `the token is not valid for group ${group}`
          : `group ${group} needs a token: send "Authorization: Bearer <token>"`,
      );
    }
    let verdict: SlotVerdict;
    try {
      verdict = endpoint === "pre-reboot"
        ? await service.preReboot(group, id)
        : await service.steadyState(group, id);
    } catch (error) {
      throw failure(error, group);
    }
    etcdAnswered();
    const { result, doc } = verdict;
    if (result === "paused") {
      throw new FleetLockError(
        "failed_lock_semaphore_full",
        `group ${group} is paused: no slot is given until 'locksmithctl${
          group === "default" ? "" : ` --group ${group}`
        } resume'`,
      );
    }
    if (result === "full") {
      throw new FleetLockError(
        "failed_lock_semaphore_full",
        doc.max === 0
          ? `group ${group} has 0 slots: reboots are paused`
          : `all ${doc.max} slot(s) of group ${group} are held; retry later`,
      );
    }
    const line = (who: string) =>
      successLine(group, who, result, doc.holders.length, doc.max);
    if (result === "locked" || result === "released") {
      log?.info(line(shown(id)));
    }
    return [textResponse(`${line(id)}\n`), result];
  };

  const dispatch = async (
    route: Route,
    request: Request,
    pathname: string,
  ): Promise<[Response, RequestResult]> => {
    if (route === "other") {
      throw new FleetLockError(
        "not_found",
        `no such path ${
          quote(pathname, 80)
        }; FleetLock clients POST to /v1/pre-reboot and /v1/steady-state (a base URL ending in /)`,
      );
    }
    const read = route === "healthy" || route === "metrics";
    const allowed = read
      ? request.method === "GET" || request.method === "HEAD"
      : request.method === "POST";
    if (!allowed) {
      throw new FleetLockError(
        "method_not_allowed",
        `${quote(request.method, 20)} is not allowed on ${pathname}; use ${
          read ? "GET" : "POST"
        }`,
      );
    }
    if (route === "healthy") {
      try {
        await service.ping();
      } catch (error) {
        throw failure(error, "default");
      }
      etcdAnswered();
      return [textResponse("ok\n"), "ok"];
    }
    if (route === "metrics") {
      const { contentType, body } = await (options.metrics as NonNullable<
        typeof options.metrics
      >)();
      return [textResponse(body, { "content-type": contentType }), "ok"];
    }
    return await fleetLock(route, request);
  };

  return async (request: Request): Promise<Response> => {
    const started = now();
    const pathname = new URL(request.url).pathname;
    const route = routeOf(pathname, options.metrics !== undefined);
    let response: Response;
    let result: RequestResult;
    try {
      [response, result] = await dispatch(route, request, pathname);
    } catch (error) {
      const refusal = failure(error, "?");
      response = errorResponse(refusal, route);
      result = refusal.kind;
    }
    observer?.request(route, result, (now() - started) / 1000);
    return response;
  };
}
