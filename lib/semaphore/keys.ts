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
