/**
 * locksmithd: the reboot daemon. When a reboot is needed (update_engine's
 * StatusUpdate signal, or a sentinel file), it waits for the reboot window,
 * takes a slot of the fleet's semaphore in etcd, and reboots through
 * systemd-logind; after boot it releases the slot.
 *
 * Run it with the narrow permissions of the `daemon` set in `deno.json`:
 * `deno run -q -P=daemon daemon.ts` (or `deno task daemon`).
 *
 * `daemon.ts serve` runs the FleetLock server instead (see
 * `lib/serve/serve_main.ts`), with the `serve` set: `deno task serve`.
 *
 * @module
 */

import { runDaemon } from "./lib/daemon/wiring/daemon_main.ts";

export { runDaemon };

if (import.meta.main) {
  if (Deno.args[0] === "serve") {
    const { runServe } = await import("./lib/serve/serve_main.ts");
    Deno.exit(await runServe(Deno.args.slice(1)));
  }
  Deno.exit(await runDaemon(Deno.args));
}
