/**
 * locksmithd's Prometheus metrics (npm:prom-client) and the HTTP server that
 * serves them on `GET /metrics`. The daemon imports this module only when
 * `LOCKSMITHD_METRICS_ADDR` is set; everything else uses the
 * `DaemonMetrics` interface of `metrics_port.ts`.
 *
 * Metrics (all prefixed `locksmithd_`):
 *
 * | name | type | labels |
 * | --- | --- | --- |
 * | `locksmithd_build_info` | gauge, always 1 | `version` |
 * | `locksmithd_reboot_needed` | gauge 0/1 | |
 * | `locksmithd_waiting_since_timestamp_seconds` | gauge, unix time, 0 when not waiting | |
 * | `locksmithd_slot_held` | gauge 0/1 | |
 * | `locksmithd_window_open` | gauge 0/1 (1 without a window) | |
 * | `locksmithd_queue_position` | gauge, waiters ahead, -1 when not queued | |
 * | `locksmithd_last_reboot_request_timestamp_seconds` | gauge, unix time, 0 before any | |
 * | `locksmithd_lock_attempts_total` | counter | `result` |
 * | `locksmithd_etcd_request_duration_seconds` | histogram | `op` |
 * | `locksmithd_commands_total` | counter | `command`, `result` |
 * | `locksmithd_notifications_total` | counter | `result` |
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "npm:prom-client@15.1.3";
import { oneLine } from "../../common/errors.ts";
import { ETCD_LATENCY_BUCKETS } from "../../etcd/client/latency_buckets.ts";
import { VERSION } from "../../common/version.ts";
import {
  COMMAND_KINDS,
  COMMAND_RESULTS,
  type CommandKind,
  type CommandRunResult,
  type DaemonMetrics,
  LOCK_ATTEMPT_RESULTS,
  type LockAttemptResult,
  NOTIFICATION_RESULTS,
  type NotificationResult,
} from "./metrics_port.ts";
import {
  formatListenAddress,
  type ListenAddress,
} from "../../common/listen_address.ts";

function unixSeconds(at: Date): number {
  return Math.floor(at.getTime() / 1000);
}

/** A gauge of locksmithd's registry, set to `value`. */
function gauge(
  registers: Registry[],
  name: string,
  help: string,
  value: number,
): Gauge {
  const g = new Gauge({ name: `locksmithd_${name}`, help, registers });
  g.set(value);
  return g;
}

/** A counter of locksmithd's registry with every label combination in `zeroes` at 0. */
function counter(
  registers: Registry[],
  name: string,
  help: string,
  zeroes: readonly Record<string, string>[],
): Counter {
  const labelNames = Object.keys(zeroes[0] ?? {});
  const c = new Counter({
    name: `locksmithd_${name}`,
    help,
    labelNames,
    registers,
  });
  for (const labels of zeroes) c.inc(labels, 0);
  return c;
}

/** {@link DaemonMetrics} kept in a prom-client registry of its own. */
export class PromDaemonMetrics implements DaemonMetrics {
  /** The registry holding every locksmithd metric (and nothing else). */
  readonly registry: Registry = new Registry();
  readonly #rebootNeeded: Gauge;
  readonly #waitingSince: Gauge;
  readonly #slotHeld: Gauge;
  readonly #windowOpen: Gauge;
  readonly #queuePosition: Gauge;
  readonly #lastRebootRequest: Gauge;
  readonly #lockAttempts: Counter<"result">;
  readonly #etcdLatency: Histogram<"op">;
  readonly #commands: Counter<"command" | "result">;
  readonly #notifications: Counter<"result">;

