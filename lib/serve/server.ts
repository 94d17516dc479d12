/**
 * The FleetLock server wired together: the group semaphores over an
 * injected store factory, the configured slot counts, metrics, the handler,
 * `Deno.serve` (HTTP or HTTPS), and a graceful shutdown that answers the
 * requests in flight before closing the stores.
 *
 * @module
 */

import { oneLine } from "../common/errors.ts";
import { formatListenAddress } from "../common/listen_address.ts";
import { createFleetLockHandler, type ServerLog } from "./handler.ts";
import { GroupTokens } from "./auth.ts";
import { GroupSemaphores, type OpenStore } from "./semaphores.ts";
import type { ServeOptions } from "./serve_options.ts";
import { errorBody } from "../fleetlock/protocol/protocol.ts";

/** Options of {@link startFleetLockServer}. */
export interface StartFleetLockServerOptions {
  /** The resolved `serve` options (listen address, groups, slots, tokens, read timeout). */
  readonly options: ServeOptions;
  /** PEM texts of the certificate chain and key, for HTTPS. */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Opens the store of a FleetLock group (see `fleetLockKey`). */
  readonly openStore: OpenStore;
  /** Where state changes and failures go. */
  readonly log: ServerLog;
}

/** A running FleetLock server. */
export interface FleetLockServer {
  /** The address listened on (the real port when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** Base URL, e.g. `http://127.0.0.1:8080/`: Zincati's `base_url`. */
  readonly url: string;
  /** The group semaphores (for tests and tools). */
  readonly semaphores: GroupSemaphores;
  /**
   * Stops accepting connections, answers the requests in flight, then
   * closes the stores. Safe to call more than once.
   */
  shutdown(): Promise<void>;
  /** Resolves once the server has stopped and the stores are closed. */
  readonly finished: Promise<void>;
}

/** Stores the configured slot counts; logs each group's, or why it waits for the group's first call. */
async function applySlots(
  semaphores: GroupSemaphores,
  slots: ServeOptions["slots"],
  log: StartFleetLockServerOptions["log"],
): Promise<void> {
  const failures = await semaphores.applySlots();
  for (const [group, max] of slots) {
    const failure = failures.get(group);
    if (failure === undefined) log.info(`group ${group}: ${max} slot(s)`);
    else {
      log.warn(
        `group ${group}: could not set ${max} slot(s) now (${
          oneLine(failure)
        }); they are set with the group's first call`,
      );
    }
  }
}

/**
 * Starts the server: stores the configured slot counts (a group whose
 * count cannot be stored now, e.g. with etcd down, gets it with its first
 * call), then listens. Throws when it cannot listen (address in use, bad
 * TLS files).
 */
export async function startFleetLockServer(
  start: StartFleetLockServerOptions,
): Promise<FleetLockServer> {
  const { options, log } = start;
  const { FleetLockMetrics } = await import("./serve_metrics.ts");
  const semaphores = new GroupSemaphores({
    openStore: start.openStore,
    slots: options.slots,
    maxOpenGroups: Math.max(64, (options.groups?.length ?? 0) + 1),
    onEtcd: (operation, seconds, ok) => metrics.etcd(operation, seconds, ok),
    onCommit: (_group, report) => metrics.commit(report),
  });
  const metrics = new FleetLockMetrics(() => semaphores.documents());
  const handler = createFleetLockHandler({
    service: {
      preReboot: (group, id) => semaphores.preReboot(group, id),
      steadyState: (group, id) => semaphores.steadyState(group, id),
      ping: () => semaphores.ping(),
    },
    allowedGroups: options.groups ? new Set(options.groups) : undefined,
    tokens: options.tokens.size > 0
      ? new GroupTokens(options.tokens)
      : undefined,
    readTimeoutMs: options.readTimeoutMs,
    metrics: () => metrics.expose(),
    observer: metrics,
    log,
  });

  await applySlots(semaphores, options.slots, log);

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: options.listen.hostname,
      port: options.listen.port,
      ...(start.tls ? { cert: start.tls.cert, key: start.tls.key } : {}),
      onListen: () => {},
      onError: (error) => {
        log.error(`unexpected error: ${oneLine(error)}`);
        return new Response(
          errorBody("internal_error", "internal error; see the server's log"),
          { status: 500, headers: { "content-type": "application/json" } },
        );
      },
    }, handler);
  } catch (error) {
    await semaphores.close();
    throw error;
  }
  const addr = server.addr;
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      await server.shutdown();
      await semaphores.close();
    })();
    return stopping;
  };
  const finished = server.finished.then(() => shutdown());
  return {
    addr,
    url: `${start.tls ? "https" : "http"}://${formatListenAddress(addr)}/`,
    semaphores,
    shutdown,
    finished,
  };
}
