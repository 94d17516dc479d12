/**
 * locksmithctl's D-Bus actions: reboot through logind, emit need-reboot.
 * Loaded only by the commands that use them.
 *
 * @module
 */

import { connectSystemBus, type SystemBus } from "../dbus/system_bus.ts";
import { LogindRebooter } from "../dbus/logind.ts";
import { emitNeedReboot } from "../dbus/update_engine.ts";

async function withBus(body: (bus: SystemBus) => Promise<void>): Promise<void> {
  const bus = await connectSystemBus();
  try {
    await body(bus);
  } finally {
    await bus.close();
  }
}

/** Asks systemd-logind to reboot this machine (`Reboot(false)`). */
export function rebootThroughLogind(): Promise<void> {
  return withBus((bus) => new LogindRebooter(bus).reboot());
}

/** Emits update_engine's StatusUpdate(UPDATE_STATUS_UPDATED_NEED_REBOOT) signal. */
export function sendNeedRebootSignal(): Promise<void> {
  return withBus((bus) => emitNeedReboot(bus));
}
