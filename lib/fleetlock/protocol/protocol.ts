/**
 * The FleetLock protocol (the one Fedora CoreOS's Zincati speaks), pure:
 * endpoints, request validation, error kinds with their status codes and
 * JSON bodies, and the mapping of FleetLock groups to semaphore keys.
 *
 * A request is `POST /v1/pre-reboot` (take a slot) or `POST
 * /v1/steady-state` (release it) with the header `fleet-lock-protocol: true`
 * and the body `{"client_params": {"id": "<id>", "group": "<group>"}}`.
 * Success is any 2xx; a failure is a 4xx/5xx with `{"kind", "value"}`.
 *
 * @module
 */

import { quote } from "../../common/errors.ts";
import { idDefect, MAX_ID_BYTES } from "../../common/machine_id.ts";
import { DEFAULT_SEMAPHORE_KEY, semaphoreKey } from "../../semaphore/keys.ts";
import type { LockServerResult } from "../../semaphore/lock_server.ts";

/** The two FleetLock endpoints. */
export type FleetLockEndpoint = "pre-reboot" | "steady-state";

/** Path of each endpoint (relative to the server's root). */
export const FLEETLOCK_PATHS: Readonly<Record<FleetLockEndpoint, string>> =
  Object.freeze({
    "pre-reboot": "/v1/pre-reboot",
    "steady-state": "/v1/steady-state",
  });

/** The header every FleetLock request carries, with the value `true`. */
export const FLEETLOCK_HEADER = "fleet-lock-protocol";

/** The group Zincati uses unless configured otherwise; it maps to the default semaphore key. */
export const DEFAULT_FLEETLOCK_GROUP = "default";

/** What a group name must match (the protocol's rule). */
export const FLEETLOCK_GROUP_PATTERN: RegExp = /^[a-zA-Z0-9.-]+$/;

/** Longest accepted group name, in bytes (the same limit as holder ids). */
export const MAX_GROUP_BYTES: number = MAX_ID_BYTES;

/**
 * What a token must look like, on the server (`--token`) and in the client
 * (`LOCKSMITHD_FLEETLOCK_TOKEN`): RFC 6750's `b64token`.
 */
export const TOKEN_PATTERN: RegExp = /^[A-Za-z0-9\-._~+/]+=*$/;

/** Largest accepted request body: 64 KiB (Zincati sends about 100 bytes). */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * A FleetLock error kind, sent as `kind`. The set is small and stable:
 * clients use `kind` as a metrics label.
 *
 * - `bad_request` (400): missing or wrong `fleet-lock-protocol` header, malformed body
 * - `unauthorized` (401): tokens are set and the request carries none of
 *   any group (checked first, before the header, the body and the group), or
 *   none of its own group (or `*`)
 * - `unknown_group` (403): the server serves a fixed list of groups, not this one
 * - `not_found` (404): no such path (a wrong base URL)
 * - `method_not_allowed` (405): a method the path does not serve
 * - `request_timeout` (408): the body did not arrive within the read timeout
 * - `failed_lock_semaphore_full` (409): pre-reboot, every slot is held by
 *   others, or one more holder would break a limit of the stored document
 *   (its size in bytes, its number of holders)
 * - `payload_too_large` (413): the body is larger than {@link MAX_BODY_BYTES}
 * - `internal_error` (500): the stored semaphore is corrupt, or a bug
 * - `etcd_unavailable` (503): etcd did not answer in time, or the key was too
 *   contended to change
 */
export type FleetLockErrorKind =
  | "bad_request"
  | "unauthorized"
  | "unknown_group"
  | "not_found"
  | "method_not_allowed"
  | "request_timeout"
  | "failed_lock_semaphore_full"
  | "payload_too_large"
  | "internal_error"
  | "etcd_unavailable";

/** The HTTP status of every {@link FleetLockErrorKind}. */
export const FLEETLOCK_ERROR_STATUS: Readonly<
  Record<FleetLockErrorKind, number>
