/**
 * The fleet page over etcd: its live view is one {@link FleetWatch} on the
 * server's etcd port, its pause and resume are the operator's
 * (`EtcdSemaphoreAdmin.setPaused`, recorded as by `fleet page`).
 *
 * @module
 */

import { oneLine } from "../common/errors.ts";
import { semaphoreKey } from "../semaphore/keys.ts";
import type { EtcdPort } from "../etcd/client/port.ts";
import type { FleetSource } from "./fleet_page.ts";
import type { PauseGroup } from "./routes.ts";

/** The page's source and pause over the port that `port` opens (shared, never closed here). */
export function etcdFleetPage(
  port: () => Promise<EtcdPort>,
  timeoutMs: number,
): { source: FleetSource; pause: PauseGroup } {
  const source: FleetSource = (handlers) => {
    let closed = false;
    let watch: { close(): void } | undefined;
    (async () => {
      const [opened, { FleetWatch }] = await Promise.all([
        port(),
        import("../etcd/store/fleet_watch.ts"),
      ]);
      if (!closed) watch = new FleetWatch(opened, handlers, { timeoutMs });
    })().catch((error) =>
      handlers.onTrouble(`cannot watch the fleet: ${oneLine(error)}`)
    );
    return {
      close() {
        closed = true;
        watch?.close();
      },
    };
  };
  const pause: PauseGroup = async (group, paused) => {
    const [opened, { EtcdLockStore }, { EtcdSemaphoreAdmin }] = await Promise
      .all([
        port(),
        import("../etcd/store/etcd_lock_store.ts"),
        import("../etcd/store/semaphore_admin.ts"),
      ]);
    const store = new EtcdLockStore(opened, semaphoreKey(group), {
      timeoutMs,
      ownsPort: false,
    });
    return await new EtcdSemaphoreAdmin(store).setPaused(paused, "fleet page");
  };
  return { source, pause };
}
