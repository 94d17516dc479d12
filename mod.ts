/**
 * locksmith: a reboot manager for fleets of Linux machines, as a library.
 *
 * Machines that must reboot after an OS update take a slot of a counting
 * semaphore stored in etcd, reboot, and release the slot after boot, so that
 * no more than `max` machines reboot at once. This module is what
 * `locksmithctl`, `locksmithd` and the FleetLock server are built on: the
 * semaphore document and its pure operations, and a store that changes it
 * in etcd v3 by compare-and-swap only (through etcd's JSON gateway, or gRPC
 * when the servers have no gateway). Talking to etcd needs `--allow-net`
 * and nothing else (plus `--allow-read` for TLS files).
 *
 * @example Take a slot, wait while the semaphore is full, release it
 * ```ts
 * import {
 *   lockSlot,
 *   openEtcdLockStore,
 *   SemaphoreRefusedError,
 *   unlockSlot,
 * } from "@locksmith/locksmith";
 *
 * const store = await openEtcdLockStore({
 *   endpoints: ["http://127.0.0.1:2379"],
 *   timeoutMs: 5_000,
 * }, "web");
 * try {
 *   for (;;) {
 *     try {
 *       await lockSlot(store, "69d27b356a94476da859461d3a3bc6fd");
 *       break;
 *     } catch (error) {
 *       if (!(error instanceof SemaphoreRefusedError)) throw error;
 *       if (error.reason === "holder_exists") break;
 *       const { revision } = await store.read();
 *       await store.waitForChange(revision, 60_000);
 *     }
 *   }
 *   // ... reboot, then after boot:
 *   await unlockSlot(store, "69d27b356a94476da859461d3a3bc6fd");
 * } finally {
 *   await store.close();
 * }
 * ```
 *
 * @example The pure operations, without etcd
 * ```ts
 * import { INITIAL_SEMAPHORE, lock, setMax } from "@locksmith/locksmith";
 *
 * const doc = lock(setMax(INITIAL_SEMAPHORE, 2), "node-1");
 * console.log(doc); // { semaphore: 1, max: 2, holders: ["node-1"] }
 * ```
 *
 * The programs are exported too: `@locksmith/locksmith/ctl` (`runCtl`) and
 * `@locksmith/locksmith/daemon` (`runDaemon`).
 *
 * @module
 */

export {
  compareIds,
  documentDefect,
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
  storedText,
  unlock,
} from "./lib/semaphore/document.ts";
export {
  DEFAULT_SEMAPHORE_KEY,
  holderRecordKey,
  queryEscape,
  semaphoreKey,
  waiterKey,
} from "./lib/semaphore/keys.ts";
export {
  formatHolderRecord,
  type HolderRecord,
  parseHolderRecord,
} from "./lib/semaphore/holder_record.ts";
export {
  type Change,
  type ChangeContext,
  type Companion,
  lockSlot,
  type LockSlotOptions,
  type LockStore,
  setMaxSlots,
  type SlotEnding,
  type Snapshot,
  unlockSlot,
  type UpdateOptions,
  type UpdateOutcome,
} from "./lib/semaphore/lock_store.ts";
export {
  HISTORY_KINDS,
  type HistoryEvent,
  type HistoryKind,
} from "./lib/semaphore/history.ts";
export { openEtcdLockStore } from "./lib/etcd/open.ts";
export type { EtcdConnectionOptions } from "./lib/etcd/client/etcd_options.ts";
export type { TlsOptions } from "./lib/etcd/client/tls.ts";
export {
  DEFAULT_ENDPOINT,
  parseEndpoints,
} from "./lib/etcd/client/endpoints.ts";
export {
  ContentionError,
  CorruptDocumentError,
  DocumentLimitError,
  errorKind,
  EtcdAuthenticationError,
  EtcdPermissionDeniedError,
  EtcdRequestError,
  EtcdUnavailableError,
  exitCodeOf,
  ExitStatusError,
  oneLine,
  type SemaphoreRefusal,
  SemaphoreRefusedError,
  UsageError,
} from "./lib/common/errors.ts";
export { formatDuration, parseDuration } from "./lib/common/duration.ts";
export { idDefect, validateId } from "./lib/common/machine_id.ts";
export { MACHINE_ID_PATH, readMachineId } from "./lib/host/machine_id_file.ts";
export { VERSION } from "./lib/common/version.ts";
export {
  type ClientParams,
  FLEETLOCK_HEADER,
  FleetLockError,
  type FleetLockErrorKind,
  fleetLockKey,
  parseClientParams,
} from "./lib/fleetlock/protocol/protocol.ts";
