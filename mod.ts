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
 * import { lockSlot, openEtcdLockStore, unlockSlot } from "@locksmith/locksmith";
 *
 * const store = await openEtcdLockStore({ endpoints: ["http://127.0.0.1:2379"], timeoutMs: 5_000 });
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
} from "./lib/semaphore/document.ts";
export {
  DEFAULT_SEMAPHORE_KEY,
  queryEscape,
  semaphoreKey,
} from "./lib/semaphore/keys.ts";
export {
  ContentionError,
  CorruptDocumentError,
  EtcdUnavailableError,
  exitCodeOf,
  oneLine,
  type SemaphoreRefusal,
  SemaphoreRefusedError,
  UsageError,
} from "./lib/common/errors.ts";
export { formatDuration, parseDuration } from "./lib/common/duration.ts";
export {
  idDefect,
  MACHINE_ID_PATH,
  MAX_ID_BYTES,
  readMachineId,
  validateId,
} from "./lib/common/machine_id.ts";
export { DEFAULT_ENDPOINT, parseEndpoints } from "./lib/etcd/endpoints.ts";
export type { EtcdConnectionOptions } from "./lib/etcd/options.ts";
export {
  EtcdLockStore,
  type EtcdLockStoreOptions,
} from "./lib/etcd/etcd_lock_store.ts";
export {
  type Change,
  lockSlot,
  type LockStore,
  setMaxSlots,
  type Snapshot,
  unlockSlot,
  type UpdateOutcome,
} from "./lib/semaphore/lock_store.ts";
export { VERSION } from "./lib/common/version.ts";
export {
  canonicalTimeZone,
  DAY_NAMES,
  formatRebootWindow,
  MAX_DAILY_LENGTH_MS,
  MAX_WEEKLY_LENGTH_MS,
  nextWindow,
  parseRebootWindow,
  type RebootWindow,
  RebootWindowError,
  type RebootWindowField,
  windowContaining,
  type WindowOccurrence,
} from "./lib/daemon/reboot_window.ts";
export {
  type ConfigEnv,
  type ConfigFlags,
  type ConfigLine,
  type ConfigSource,
  DAEMON_CONFIG_KEYS,
  type DaemonArgs,
  type DaemonConfig,
  DEFAULT_CONFIG_FILES,
  DEFAULT_REBOOT_STRATEGY,
  loadDaemonConfig,
  type LoadDaemonConfigOptions,
  parseConfigText,
  parseDaemonArgs,
  REBOOT_STRATEGIES,
  type RebootStrategy,
  resolveDaemonConfig,
} from "./lib/daemon/config.ts";
export {
  backoffMs,
  decideTurn,
  type LockFailureAction,
  onLockFailure,
  type StartupAction,
  startupAction,
  type Turn,
  usesLock,
  type WindowState,
  windowState,
} from "./lib/daemon/decisions.ts";
export {
  type Clock,
  type DaemonDeps,
  type DaemonLog,
  type DaemonOutcome,
  type DaemonSettings,
  runDaemonLoop,
} from "./lib/daemon/loop.ts";
export { createDaemonLog, type DaemonLogger } from "./lib/daemon/log.ts";
export { anyRebootNeed } from "./lib/daemon/reboot_need.ts";
export {
  emitNeedReboot,
  NEED_REBOOT,
  parseStatusUpdate,
  type RebootNeed,
  rebootNeedFrom,
  SentinelFileSource,
  type StatusDefect,
  type StatusListener,
  type Unsubscribe,
  UpdateEngineClient,
  type UpdateStatus,
  type UpdateStatusSource,
} from "./lib/dbus/update_engine.ts";
export {
  LogindRebooter,
  type LoginSession,
  type Rebooter,
} from "./lib/dbus/logind.ts";
export {
  type ConnectOptions,
  connectSystemBus,
  type MessageListener,
  type MethodCall,
  type SystemBus,
} from "./lib/dbus/system_bus.ts";
export { type WaitResult } from "./lib/semaphore/lock_store.ts";