> = Object.freeze({
  bad_request: 400,
  unauthorized: 401,
  unknown_group: 403,
  not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  failed_lock_semaphore_full: 409,
  payload_too_large: 413,
  internal_error: 500,
  etcd_unavailable: 503,
});

/** Every error kind, in the order of {@link FLEETLOCK_ERROR_STATUS}. */
export const FLEETLOCK_ERROR_KINDS: readonly FleetLockErrorKind[] = Object
  .freeze(Object.keys(FLEETLOCK_ERROR_STATUS) as FleetLockErrorKind[]);

/** A request the server refuses: a kind, its status, and one line of text for the client's log. */
export class FleetLockError extends Error {
  /** Machine-readable kind, sent as `kind`. */
  readonly kind: FleetLockErrorKind;
  /** HTTP status of the kind. */
  readonly status: number;
  /**
   * Creates a `FleetLockError`.
   *
   * @param kind the error kind
   * @param message one line for the client, sent as `value`
   */
  constructor(kind: FleetLockErrorKind, message: string) {
    super(message);
    this.name = "FleetLockError";
    this.kind = kind;
    this.status = FLEETLOCK_ERROR_STATUS[kind];
  }
}

/** The JSON body of an error response: `{"kind": ..., "value": ...}`. */
export function errorBody(kind: FleetLockErrorKind, value: string): string {
  return JSON.stringify({ kind, value });
}

/** What each successful call did, as locksmith's server says it (the client reads it back). */
const SUCCESS_TEXT: Readonly<Record<LockServerResult, string>> = {
  locked: "took a slot",
  already_held: "already holds a slot",
  released: "released its slot",
  not_held: "holds no slot (nothing to release)",
};

/**
 * How locksmith's server reports a successful call (its text answer, and
 * its log line), without the final newline:
 * `group web: <id> took a slot (1/2 held)`.
 */
export function successLine(
  group: string,
  id: string,
  result: LockServerResult,
  held: number,
  max: number,
): string {
  return `group ${group}: ${id} ${SUCCESS_TEXT[result]} (${held}/${max} held)`;
}

const SUCCESS_LINE = /^group [a-zA-Z0-9.-]+: (.*) \((\d+)\/(\d+) held\)\n?$/s;

/** Reads a {@link successLine} (with or without its newline) back; `undefined` for any other text. */
export function parseSuccessLine(
  text: string,
): { result: LockServerResult; held: number; max: number } | undefined {
  const match = SUCCESS_LINE.exec(text);
  if (match === null) return undefined;
  const said = match[1] as string;
  const result = (Object.keys(SUCCESS_TEXT) as LockServerResult[]).find((r) =>
    said.endsWith(` ${SUCCESS_TEXT[r]}`)
  );
  return result === undefined
    ? undefined
    : { result, held: Number(match[2]), max: Number(match[3]) };
}

/** The identity a FleetLock client sends. */
export interface ClientParams {
  /** The holder id (Zincati: 32 lowercase hex characters); case-sensitive. */
  readonly id: string;
  /** The reboot group, matching {@link FLEETLOCK_GROUP_PATTERN}. */
  readonly group: string;
}

/** The endpoint served at `pathname`, or `undefined` for any other path. */
export function endpointOf(pathname: string): FleetLockEndpoint | undefined {
  if (pathname === FLEETLOCK_PATHS["pre-reboot"]) return "pre-reboot";
  if (pathname === FLEETLOCK_PATHS["steady-state"]) return "steady-state";
  return undefined;
}

/**
 * Checks the value of the `fleet-lock-protocol` header (`null` when
 * absent). It must be exactly `true`, given once (a repeated header arrives
 * joined as `true, true`). Throws a `bad_request` {@link FleetLockError}.
 */
export function checkProtocolHeader(value: string | null): void {
  if (value === null) {
    throw new FleetLockError(
      "bad_request",
      `missing header "${FLEETLOCK_HEADER}: true"`,
    );
  }
  if (value.trim() !== "true") {
    throw new FleetLockError(
      "bad_request",
      `header ${FLEETLOCK_HEADER} is ${
        quote(value, 40)
      }, expected "true" given once`,
    );
  }
}

