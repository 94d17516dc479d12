/**
 * locksmithctl's D-Bus actions: reboot through logind, emit need-reboot.
 * Loaded only by the commands that use them.
 *
 * @module
 */

import { connectSystemBus } from "../dbus/system_bus.ts";
import { withClosing } from "../common/closing.ts";
import { LogindRebooter } from "../dbus/logind.ts";
import { emitNeedReboot } from "../dbus/update_engine.ts";
import type { LogindSession } from "./commands.ts";

/** Connects to systemd-logind for `locksmithctl reboot` (the caller closes it). */
export async function connectLogind(): Promise<LogindSession> {
  const bus = await connectSystemBus();
  const logind = new LogindRebooter(bus);
  return {
    canReboot: () => logind.canReboot(),
    reboot: () => logind.reboot(),
    close: () => bus.close(),
  };
}

/** Emits update_engine's StatusUpdate(UPDATE_STATUS_UPDATED_NEED_REBOOT) signal. */
export function sendNeedRebootSignal(): Promise<void> {
  return withClosing(connectSystemBus(), (bus) => emitNeedReboot(bus));
}
