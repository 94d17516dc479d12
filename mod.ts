/**
 * locksmith: a reboot manager for fleets of Linux machines.
 *
 * Machines that must reboot after an OS update take a slot of a counting
 * semaphore stored in etcd, reboot, and release the slot after boot, so that
 * no more than `max` machines reboot at once. This module is the library
 * behind `locksmithctl` and `locksmithd`: the pure semaphore, its
 * compare-and-swap store over etcd v3, reboot windows and configuration.
 *
 * @example Take and release a slot
 * ```ts
 * import { connectEtcd, EtcdLockStore, lockSlot, semaphoreKey, unlockSlot } from "@locksmith/locksmith";
 *
 * const options = { endpoints: ["http://127.0.0.1:2379"], timeoutMs: 5_000 };
 * const store = new EtcdLockStore(await connectEtcd(options), semaphoreKey(), options);
 * try {
 *   await lockSlot(store, "69d27b356a94476da859461d3a3bc6fd");
 *   // ... reboot ...
 *   await unlockSlot(store, "69d27b356a94476da859461d3a3bc6fd");
 * } finally {
 *   await store.close();
 * }
 * ```
 *
 * @module
 */

export {
  compareIds,
  formatSemaphore,
  INITIAL_SEMAPHORE,
  isHolder,
  lock,
  MAX_DOCUMENT_BYTES,
  MAX_HOLDERS,
  MAX_SLOTS,
  parseSemaphore,
  type Semaphore,
  setMax,
  unlock,
} from "./lib/semaphore.ts";
export {
  DEFAULT_SEMAPHORE_KEY,
  queryEscape,
  semaphoreKey,
} from "./lib/keys.ts";
export {
  ContentionError,
  CorruptDocumentError,
  EtcdUnavailableError,
  exitCodeOf,
  oneLine,
  type SemaphoreRefusal,
  SemaphoreRefusedError,
  UsageError,
} from "./lib/errors.ts";
export { formatDuration, parseDuration } from "./lib/duration.ts";
export {
  idDefect,
  MACHINE_ID_PATH,
  MAX_ID_BYTES,
  readMachineId,
  validateId,
} from "./lib/machine_id.ts";
export { DEFAULT_ENDPOINT, parseEndpoints } from "./lib/endpoints.ts";
export {
  connectEtcd,
  describeEtcdError,
  etcdClientOptions,
  type EtcdConnectionOptions,
} from "./lib/etcd_client.ts";
export {
  EtcdLockStore,
  type EtcdLockStoreOptions,
} from "./lib/etcd_lock_store.ts";
export {
  type Change,
  lockSlot,
  type LockStore,
  setMaxSlots,
  type Snapshot,
  unlockSlot,
  type UpdateOutcome,
} from "./lib/lock_store.ts";
export { VERSION } from "./lib/version.ts";