/** What is wrong with a group name, or `undefined` when it is acceptable. */
export function groupDefect(group: unknown): string | undefined {
  if (typeof group !== "string") return "is not a string";
  if (group.length === 0) return "is empty";
  if (group.length > MAX_GROUP_BYTES) {
    return `is longer than ${MAX_GROUP_BYTES} bytes`;
  }
  if (!FLEETLOCK_GROUP_PATTERN.test(group)) {
    return `${
      quote(group, 40)
    } does not match ${FLEETLOCK_GROUP_PATTERN.source}`;
  }
  return undefined;
}

const EXPECTED = `expected {"client_params": {"id": "...", "group": "..."}}`;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function field(
  object: Record<string, unknown>,
  name: string,
): unknown {
  return Object.hasOwn(object, name) ? object[name] : undefined;
}

/**
 * Parses and validates a request body (bytes as received, or text):
 * strict UTF-8, JSON, an object with an object `client_params` holding a
 * valid `id` (non-empty, no control characters, at most 256 bytes) and a
 * `group` matching {@link FLEETLOCK_GROUP_PATTERN}. Key order, whitespace
 * and extra fields do not matter. Throws a `bad_request`
 * {@link FleetLockError} naming the field at fault.
 *
 * @example Zincati's body
 * ```ts
 * import { parseClientParams } from "./protocol.ts";
 * parseClientParams('{\n  "client_params": {\n    "id": "975228d46dc94622b9bbe16671e2b58d",\n    "group": "default"\n  }\n}');
 * // { id: "975228d46dc94622b9bbe16671e2b58d", group: "default" }
 * ```
 */
export function parseClientParams(body: Uint8Array | string): ClientParams {
  const bad = (message: string) => new FleetLockError("bad_request", message);
  let text: string;
  if (typeof body === "string") {
    text = body;
  } else {
    try {
      text = strictUtf8.decode(body);
    } catch {
      throw bad("body is not valid UTF-8");
    }
  }
  if (text.trim() === "") throw bad(`body is empty; ${EXPECTED}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad(`body is not valid JSON; ${EXPECTED}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad(`body is ${describe(value)}, not a JSON object; ${EXPECTED}`);
  }
  const params = field(value as Record<string, unknown>, "client_params");
  if (params === undefined) {
    throw bad(`body has no "client_params"; ${EXPECTED}`);
  }
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw bad(`"client_params" is ${describe(params)}, not an object`);
  }
  const record = params as Record<string, unknown>;
  /** The string field `name` of `client_params`, which `defectOf` accepts. */
  const checked = (
    name: keyof ClientParams,
    defectOf: (value: unknown) => string | undefined,
  ): string => {
    const value = field(record, name);
    if (value === undefined) throw bad(`"client_params" has no "${name}"`);
    const defect = defectOf(value);
    if (defect !== undefined) {
      throw bad(
        `client_params.${name} ${
          typeof value === "string"
            ? defect
            : `is ${describe(value)}, not a string`
        }`,
      );
    }
    return value as string;
  };
  return { id: checked("id", idDefect), group: checked("group", groupDefect) };
}

/**
 * The locksmith group of a FleetLock group: `undefined` (the default
 * semaphore, the one locksmithd uses without `LOCKSMITHD_GROUP`) for
 * `default`, else the group itself.
 */
export function semaphoreGroupOf(group: string): string | undefined {
  return group === DEFAULT_FLEETLOCK_GROUP ? undefined : group;
}

/**
 * The etcd key of a FleetLock group's semaphore: the default key for
 * `default`, else `semaphoreKey(group)`.
 */
export function fleetLockKey(group: string): string {
  const locksmithGroup = semaphoreGroupOf(group);
  return locksmithGroup === undefined
    ? DEFAULT_SEMAPHORE_KEY
    : semaphoreKey(locksmithGroup);
}
