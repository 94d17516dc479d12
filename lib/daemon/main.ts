/**
 * locksmithd wired to the real world: config files and environment, the
 * machine id, etcd, the system bus (update_engine, logind), a sentinel file,
 * signals, and the log on stderr.
 *
 * @module
 */

import {
  DAEMON_CONFIG_KEYS,
  DAEMON_USAGE,
  type DaemonConfig,
  loadDaemonConfig,
  parseDaemonArgs,
} from "./config.ts";
import { createDaemonLog, type DaemonLogger } from "./log.ts";
import { type Clock, type DaemonOutcome, runDaemonLoop } from "./loop.ts";
import { usesLock } from "./decisions.ts";
import { exitCodeOf, oneLine } from "../common/errors.ts";
import { readMachineId } from "../common/machine_id.ts";
import { anyRebootNeed } from "./reboot_need.ts";
import type { LockStore } from "../semaphore/lock_store.ts";
import { VERSION } from "../common/version.ts";

const encoder = new TextEncoder();

function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let offset = 0;
  while (offset < bytes.length) {
    offset += Deno.stderr.writeSync(bytes.subarray(offset));
  }
}

/** Longest single timer: `setTimeout` fires at once beyond 2^31-1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock: `setTimeout`, abortable; long sleeps are split into timers that fit. */
export const systemClock: Clock = {
  now: () => new Date(),
  sleep: async (ms, signal) => {
    let rest = Math.max(0, ms);
    do {
      const step = Math.min(rest, MAX_TIMER_MS);
      rest -= step;
      const slept = await new Promise<boolean>((resolve) => {
        if (signal.aborted) return resolve(false);
        const timer = setTimeout(() => {
          signal.removeEventListener("abort", onAbort);
          resolve(true);
        }, step);
        const onAbort = () => {
          clearTimeout(timer);
          resolve(false);
        };
        signal.addEventListener("abort", onAbort, { once: true });
      });
      if (!slept) return false;
    } while (rest > 0);
    return true;
  },
};

function readEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const key of DAEMON_CONFIG_KEYS) env[key] = Deno.env.get(key);
  return env;
}

/** Stops on SIGTERM or SIGINT: aborts the returned signal; `dispose` removes the handlers. */
function stopOnSignals(
  log: DaemonLogger,
): { signal: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  const handlers = (["SIGTERM", "SIGINT"] as const).map((name) => {
    const handler = () => {
      if (!stop.signal.aborted) log.info(`${name} received: stopping`);
      stop.abort();
    };
    Deno.addSignalListener(name, handler);
    return () => Deno.removeSignalListener(name, handler);
  });
  return {
    signal: stop.signal,
    dispose: () => handlers.forEach((remove) => remove()),
  };
}

async function openStore(config: DaemonConfig): Promise<LockStore> {
  const { openEtcdLockStore } = await import("../etcd/etcd_lock_store.ts");
  return await openEtcdLockStore(config.etcd, config.group);
}

/**
 * Runs locksmithd with `args` until it asked for a reboot and was stopped,
 * was stopped, or has nothing to do. Returns the exit status: 0 after a
 * clean stop or with strategy `off`, 1 on a runtime failure (e.g. no system
 * bus), 2 on a usage or configuration error.
 */
export async function runDaemon(args: readonly string[]): Promise<number> {
  const journal = Deno.env.get("JOURNAL_STREAM") !== undefined;
  const log = createDaemonLog(writeStderr, journal);
  let config: DaemonConfig;
  try {
    const parsed = parseDaemonArgs(args);
    if (parsed.help) {
      Deno.stdout.writeSync(encoder.encode(DAEMON_USAGE));
      return 0;
    }
    if (parsed.version) {
      Deno.stdout.writeSync(encoder.encode(`locksmithd ${VERSION}\n`));
      return 0;
    }
    config = await loadDaemonConfig({
      configFiles: parsed.configFiles,
      env: readEnv(),
      flags: parsed.flags,
    });
  } catch (error) {
    writeStderr(`locksmithd: ${oneLine(error)}\n`);
    return exitCodeOf(error);
  }
  for (const warning of config.warnings) log.warn(warning);
  if (config.strategy === "off") {
    log.info("strategy is off: locksmithd has nothing to do, exiting");
    return 0;
  }

  const { signal, dispose } = stopOnSignals(log);
  const closers: (() => Promise<void>)[] = [];
  try {
    const machineId = config.machineId ?? await readMachineId();
    const [{ connectSystemBus }, { LogindRebooter }, updateEngine] =
      await Promise.all([
        import("../dbus/system_bus.ts"),
        import("../dbus/logind.ts"),
        import("../dbus/update_engine.ts"),
      ]);
    const bus = await connectSystemBus({ log: (line) => log.warn(line) });
    closers.push(() => bus.close());
    const engine = new updateEngine.UpdateEngineClient(bus, {
      log: (line) => log.warn(line),
    });
    const sentinel = new updateEngine.SentinelFileSource(
      config.rebootSentinel,
      {
        log: (line) => log.warn(line),
      },
    );
    const need = anyRebootNeed([
      updateEngine.rebootNeedFrom(engine),
      updateEngine.rebootNeedFrom(sentinel),
    ]);
    const store = usesLock(config.strategy)
      ? await openStore(config)
      : undefined;
    if (store) closers.push(() => store.close());
    // A lost system bus cannot be recovered in-process: stop, and let systemd restart us.
    const busLost = new AbortController();
    bus.closed.then(() => {
      if (!signal.aborted) {
        log.warn(
          "the system bus connection closed: stopping so that systemd restarts locksmithd",
        );
        busLost.abort();
      }
    });
    const stopped = AbortSignal.any([signal, busLost.signal]);
    const outcome: DaemonOutcome = await runDaemonLoop({
      strategy: config.strategy,
      machineId,
      window: config.rebootWindow,
      loginDelayMs: config.loginDelayMs,
    }, {
      store,
      rebooter: new LogindRebooter(bus),
      need,
      clock: systemClock,
      log,
      random: Math.random,
    }, stopped);
    if (outcome === "rebooted") {
      log.info("waiting for the system to go down");
      await new Promise<void>((resolve) => {
        if (stopped.aborted) return resolve();
        stopped.addEventListener("abort", () => resolve(), { once: true });
      });
    }
    return busLost.signal.aborted ? 1 : 0;
  } catch (error) {
    log.error(oneLine(error));
    return exitCodeOf(error);
  } finally {
    dispose();
    for (const close of closers.reverse()) await close().catch(() => {});
  }
}
