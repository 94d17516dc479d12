/**
 * The FleetLock HTTP handler: a function from `Request` to `Response`, so it
 * is tested without a socket. It routes, checks the method, then the token
 * (before anything of the body or the group is looked at: a client without
 * a token learns nothing), the header, body size and read time, validates
 * the body, the group's token and the group, applies the
 * call through a {@link FleetLockService}, and answers 200 with a line of
 * text, or `{"kind", "value"}` JSON with the kind's status. Nothing a client
 * sends yields a 500: that is kept for a corrupt stored document or a bug.
 *
 * @module
 */

import {
  ContentionError,
  CorruptDocumentError,
  DocumentLimitError,
  EtcdUnavailableError,
  isPrintable,
  oneLine,
  quote,
} from "../common/errors.ts";
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
import { readBody } from "./request_body.ts";

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
 * Maps what the service threw to the client's error and logs what the
 * operator must know; remembers whether etcd was down, so that an outage
 * is logged once and its end too.
 */
class Failures {
  readonly #log: ServerLog | undefined;
  #etcdDown = false;

  constructor(log: ServerLog | undefined) {
    this.#log = log;
  }

  /** The client's error for `error`, met on `group`. */
  of(error: unknown, group: string): FleetLockError {
    const log = this.#log;
    if (error instanceof FleetLockError) return error;
    if (error instanceof DocumentLimitError) {
      return new FleetLockError("failed_lock_semaphore_full", oneLine(error));
    }
    if (error instanceof ContentionError) {
      log?.warn(`group ${group}: ${oneLine(error)}`);
      return new FleetLockError(
        "etcd_unavailable",
        `the semaphore of group ${group} is being changed by too many other writers; retry later`,
      );
    }
    if (error instanceof EtcdUnavailableError) {
      if (!this.#etcdDown) log?.warn(`group ${group}: ${oneLine(error)}`);
      this.#etcdDown = true;
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
  }

  /** etcd answered a call. */
  answered(): void {
    if (this.#etcdDown) this.#log?.info("etcd answers again");
    this.#etcdDown = false;
  }
}

/** What a FleetLock call needs of the handler's options. */
interface CallContext {
  readonly service: FleetLockService;
  readonly allowedGroups: ReadonlySet<string> | undefined;
  readonly tokens: GroupTokens | undefined;
  readonly readTimeoutMs: number;
  readonly failures: Failures;
  readonly log: ServerLog | undefined;
}

/**
 * The token first, before the body and the group are looked at: a request
 * without a token of any group is refused `unauthorized` as it comes, so a
 * client without a token learns nothing of which groups exist.
 */
function checkSomeToken(tokens: GroupTokens | undefined, request: Request) {
  const authorization = request.headers.get("authorization");
  if (tokens === undefined || tokens.allowsSome(authorization)) return;
  throw new FleetLockError(
    "unauthorized",
    authorization === null
      ? `this server needs a token: send "Authorization: Bearer <token>"`
      : "the token is not valid here",
  );
}

/** The group's own check, once the body was read: its token, then whether it is served. */
function checkGroup(context: CallContext, group: string, request: Request) {
  const { tokens, allowedGroups } = context;
  if (
    tokens !== undefined &&
    !tokens.allows(group, request.headers.get("authorization"))
  ) {
    throw new FleetLockError(
      "unauthorized",
      `the token is not valid for group ${group}`,
    );
  }
  if (allowedGroups !== undefined && !allowedGroups.has(group)) {
    throw new FleetLockError(
      "unknown_group",
      `group ${quote(group, 40)} is not served here`,
    );
  }
}

/** The refusal of a `paused` or `full` verdict, with the line the client logs. */
function refusalOf(group: string, verdict: SlotVerdict): FleetLockError {
  const { result, doc, limit } = verdict;
  if (result === "paused") {
    return new FleetLockError(
      "failed_lock_semaphore_full",
      `group ${group} is paused: no slot is given until 'locksmithctl${
        group === "default" ? "" : ` --group ${group}`
      } resume'`,
    );
  }
  return new FleetLockError(
    "failed_lock_semaphore_full",
    limit !== undefined
      ? `group ${group} cannot list another holder: its stored document would break a limit every reader enforces (${limit}); retry after a holder releases`
      : doc.max === 0
      ? `group ${group} has 0 slots: reboots are paused`
      : `all ${doc.max} slot(s) of group ${group} are held; retry later`,
  );
}

/**
 * `POST /v1/pre-reboot` or `/v1/steady-state`: the token, the protocol
 * header, the body, the group, then the call through the service.
 */
async function slotCall(
  context: CallContext,
  endpoint: "pre-reboot" | "steady-state",
  request: Request,
): Promise<[Response, RequestResult]> {
  const { service, failures, log } = context;
  checkSomeToken(context.tokens, request);
  checkProtocolHeader(request.headers.get(FLEETLOCK_HEADER));
  const { id, group } = parseClientParams(
    await readBody(request, MAX_BODY_BYTES, context.readTimeoutMs),
  );
  checkGroup(context, group, request);
  let verdict: SlotVerdict;
  try {
    verdict = endpoint === "pre-reboot"
      ? await service.preReboot(group, id)
      : await service.steadyState(group, id);
  } catch (error) {
    throw failures.of(error, group);
  }
  failures.answered();
  const { result, doc } = verdict;
  if (result === "paused" || result === "full") {
    throw refusalOf(group, verdict);
  }
  const line = (who: string) =>
    successLine(group, who, result, doc.holders.length, doc.max);
  if (result === "locked" || result === "released") {
    log?.info(line(shown(id)));
  }
  return [textResponse(`${line(id)}\n`), result];
}

/** 405 unless `request`'s method is one `route` serves. */
function checkMethod(route: Route, request: Request, pathname: string): void {
  const read = route === "healthy" || route === "metrics";
  const allowed = read
    ? request.method === "GET" || request.method === "HEAD"
    : request.method === "POST";
  if (allowed) return;
  throw new FleetLockError(
    "method_not_allowed",
    `${quote(request.method, 20)} is not allowed on ${pathname}; use ${
      read ? "GET" : "POST"
    }`,
  );
}

/**
 * Creates the FleetLock handler: `POST /v1/pre-reboot`, `POST
 * /v1/steady-state`, `GET /-/healthy` (200 `ok` when etcd answers, else 503)
 * and, with {@link FleetLockHandlerOptions.metrics}, `GET /metrics`. Other
 * paths get 404 and other methods 405, both as FleetLock JSON errors. With
 * tokens, a call without a valid one gets 401 before its body is read.
 */
export function createFleetLockHandler(
  options: FleetLockHandlerOptions,
): (request: Request) => Promise<Response> {
  const { service, observer, metrics } = options;
  const now = options.now ?? (() => performance.now());
  const failures = new Failures(options.log);
  const context: CallContext = {
    service,
    allowedGroups: options.allowedGroups,
    tokens: options.tokens,
    readTimeoutMs: options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS,
    failures,
    log: options.log,
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
    checkMethod(route, request, pathname);
    if (route === "healthy") {
      try {
        await service.ping();
      } catch (error) {
        throw failures.of(error, "default");
      }
      failures.answered();
      return [textResponse("ok\n"), "ok"];
    }
    if (route === "metrics") {
      // routeOf gives "metrics" only when they are served.
      const { contentType, body } = await (metrics as NonNullable<
        typeof metrics
      >)();
      return [textResponse(body, { "content-type": contentType }), "ok"];
    }
    return await slotCall(context, route, request);
  };

  return async (request: Request): Promise<Response> => {
    const started = now();
    const pathname = new URL(request.url).pathname;
    const route = routeOf(pathname, metrics !== undefined);
    let response: Response;
    let result: RequestResult;
    try {
      [response, result] = await dispatch(route, request, pathname);
    } catch (error) {
      const refusal = failures.of(error, "?");
      response = errorResponse(refusal, route);
      result = refusal.kind;
    }
    observer?.request(route, result, (now() - started) / 1000);
    return response;
  };
}