  /**
   * Creates the metrics with their initial values: nothing needed, not
   * waiting, no slot, window open, not queued, no reboot requested, every
   * counter label at 0.
   *
   * @param version the version reported by `locksmithd_build_info` (default: locksmith's)
   */
  constructor(version: string = VERSION) {
    const registers = [this.registry];
    new Gauge({
      name: "locksmithd_build_info",
      help: "Always 1; the label version is the version of locksmithd.",
      labelNames: ["version"],
      registers,
    }).set({ version }, 1);
    this.#rebootNeeded = gauge(
      registers,
      "reboot_needed",
      "1 when this machine needs a reboot, else 0.",
      0,
    );
    this.#waitingSince = gauge(
      registers,
      "waiting_since_timestamp_seconds",
      "Unix time since which this machine waits to reboot (for the window or a slot); 0 when not waiting.",
      0,
    );
    this.#slotHeld = gauge(
      registers,
      "slot_held",
      "1 while this machine holds a slot of the reboot semaphore, else 0.",
      0,
    );
    this.#windowOpen = gauge(
      registers,
      "window_open",
      "1 while the reboot window or schedule is open (always 1 without one), else 0.",
      1,
    );
    this.#queuePosition = gauge(
      registers,
      "queue_position",
      "Waiters ahead of this machine in the semaphore's wait queue (0: next); -1 when not queued.",
      -1,
    );
    this.#lastRebootRequest = gauge(
      registers,
      "last_reboot_request_timestamp_seconds",
      "Unix time at which this daemon last asked for a reboot; 0 before any.",
      0,
    );
    this.#lockAttempts = counter(
      registers,
      "lock_attempts_total",
      "Attempts to take a slot, by result: taken, held (already held), full, conflict, error.",
      LOCK_ATTEMPT_RESULTS.map((result) => ({ result })),
    );
    this.#etcdLatency = new Histogram({
      name: "locksmithd_etcd_request_duration_seconds",
      help: "Duration of etcd requests in seconds, by operation.",
      labelNames: ["op"],
      buckets: [...ETCD_LATENCY_BUCKETS],
      registers,
    });
    this.#commands = counter(
      registers,
      "commands_total",
      "Runs of the configured commands, by command and result: success, failure, timeout, error (could not start).",
      COMMAND_KINDS.flatMap((command) =>
        COMMAND_RESULTS.map((result) => ({ command, result }))
      ),
    );
    this.#notifications = counter(
      registers,
      "notifications_total",
      "Notifications by fate: sent, given-up (retries exhausted or refused), dropped (queue full).",
      NOTIFICATION_RESULTS.map((result) => ({ result })),
    );
  }

  /** Sets `locksmithd_reboot_needed`. */
  setRebootNeeded(needed: boolean): void {
    this.#rebootNeeded.set(needed ? 1 : 0);
  }
  /** Sets `locksmithd_waiting_since_timestamp_seconds` (0 for `null`). */
  setWaitingSince(since: Date | null): void {
    this.#waitingSince.set(since === null ? 0 : unixSeconds(since));
  }
  /** Sets `locksmithd_slot_held`. */
  setSlotHeld(held: boolean): void {
    this.#slotHeld.set(held ? 1 : 0);
  }
  /** Sets `locksmithd_window_open`. */
  setWindowOpen(open: boolean): void {
    this.#windowOpen.set(open ? 1 : 0);
  }
  /** Sets `locksmithd_queue_position` (-1 for `null`). */
  setQueuePosition(ahead: number | null): void {
    this.#queuePosition.set(ahead ?? -1);
  }
  /** Sets `locksmithd_last_reboot_request_timestamp_seconds`. */
  setLastRebootRequest(at: Date): void {
    this.#lastRebootRequest.set(unixSeconds(at));
  }
  /** Adds 1 to `locksmithd_lock_attempts_total{result}`. */
  countLockAttempt(result: LockAttemptResult): void {
    this.#lockAttempts.inc({ result });
  }
  /** Observes `durationMs` (in seconds) in `locksmithd_etcd_request_duration_seconds{op}`. */
  observeEtcdRequest(op: string, durationMs: number): void {
    this.#etcdLatency.observe({ op }, Math.max(0, durationMs) / 1000);
  }
  /** Adds 1 to `locksmithd_commands_total{command,result}`. */
  countCommand(command: CommandKind, result: CommandRunResult): void {
    this.#commands.inc({ command, result });
  }
  /** Adds 1 to `locksmithd_notifications_total{result}`. */
  countNotification(result: NotificationResult): void {
    this.#notifications.inc({ result });
  }

  /** The metrics in the Prometheus text format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of {@link PromDaemonMetrics.text}. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A running metrics server. */
export interface MetricsServer {
  /** The address it listens on (with the real port when port 0 was asked). */
  readonly address: ListenAddress;
  /** Stops listening and waits until the server has shut down. */
  stop(): Promise<void>;
}

/**
 * Serves `metrics` over HTTP: `GET /metrics` (and `HEAD`) answers the
 * Prometheus text format; anything else is 404. Throws one line naming `key`
 * and the address when it cannot listen (e.g. the port is taken).
 *
 * @param metrics the metrics to serve
 * @param address where to listen
 * @param key the config key of the address, for errors (default `LOCKSMITHD_METRICS_ADDR`)
 */
export function startMetricsServer(
  metrics: PromDaemonMetrics,
  address: ListenAddress,
  key = "LOCKSMITHD_METRICS_ADDR",
): MetricsServer {
  const handler = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    if (path !== "/metrics" || !["GET", "HEAD"].includes(request.method)) {
      return new Response("not found; metrics are at GET /metrics\n", {
        status: 404,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    try {
      const body = await metrics.text();
      return new Response(request.method === "HEAD" ? null : body, {
        headers: { "content-type": metrics.contentType },
      });
    } catch (error) {
      return new Response(`${oneLine(error)}\n`, { status: 500 });
    }
  };
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: address.hostname,
      port: address.port,
      onListen: () => {},
      handler,
    });
  } catch (error) {
    throw new Error(
      `${key}: cannot serve metrics on ${formatListenAddress(address)}: ${
        oneLine(error)
      }`,
    );
  }
  return {
    address: { hostname: address.hostname, port: server.addr.port },
    stop: async () => {
      await server.shutdown();
      await server.finished;
    },
  };
}
