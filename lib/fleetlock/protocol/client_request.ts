/**
 * What locksmithd's FleetLock client sends and how it reads the answers,
 * exactly as Zincati (Fedora CoreOS's update agent) does, as pure functions:
 *
 * - **Where**: `v1/pre-reboot` and `v1/steady-state` are resolved against
 *   the base URL by WHATWG relative-URL rules (`new URL("v1/pre-reboot",
 *   base)`, what Zincati's `Url::join` does): unless the base path ends in
 *   `/`, its last segment is replaced (`http://h/base` gives
 *   `http://h/v1/pre-reboot`, `http://h/base/` gives
 *   `http://h/base/v1/pre-reboot`); a query and a fragment are dropped.
 *   The base's `user:password@` is not part of the request URL: it is sent
 *   as `Authorization: Basic` (as Zincati's HTTP client does).
 * - **What**: `POST` with the header `fleet-lock-protocol: true`, no
 *   `Content-Type`, and the body pretty-printed with a two-space indent,
 *   `id` before `group`, no trailing newline.
 * - **Answers**: any 2xx is success; otherwise the body is read as
 *   `{"kind", "value"}` (no `Content-Type` check, extra fields ignored), and
 *   a body that is not is kind `generic_http_<status>`, as Zincati counts it.
 * - **Whether the server is up** (not part of FleetLock): any answer of its
 *   own says so; a 502, 503 or 504 without a FleetLock body is a gateway
 *   answering for a server that is not. After no answer, locksmithd asks
 *   `GET -/healthy` (resolved like the endpoints; locksmith's server and
 *   poseidon/fleetlock serve it, others answer 404) until the server answers.
 *
 * @module
 */

import { quote } from "../../common/errors.ts";
import type { LockServerGrant } from "../../semaphore/lock_server.ts";
import {
  FLEETLOCK_HEADER,
  type FleetLockEndpoint,
  parseSuccessLine,
  TOKEN_PATTERN,
} from "./protocol.ts";

/** Default limit of each request: 30 s. */
export const DEFAULT_FLEETLOCK_TIMEOUT_MS = 30_000;

/** What a bearer token must look like: the server's {@link TOKEN_PATTERN}, RFC 6750's `b64token`. */
export const BEARER_TOKEN_PATTERN: RegExp = TOKEN_PATTERN;

/** The relative reference of each endpoint, resolved against the base URL. */
export const ENDPOINT_REFERENCES: Readonly<Record<FleetLockEndpoint, string>> =
  Object.freeze({
    "pre-reboot": "v1/pre-reboot",
    "steady-state": "v1/steady-state",
  });

/**
 * What locksmithd asks to learn whether the server answers again (see the
 * module documentation), resolved against the base URL as the endpoints are.
 */
export const PROBE_REFERENCE = "-/healthy";

/** Credentials sent with every request. */
export type FleetLockAuth =
  | {
    /** `Authorization: Bearer <token>` (locksmith's server with `--token`). */
    readonly bearer: string;
  }
  | {
    /** `Authorization: Basic` user (from the base URL's userinfo). */
    readonly user: string;
    /** `Authorization: Basic` password (locksmith's server takes it as the token). */
    readonly password: string;
  };

/** A base URL resolved for requests. */
export interface ResolvedBase {
  /** The base as it may be shown: without its userinfo. */
  readonly shown: string;
  /** Where each endpoint is POSTed, without userinfo. */
  readonly urls: Readonly<Record<FleetLockEndpoint, string>>;
  /** Where {@link PROBE_REFERENCE} is asked, without userinfo. */
  readonly probeUrl: string;
  /** The base's userinfo as Basic credentials, percent-decoded; `undefined` without one. */
  readonly basic:
    | { readonly user: string; readonly password: string }
    | undefined;
  /** One line per surprise: a last path segment that is replaced, a query or fragment dropped. */
  readonly warnings: readonly string[];
}

/** The URL without its userinfo, for requests and messages. */
function withoutUserinfo(url: URL): URL {
  const copy = new URL(url.href);
  copy.username = "";
  copy.password = "";
  return copy;
}

function decodeUserinfo(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Resolves a FleetLock base URL (`http://` or `https://`, already checked)
 * as Zincati does; see the module documentation. Throws a `TypeError` for
 * a text that is not a URL.
 *
 * @example A base without a trailing slash loses its last segment
 * ```ts
 * import { resolveBaseUrl } from "./client_request.ts";
 * resolveBaseUrl("http://h:8080/fleetlock").urls["pre-reboot"];
 * // "http://h:8080/v1/pre-reboot" (and a warning)
 * ```
 */
export function resolveBaseUrl(base: string): ResolvedBase {
  const url = new URL(base);
  const shown = withoutUserinfo(url);
  const urls = {
    "pre-reboot": withoutUserinfo(
      new URL(ENDPOINT_REFERENCES["pre-reboot"], url),
    ).href,
    "steady-state": withoutUserinfo(
      new URL(ENDPOINT_REFERENCES["steady-state"], url),
    ).href,
  };
  const probeUrl = withoutUserinfo(new URL(PROBE_REFERENCE, url)).href;
  const warnings: string[] = [];
  if (!url.pathname.endsWith("/")) {
    const segment = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
    warnings.push(
      `LOCKSMITHD_FLEETLOCK_URL ${
        quote(shown.href)
      } does not end in "/": its last path segment ${
        quote(decodeUserinfo(segment))
      } is replaced, so requests go to ${
        urls["pre-reboot"]
      } (Zincati resolves it the same way); end it with "/" to keep the segment`,
    );
  }
  if (url.search !== "" || url.hash !== "") {
    warnings.push(
      `LOCKSMITHD_FLEETLOCK_URL ${
        quote(shown.href)
      } has a query or fragment, which is dropped: requests go to ${
        urls["pre-reboot"]
      }`,
    );
  }
  const basic = url.username === "" && url.password === "" ? undefined : {
    user: decodeUserinfo(url.username),
    password: decodeUserinfo(url.password),
  };
  return { shown: shown.href, urls, probeUrl, basic, warnings };
}

/**
 * The request body, byte for byte what Zincati sends (serde_json's pretty
 * printer): two-space indent, `id` before `group`, no trailing newline.
 */
export function requestBody(id: string, group: string): string {
  return JSON.stringify({ client_params: { id, group } }, null, 2);
}

/** Base64 of the UTF-8 bytes of `text`. */
function base64(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary);
}

