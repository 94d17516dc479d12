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
export { openEtcdLockStore, openEtcdPort } from "./lib/etcd/open.ts";
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
  type LockMode,
  lockMode,
  onLockFailure,
  type StartupAction,
  startupAction,
  type StartupFacts,
  type Turn,
  type TurnFacts,
  usesLock,
  type WindowState,
  windowState,
} from "./lib/daemon/decisions.ts";
export {
  type BootInfo,
  type Clock,
  type DaemonDeps,
  type DaemonLog,
  type DaemonNotify,
  type DaemonOutcome,
  type DaemonSettings,
  type Rebooter,
  type RebootNeed,
  runDaemonLoop,
  type UserWarning,
} from "./lib/daemon/loop.ts";
export { createDaemonLog, type DaemonLogger } from "./lib/daemon/log.ts";
export {
  anyRebootNeed,
  NEED_REBOOT,
  rebootNeedFrom,
  type StatusListener,
  type Unsubscribe,
  type UpdateStatusSource,
} from "./lib/daemon/reboot_need.ts";
export { SentinelFileSource } from "./lib/daemon/sentinel.ts";
export {
  emitNeedReboot,
  parseStatusUpdate,
  type StatusDefect,
  UpdateEngineClient,
  type UpdateStatus,
} from "./lib/dbus/update_engine.ts";
export { LogindRebooter, type LoginSession } from "./lib/dbus/logind.ts";
export {
  type ConnectOptions,
  connectSystemBus,
  type MessageListener,
  type MethodCall,
  type SystemBus,
} from "./lib/dbus/system_bus.ts";
export type {
  QueuePlace,
  QueueState,
  SlotQueue,
  TakeOptions,
  WaitResult,
} from "./lib/semaphore/slot_queue.ts";
export {
  formatInstantIn,
  formatSchedule,
  formatScheduleState,
  parseSchedule,
  type RebootSchedule,
  SCHEDULE_HORIZON_MS,
  type ScheduleEntry,
  ScheduleError,
  scheduleFromWindow,
  type ScheduleState,
  scheduleState,
} from "./lib/daemon/schedule.ts";
export { ConfigValueError } from "./lib/daemon/value_error.ts";
export {
  allowRunFlag,
  type CommandResult,
  CommandStartError,
  type CommandStartFailure,
  commandSucceeded,
  CommandSyntaxError,
  describeCommand,
  describeResult,
  parseCommand,
  type ParsedCommand,
  runPermissionError,
} from "./lib/daemon/command.ts";
export {
  commandEnv,
  type CommandRunner,
  DEFAULT_COMMAND_ENV,
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_KILL_GRACE_MS,
  DEFAULT_OUTPUT_LIMIT,
  runCommand,
  type RunOptions,
} from "./lib/daemon/command_run.ts";
export { realClock, type SafetyClock } from "./lib/daemon/clock.ts";
export {
  COMMAND_KINDS,
  COMMAND_RESULTS,
  type CommandKind,
  type CommandRunResult,
  type DaemonMetrics,
  formatListenAddress,
  type ListenAddress,
  LOCK_ATTEMPT_RESULTS,
  type LockAttemptResult,
  NO_METRICS,
  NOTIFICATION_RESULTS,
  type NotificationResult,
  parseListenAddress,
  timeEtcdRequest,
} from "./lib/daemon/metrics_port.ts";
export {
  type Notification,
  Notifier,
  type NotifierOptions,
  NOTIFY_EVENTS,
  notifyBackoffMs,
  type NotifyEvent,
  type NotifyLog,
  parseNotifyUrl,
} from "./lib/daemon/notify.ts";
export {
  type CheckOptions,
  type CheckOutcome,
  DEFAULT_HEALTH_CHECK_INTERVAL_MS,
  DEFAULT_HEALTH_CHECK_TIMEOUT_MS,
  type HealthGateLog,
  type HealthGateOptions,
  type HealthGateResult,
  runCheck,
  runHealthGate,
} from "./lib/daemon/health_gate.ts";
export {
  checkProtocolHeader,
  type ClientParams,
  FLEETLOCK_ERROR_STATUS,
  FLEETLOCK_HEADER,
  FLEETLOCK_PATHS,
  type FleetLockEndpoint,
  FleetLockError,
  type FleetLockErrorKind,
  fleetLockKey,
  parseClientParams,
} from "./lib/fleetlock/protocol.ts";
