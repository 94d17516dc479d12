/**
 * locksmithctl's D-Bus actions: reboot through logind, emit need-reboot.
 *
 * @module
 */

/** Asks systemd-logind to reboot this machine. */
export function rebootThroughLogind(): Promise<void> {
  return Promise.reject(new Error("reboot through logind: not wired yet"));
}

/** Emits update_engine's StatusUpdate(UPDATE_STATUS_UPDATED_NEED_REBOOT) signal. */
export function sendNeedRebootSignal(): Promise<void> {
  return Promise.reject(new Error("send-need-reboot: not wired yet"));
}