/** The `Authorization` header value of `auth`. */
export function authorizationOf(auth: FleetLockAuth): string {
  return "bearer" in auth
    ? `Bearer ${auth.bearer}`
    : `Basic ${base64(`${auth.user}:${auth.password}`)}`;
}

/**
 * The headers of a request: `fleet-lock-protocol: true`, the credentials
 * when there are some, and `user-agent`. No `Content-Type`: the body is
 * sent as bytes, as Zincati sends it.
 */
export function requestHeaders(
  auth: FleetLockAuth | undefined,
  userAgent: string,
): Record<string, string> {
  return {
    [FLEETLOCK_HEADER]: "true",
    "user-agent": userAgent,
    ...(auth === undefined ? {} : { authorization: authorizationOf(auth) }),
  };
}

/** The kinds that mean "every slot is held: ask again later" (ours, airlock's, poseidon/fleetlock's). */
export const FULL_KINDS: ReadonlySet<string> = new Set([
  "failed_lock_semaphore_full",
  "failed_lock",
  "lock_held",
]);

/** A FleetLock error body, as Zincati reads it. */
export interface ErrorBody {
  /** Machine-readable kind, or `generic_http_<status>` when the body did not say. */
  readonly kind: string;
  /** The server's text, when it sent one. */
  readonly value: string | undefined;
}

/**
 * Reads a non-2xx body as `{"kind": string, "value": string}` (extra
 * fields ignored, no `Content-Type` check); anything else is kind
 * `generic_http_<status>`.
 */
export function parseErrorBody(status: number, text: string): ErrorBody {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "object" && value !== null) {
      const { kind, value: said } = value as Record<string, unknown>;
      if (typeof kind === "string" && typeof said === "string") {
        return { kind, value: said };
      }
    }
  } catch {
    // Not JSON: counted as Zincati counts it.
  }
  return { kind: `generic_http_${status}`, value: undefined };
}

/** The statuses a gateway (a proxy, a load balancer) answers with for a server behind it that does not answer. */
export const GATEWAY_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);

/**
 * Whether an HTTP answer with `status` and `body` (as {@link parseErrorBody}
 * read it) came from the server itself, i.e. the server is up: anything but
 * a 502, 503 or 504 without a FleetLock body, which is a gateway answering
 * for a server that does not. A FleetLock body is the server's own, also
 * with those statuses (locksmith's 503 `etcd_unavailable`).
 *
 * @example
 * ```ts
 * import { answeredByServer, parseErrorBody } from "./client_request.ts";
 * answeredByServer(409, parseErrorBody(409, "")); // true: the server refused
 * answeredByServer(502, parseErrorBody(502, "<html>Bad Gateway</html>")); // false
 * ```
 */
export function answeredByServer(status: number, body: ErrorBody): boolean {
  return !GATEWAY_STATUSES.has(status) || body.value !== undefined;
}

/** Whether a refusal means that every slot is held: the kinds of {@link FULL_KINDS}, or 409 and 423. */
export function isFull(status: number, kind: string): boolean {
  return FULL_KINDS.has(kind) || status === 409 || status === 423;
}

/**
 * Reads a 2xx answer. Any 2xx is success whatever the body; locksmith's
 * server also says what it did (`group web: <id> took a slot (1/2 held)`),
 * which is read for the log, never needed.
 */
export function readGrant(status: number, text: string): LockServerGrant {
  const said = parseSuccessLine(text);
  return said === undefined
    ? { ok: true, status }
    : { ok: true, status, ...said };
}

/**
 * One line for a refusal: `FleetLock server http://h/v1/pre-reboot
 * answered 409 failed_lock_semaphore_full: "all 2 slot(s) ..."`. The
 * server's words are quoted and cut: a hostile server cannot break the line.
 */
export function describeRefusal(
  url: string,
  status: number,
  body: ErrorBody,
): string {
  const kind = /^[A-Za-z0-9_.:-]{1,80}$/.test(body.kind)
    ? body.kind
    : quote(body.kind, 80);
  return `FleetLock server ${url} answered ${status} ${kind}${
    body.value === undefined ? "" : `: ${quote(body.value, 200)}`
  }`;
}
