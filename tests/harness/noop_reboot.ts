/**
 * The ports of a machine that waits in this process for a slot and whose
 * reboot does nothing: what the queue tests (`stale_slot_test.ts`,
 * `wait_queue_test.ts`) and the waiting benchmark (`bench/sim_machine.ts`)
 * give the daemon loop's `Run` besides etcd.
 */

import type { DaemonDeps } from "../../lib/daemon/loop/ports.ts";

/** A rebooter that reboots nothing (no sessions) and a reboot need named `need` that is always there. */
export function noopRebootPorts(
  need: string,
): Pick<DaemonDeps, "rebooter" | "need"> {
  return {
    rebooter: {
      reboot: () => Promise.resolve(),
      activeSessions: () => Promise.resolve(0),
    },
    need: {
      name: need,
      neededBy: () => Promise.resolve(need),
      waitUntilNeeded: () => Promise.resolve(need),
    },
  };
}
