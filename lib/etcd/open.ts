/**
 * Opening etcd: the JSON gateway first (`fetch`, nothing heavy to load),
 * and the gRPC client only when the servers turn out to have no gateway
 * (`fallback_port.ts`), imported here by a literal specifier.
 *
 * @module
 */

import { semaphoreKey } from "../semaphore/keys.ts";
import { EtcdLockStore } from "./store/etcd_lock_store.ts";
import type { LockStore } from "../semaphore/lock_store.ts";
import { openFallbackPort } from "./fallback_port.ts";
import type { EtcdConnectionOptions } from "./client/etcd_options.ts";
import type { EtcdPort } from "./client/port.ts";

/**
 * Opens an {@link EtcdPort}: the JSON gateway, falling back to gRPC (loaded
 * only then) when the servers have no gateway. Reads the TLS files now, so
 * that a missing one is reported before any request.
 */
export function openEtcdPort(
  options: EtcdConnectionOptions,
): Promise<EtcdPort> {
  return openFallbackPort(options, () => import("./grpc/grpc.ts"));
}

/**
 * Connects to etcd and returns the {@link EtcdLockStore} of `group`'s
 * semaphore (the fleet-wide one when `group` is empty or absent), for the
 * programs, which also use its etcd port.
 */
export async function openEtcdStore(
  options: EtcdConnectionOptions,
  group?: string,
): Promise<EtcdLockStore> {
  return new EtcdLockStore(
    await openEtcdPort(options),
    semaphoreKey(group),
    options,
  );
}

/**
 * Connects to etcd and returns the store of `group`'s semaphore (the
 * fleet-wide one when `group` is empty or absent). Nothing is sent until
 * the first operation; TLS files are read now, and a missing one is a
 * `UsageError` naming it. Every operation has one deadline, `timeoutMs`;
 * with several endpoints, a member that does not answer is skipped.
 *
 * @example
 * ```ts
 * import { openEtcdLockStore, setMaxSlots } from "@locksmith/locksmith";
 *
 * const store = await openEtcdLockStore({
 *   endpoints: ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
 *   caFile: "/etc/ssl/etcd/ca.pem",
 *   username: "locksmith",
 *   password: "secret",
 *   timeoutMs: 5_000,
 * }, "database");
 * try {
 *   const { before, after } = await setMaxSlots(store, 2);
 *   console.log(`max ${before.max} -> ${after.max}`);
 * } finally {
 *   await store.close();
 * }
 * ```
 */
export async function openEtcdLockStore(
  options: EtcdConnectionOptions,
  group?: string,
): Promise<LockStore> {
  return await openEtcdStore(options, group);
}
