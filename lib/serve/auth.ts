/**
 * Bearer tokens per FleetLock group. A request names its group in the body;
 * when tokens are configured it must carry one of that group's tokens (or
 * of `*`, valid for every group) as `Authorization: Bearer <token>`, or as
 * the password of `Authorization: Basic` (what Zincati sends when its
 * `base_url` has `user:token@` in it). Tokens are compared in constant time.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import type { Buffer } from "node:buffer";

/** The group name whose tokens are valid for every group. */
export const ANY_GROUP = "*";

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/** The token a request carries, or `undefined` (absent or malformed header). */
export function tokenOf(authorization: string | null): string | undefined {
  if (authorization === null) return undefined;
  const match = /^\s*([A-Za-z]+) +(\S+)\s*$/.exec(authorization);
  if (match === null) return undefined;
  const scheme = (match[1] as string).toLowerCase();
  const credentials = match[2] as string;
  if (scheme === "bearer") return credentials;
  if (scheme !== "basic") return undefined;
  let decoded: string;
  try {
    decoded = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(credentials), (c) => c.charCodeAt(0)),
    );
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

/** The tokens of each group; see the module documentation. */
export class GroupTokens {
  readonly #digests = new Map<string, Buffer[]>();

  /**
   * Creates the table.
   *
   * @param tokens tokens by group name ({@link ANY_GROUP} for every group)
   */
  constructor(tokens: ReadonlyMap<string, readonly string[]>) {
    for (const [group, list] of tokens) {
      if (list.length > 0) this.#digests.set(group, list.map(digest));
    }
  }

  /** Whether any token is configured (else every request is allowed). */
  get enabled(): boolean {
    return this.#digests.size > 0;
  }

  /**
   * Whether a request for `group` with this `Authorization` header value is
   * allowed: always when no token is configured; else only with a token of
   * `group` or of {@link ANY_GROUP}.
   */
  allows(group: string, authorization: string | null): boolean {
    return this.#matches(authorization, [group, ANY_GROUP]);
  }

  /**
   * Whether a request with this `Authorization` header value carries a
   * token of any group: checked before the request's body (and so its
   * group) is looked at, so that a client without a token learns nothing
   * of the groups. Always true when no token is configured.
   */
  allowsSome(authorization: string | null): boolean {
    return this.#matches(authorization, [...this.#digests.keys()]);
  }

  #matches(authorization: string | null, groups: readonly string[]): boolean {
    if (!this.enabled) return true;
    const token = tokenOf(authorization);
    if (token === undefined) return false;
    const given = digest(token);
    let ok = false;
    for (const key of groups) {
      for (const expected of this.#digests.get(key) ?? []) {
        // No early exit: the time taken does not tell which token matched.
        if (timingSafeEqual(given, expected)) ok = true;
      }
    }
    return ok;
  }
}
