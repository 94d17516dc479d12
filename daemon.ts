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
 * This module only listens for SIGTERM, SIGINT and SIGHUP, then loads the
 * rest: a stop asked for while the program loads is honoured (exit status
 * 0, nothing done) instead of ending it by the signal.
 *
 * @module
 */

import { type StopOnSignals, stopOnSignals } from "./lib/host/signals.ts";

/**
 * Runs locksmithd with `args` until it asked for a reboot and was stopped,
 * was stopped, or has nothing to do. Returns the exit status: 0 after a
 * clean stop or with strategy `off`, 1 on a runtime failure (e.g. no system
 * bus), 2 on a usage or configuration error.
 */
export async function runDaemon(args: readonly string[]): Promise<number> {
  return await runWith(args);
}

/** Loads the daemon and runs it; `stop` is the listener installed before the load. */
async function runWith(
  args: readonly string[],
  stop?: StopOnSignals,
): Promise<number> {
  const main = await load(() => import("./lib/daemon/wiring/daemon_main.ts"));
  return main ? await main.runDaemon(args, stop) : 1;
}

/**
 * Imports one of locksmithd's own modules. Run with
 * `--unstable-lazy-dynamic-imports` (as the tasks and units do, so that
 * the signal listener comes before the load), Deno checks read access to
 * them: without it, says in one line which folder to allow and returns
 * `undefined`.
 */
async function load<T>(module: () => Promise<T>): Promise<T | undefined> {
  try {
    return await module();
  } catch (error) {
    // Deno reports it as a TypeError.
    if (!/^Requires read access/.test((error as Error)?.message)) throw error;
    const lib = decodeURIComponent(new URL("./lib", import.meta.url).pathname);
    console.error(
      `locksmithd: cannot load its own modules (${
        (error as Error).message
      }): add --allow-read=${lib}`,
    );
    return undefined;
  }
}

if (import.meta.main) {
  // Before anything else loads: SIGHUP is ignored until the daemon says
  // what it does with it (the configuration is read at start only).
  const stop = stopOnSignals({ onHangup: () => {} });
  if (Deno.args[0] === "serve") {
    // The server installs its own listener: a stop before it does ends here.
    const serve = await load(() => import("./lib/serve/serve_main.ts"));
    stop.dispose();
    if (stop.signal.aborted) Deno.exit(0);
    Deno.exit(serve ? await serve.runServe(Deno.args.slice(1)) : 1);
  }
  Deno.exit(await runWith(Deno.args, stop));
}
