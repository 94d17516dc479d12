/**
 * etcd keys of the reboot semaphore.
 *
 * @module
 */

/** Key of the default group's semaphore (etcd v3 keyspace, no leading slash). */
export const DEFAULT_SEMAPHORE_KEY =
  "coreos.com/updateengine/rebootlock/semaphore";

const GROUPS_PREFIX = "coreos.com/updateengine/rebootlock/groups/";

/**
 * Returns the semaphore key of `group`: the default key for an empty or absent
 * group, else `coreos.com/updateengine/rebootlock/groups/<urlencoded group>/semaphore`.
 *
 * @example
 * ```ts
 * import { semaphoreKey } from "./keys.ts";
 * semaphoreKey("prod/database");
 * // "coreos.com/updateengine/rebootlock/groups/prod%2Fdatabase/semaphore"
 * ```
 */
export function semaphoreKey(group?: string): string {
  if (group === undefined || group === "") return DEFAULT_SEMAPHORE_KEY;
  return `${GROUPS_PREFIX}${queryEscape(group)}/semaphore`;
}

/**
 * Escapes `text` exactly as Go's `url.QueryEscape`, which the original
 * locksmith used for group names, so both find the same key: letters, digits
 * and `-_.~` stay, a space becomes `+`, every other byte becomes `%XX`.
 */
export function queryEscape(text: string): string {
  return encodeURIComponent(text)
    .replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    )
    .replace(/%20/g, "+");
}

/**
 * Companion keys live under `<semaphore key>/`, so that the document keeps
 * the original's format: `<key>/holders/<id>` (holder records),
 * `<key>/waiters/<id>` (the wait queue), with ids escaped as in
 * {@link queryEscape}.
 */
export const HOLDERS_DIR = "/holders/";

/** See {@link HOLDERS_DIR}. */
export const WAITERS_DIR = "/waiters/";

/** Key of the holder record of `id` under the semaphore at `key`. */
export function holderRecordKey(key: string, id: string): string {
  return `${key}${HOLDERS_DIR}${queryEscape(id)}`;
}

/** Prefix of the wait queue's keys under the semaphore at `key`. */
export function waitersPrefix(key: string): string {
  return `${key}${WAITERS_DIR}`;
}

/** Key of the wait-queue entry of `id` under the semaphore at `key`. */
export function waiterKey(key: string, id: string): string {
  return `${waitersPrefix(key)}${queryEscape(id)}`;
}

/**
 * The id a companion key under `prefix` names, or `undefined` when the rest
 * of the key is not the escaped form of an id (a key that no client of
 * locksmith writes).
 */
export function idOfCompanionKey(
  prefix: string,
  key: string,
): string | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const escaped = key.slice(prefix.length);
  let id: string;
  try {
    id = decodeURIComponent(escaped.replaceAll("+", " "));
  } catch {
    return undefined;
  }
  return queryEscape(id) === escaped ? id : undefined;
}
