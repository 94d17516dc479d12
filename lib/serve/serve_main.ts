/**
 * `locksmithd serve`: the FleetLock server wired to the real world: the
 * command line and environment, locksmithd's etcd settings, TLS files, the
 * etcd store, signals, and the log on stderr.
 *
 * @module
 */

import { stopOnSignals } from "../host/signals.ts";
import {
  DAEMON_CONFIG_KEYS,
  type DaemonConfig,
  loadDaemonConfig,
} from "../config/config.ts";
import {
  answerHelpOrVersion,
  reportFailure,
  stderrLog,
} from "../host/program_io.ts";
import { oneLine, UsageError } from "../common/errors.ts";
import { readGrantedEnv } from "../host/permissions.ts";
import { unknownEnvWarnings } from "../common/env_names.ts";
import { envWithPrefix } from "../host/permissions.ts";
import type { LockStore } from "../semaphore/lock_store.ts";
import { semaphoreKey } from "../semaphore/keys.ts";
import type { EtcdPort } from "../etcd/client/port.ts";
import {
  parseServeArgs,
  resolveServeOptions,
  SERVE_ENV_KEYS,
  type ServeOptions,
} from "./serve_options.ts";
import { semaphoreGroupOf } from "../fleetlock/protocol/protocol.ts";
import { SERVE_USAGE } from "./serve_help.ts";
import type { FleetLockServer } from "./server.ts";

/** The log `serve` writes on stderr. */
type ServeLog = ReturnType<typeof stderrLog>;

/** The daemon's etcd keys: the only daemon settings `serve` takes from the environment. */
const ETCD_KEYS = DAEMON_CONFIG_KEYS.filter((key) =>
  key === "LOCKSMITHD_ENDPOINT" || key.startsWith("LOCKSMITHD_ETCD_")
);

/**
 * Opens the etcd store of a FleetLock group: the one place `serve` knows
 * etcd. Every group's store shares one etcd port (one set of connections);
 * `close` closes it once the server has stopped.
 */
function etcdStoreFactory(config: DaemonConfig): {
  open(group: string): Promise<LockStore>;
  port(): Promise<EtcdPort>;
  close(): Promise<void>;
} {
  let port: Promise<EtcdPort> | undefined;
  return {
    async port() {
      const { openEtcdPort } = await import("../etcd/open.ts");
      port ??= openEtcdPort(config.etcd);
      return await port;
    },
    async open(group) {
      const [{ openEtcdPort }, { EtcdLockStore }] = await Promise.all([
        import("../etcd/open.ts"),
        import("../etcd/store/etcd_lock_store.ts"),
      ]);
      port ??= openEtcdPort(config.etcd);
      return new EtcdLockStore(
        await port,
        semaphoreKey(semaphoreGroupOf(group)),
        { timeoutMs: config.etcd.timeoutMs, ownsPort: false },
      );
    },
    async close() {
      await (await port)?.close();
    },
  };
}

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(
      `cannot read ${what} file ${path}: ${oneLine(error)}`,
    );
  }
}

/** What `serve` runs with: the daemon's etcd settings, its options and TLS. */
interface ServeSetup {
  config: DaemonConfig;
  options: ServeOptions;
  tls: { cert: string; key: string } | undefined;
}

/**
 * Reads the command line, configuration files, environment and TLS files.
 * Returns the exit status instead when `serve` must stop here (help,
 * version, or a usage or configuration error).
 */
async function loadServeSetup(
  args: readonly string[],
): Promise<ServeSetup | number> {
  try {
    const parsed = parseServeArgs(args);
    const answered = answerHelpOrVersion(parsed, SERVE_USAGE);
    if (answered !== undefined) return answered;
    const config = await loadDaemonConfig({
      configFiles: parsed.configFiles,
      env: readGrantedEnv(ETCD_KEYS),
      flags: parsed.daemonFlags,
    });
    const options = resolveServeOptions(
      parsed.values,
      readGrantedEnv(SERVE_ENV_KEYS),
    );
    let tls: { cert: string; key: string } | undefined;
    if (options.tls) {
      tls = {
        cert: await readPem(options.tls.certFile, "TLS certificate"),
        key: await readPem(options.tls.keyFile, "TLS key"),
      };
    }
    return { config, options, tls };
  } catch (error) {
    return reportFailure("locksmithd serve", error);
  }
}

/** Logs the configuration's warnings and the unknown `LOCKSMITHD_` variables. */
function warnAboutSetup(config: DaemonConfig, log: ServeLog): void {
  for (const warning of config.warnings) log.warn(warning);
  const known = [...DAEMON_CONFIG_KEYS, ...SERVE_ENV_KEYS];
  for (const w of unknownEnvWarnings(envWithPrefix("LOCKSMITHD_"), known)) {
    log.warn(w);
  }
}

/**
 * Starts the server on the etcd `stores`. Logs why and returns undefined
 * when it cannot listen.
 */
async function startServer(
  { config, options, tls }: ServeSetup,
  stores: ReturnType<typeof etcdStoreFactory>,
  log: ServeLog,
): Promise<FleetLockServer | undefined> {
  try {
    const { startFleetLockServer } = await import("./server.ts");
    return await startFleetLockServer({
      options,
      tls,
      openStore: (group) => stores.open(group),
      log,
      fleetPage: (await import("../fleetpage/etcd_wiring.ts")).etcdFleetPage(
        () => stores.port(),
        config.etcd.timeoutMs,
      ),
    });
  } catch (error) {
    const where = `${options.listen.hostname}:${options.listen.port}`;
    log.error(
      tls
        ? `cannot serve HTTPS on ${where} with ${options.tls?.certFile} and ${options.tls?.keyFile}: ${
          oneLine(error)
        }`
        : `cannot listen on ${where}: ${oneLine(error)}`,
    );
    return undefined;
  }
}

/** Logs where the server and its fleet page are served. */
function announce(
  server: FleetLockServer,
  { config, options }: ServeSetup,
  log: ServeLog,
): void {
  log.info(
    `serving FleetLock on ${server.url} (etcd ${
      config.etcd.endpoints.join(",")
    }${options.groups ? `; groups ${options.groups.join(", ")}` : ""}${
      options.tokens.size > 0 ? "; tokens required" : ""
    })`,
  );
  log.info(
    `fleet page at ${server.url} (live; one etcd watch for all viewers)`,
  );
}

/**
 * Runs `locksmithd serve` with `args` (the arguments after `serve`) until
 * SIGTERM or SIGINT. Returns the exit status: 0 after a clean stop, 1 when
 * it cannot listen, 2 on a usage or configuration error.
 */
export async function runServe(args: readonly string[]): Promise<number> {
  const log = stderrLog();
  const setup = await loadServeSetup(args);
  if (typeof setup === "number") return setup;
  warnAboutSetup(setup.config, log);

  const { stopped, dispose } = stopOnSignals();
  const stores = etcdStoreFactory(setup.config);
  const server = await startServer(setup, stores, log);
  if (server === undefined) {
    dispose();
    return 1;
  }
  announce(server, setup, log);
  const name = await Promise.race([
    stopped,
    server.finished.then(() => undefined),
  ]);
  dispose();
  if (name !== undefined) {
    log.info(`${name} received: stopping after the requests in flight`);
  }
  await server.shutdown();
  await stores.close().catch(() => {});
  log.info("stopped");
  return 0;
}
