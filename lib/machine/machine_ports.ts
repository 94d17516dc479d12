/**
 * What locksmithd needs from the machine it runs on, as narrow interfaces
 * that the adapters implement (logind and the reboot command reboot and
 * warn users, the log writes to stderr, the kernel names the boot) and the
 * daemon's loop calls; the tests use fakes.
 *
 * @module
 */

/** Where locksmithd's decisions are logged, one line each. */
export interface DaemonLog {
  /** A decision or a state change. */
  info(message: string): void;
  /** Something went wrong and is being retried. */
  warn(message: string): void;
  /** Something went wrong that needs an operator (e.g. a machine stays unhealthy). */
  error(message: string): void;
}

/** Reboots the machine; sized to the calls locksmithd and locksmithctl make. */
export interface Rebooter {
  /** What a reboot does, for log lines (default `asking logind to reboot`). */
  readonly action?: string;
  /**
   * Asks for a reboot; resolves once the request was accepted, throws one
   * line when it was refused or failed. `signal` stops a request that runs
   * (a reboot command).
   */
  reboot(signal?: AbortSignal): Promise<void>;
  /** Number of logged-in sessions. */
  activeSessions(): Promise<number>;
}

/** Warns logged-in users of a coming reboot (logind's wall messages). */
export interface UserWarning {
  /** Tells logged-in users that the machine reboots at `at`, with `message`; throws when it cannot. */
  warnUsers(message: string, at: Date): Promise<void>;
  /** Withdraws the warning when the reboot does not follow; throws when it cannot. */
  cancelWarning(): Promise<void>;
}

/** This boot, as the kernel names it. */
export interface BootInfo {
  /** `/proc/sys/kernel/random/boot_id`. */
  readonly id: string;
  /** When the machine booted. */
  readonly time: Date;
}
