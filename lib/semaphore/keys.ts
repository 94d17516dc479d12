/**
 * etcd keys of the reboot semaphore.
 *
 * @module
 */

/** Key of the default group's semaphore (etcd v3 keyspace, no leading slash). */
export const DEFAULT_SEMAPHORE_KEY =
  "coreos.com/updateengine/rebootlock/semaphore";

/** Prefix of every semaphore key, the default one and those of groups. */
export const SEMAPHORES_PREFIX = "coreos.com/updateengine/rebootlock/";

const GROUPS_PREFIX = `${SEMAPHORES_PREFIX}groups/`;

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
 * `<key>/alive/<id>` (a holder's lease-bound liveness key),
 * `<key>/waiters/<id>` (the wait queue), with ids escaped as in
 * {@link queryEscape}; `<key>/paused` and `<key>/settings` (one each).
 */
export const HOLDERS_DIR = "/holders/";

/** See {@link HOLDERS_DIR}. */
export const WAITERS_DIR = "/waiters/";

/** See {@link HOLDERS_DIR}. */
export const ALIVE_DIR = "/alive/";

/** Prefix of the holder records under the semaphore at `key`. */
export function holdersPrefix(key: string): string {
  return `${key}${HOLDERS_DIR}`;
}

/** Prefix of the holders' alive keys under the semaphore at `key`. */
export function alivePrefix(key: string): string {
  return `${key}${ALIVE_DIR}`;
}

/**
 * Key of the alive key of `id` under the semaphore at `key`: attached to
 * the holder's lease, so it disappears when the holder stops renewing.
 */
export function aliveKey(key: string, id: string): string {
  return `${alivePrefix(key)}${queryEscape(id)}`;
}

/** Key whose existence pauses the semaphore at `key` (no new slot is taken). */
export function pausedKey(key: string): string {
  return `${key}/paused`;
}

/** Key of the settings stored with the semaphore at `key` (the slot TTL). */
export function settingsKey(key: string): string {
  return `${key}/settings`;
}

/**
 * The group whose semaphore is at `key`: `""` for the default key, the
 * unescaped group for `.../groups/<escaped>/semaphore`, `undefined` for
 * any other key (a companion key, or one no client of locksmith writes).
 */
export function groupOfKey(key: string): string | undefined {
  if (key === DEFAULT_SEMAPHORE_KEY) return "";
  if (!key.startsWith(GROUPS_PREFIX) || !key.endsWith("/semaphore")) {
    return undefined;
  }
  const escaped = key.slice(GROUPS_PREFIX.length, -"/semaphore".length);
  if (escaped === "") return undefined;
  const group = idOfCompanionKey("", escaped);
  return group === undefined || group === "" ? undefined : group;
}

/** The semaphore key of any key under the semaphores' prefix (itself or a companion key), or `undefined`. */
export function semaphoreKeyOf(key: string): string | undefined {
  if (
    key === DEFAULT_SEMAPHORE_KEY || key.startsWith(`${DEFAULT_SEMAPHORE_KEY}/`)
  ) {
    return DEFAULT_SEMAPHORE_KEY;
  }
  const match =
    /^coreos\.com\/updateengine\/rebootlock\/groups\/([^/]+)\/semaphore(?:\/|$)/
      .exec(key);
  return match ? `${GROUPS_PREFIX}${match[1]}/semaphore` : undefined;
}

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
