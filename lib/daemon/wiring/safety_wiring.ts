/**
 * The safe-reboot parts of locksmithd's wiring (`daemon_main.ts`): the run
 * permission of the configured commands checked at start, the metrics
 * server (prom-client loaded only when `LOCKSMITHD_METRICS_ADDR` is set),
 * the notifier, the window gauge kept current, and the rebooter (logind or
 * the reboot command).
 *
 * @module
 */

import { UsageError } from "../../common/errors.ts";
import { type ParsedCommand, runPermissionError } from "../../host/command.ts";
import { commandEnv } from "../../host/command_run.ts";
import { CommandRebooter } from "../safety/command_rebooter.ts";
import type { DaemonConfig } from "../../config/config.ts";
import { windowState } from "../loop/decisions.ts";
import type { DaemonMetrics } from "../observe/metrics_port.ts";
import { formatListenAddress } from "../../common/listen_address.ts";
import { Notifier } from "../observe/notify.ts";
import type { Clock, DaemonLog, Rebooter } from "../loop/ports.ts";
import type { RebootSchedule } from "../../schedule/schedule.ts";

/** The configured commands, in the order of the key table. */
export function configuredCommands(config: DaemonConfig): ParsedCommand[] {
  return [config.preRebootCheck, config.rebootCommand, config.healthCheck]
    .filter((c): c is ParsedCommand => c !== undefined);
}

/**
 * Checks at start that Deno's run permission names every configured
 * command's program: a missing one is a configuration error (exit status
 * 2) naming the key, the program, and the one `--allow-run` list that
 * covers every command.
 */
export function checkRunPermissions(config: DaemonConfig): void {
  const commands = configuredCommands(config);
  for (const command of commands) {
    const refused = runPermissionError(command, commands);
    if (refused !== undefined) throw new UsageError(refused.message);
  }
}

/** Metrics served over HTTP, and how to stop serving them. */
export interface ServedMetrics {
  /** Where the loop sets state and counters. */
  readonly metrics: DaemonMetrics;
  /** Stops the server. */
  stop(): Promise<void>;
}

/**
 * Serves Prometheus metrics on `config.metricsAddress`, importing
 * prom-client only now; throws one line naming the key when it cannot
 * listen.
 */
export async function serveMetrics(
  config: DaemonConfig,
  log: DaemonLog,
): Promise<ServedMetrics | undefined> {
  const address = config.metricsAddress;
  if (address === undefined) return undefined;
  const { PromDaemonMetrics, startMetricsServer } = await import(
    "../observe/daemon_metrics.ts"
  );
  const metrics = new PromDaemonMetrics();
  const server = startMetricsServer(metrics, address);
  log.info(
    `serving metrics on http://${formatListenAddress(server.address)}/metrics`,
  );
  return { metrics, stop: () => server.stop() };
}

/** The notifier of `config.notifyUrl`, counting its results in `metrics`. */
export function openNotifier(
  config: DaemonConfig,
  machineId: string,
  metrics: DaemonMetrics,
  log: DaemonLog,
): Notifier | undefined {
  if (config.notifyUrl === undefined) return undefined;
  const notifier = new Notifier({
    url: config.notifyUrl,
    machine: machineId,
    group: config.group,
    log,
    onResult: (result) => metrics.countNotification(result),
  });
  log.info(
    `notifying events to ${new URL(config.notifyUrl).origin} (path not shown)`,
  );
  return notifier;
}

/**
 * Keeps `locksmithd_window_open` current while the daemon runs: sets it
 * now and again at every opening and closing of the schedule, until
 * `signal` aborts. Without a schedule the window is always open.
 */
export async function trackWindowOpen(
  schedule: RebootSchedule | undefined,
  metrics: DaemonMetrics,
  clock: Clock,
  signal: AbortSignal,
): Promise<void> {
  const horizonMs = 86_400_000;
  while (!signal.aborted) {
    const now = clock.now();
    const state = windowState(schedule, now);
    metrics.setWindowOpen(state.open);
    if (schedule === undefined) return;
    const next = state.open ? state.closesAt : state.opensAt;
    const wait = next === undefined
      ? horizonMs
      : Math.min(horizonMs, next.getTime() - now.getTime());
    if (!await clock.sleep(Math.max(1_000, wait), signal)) return;
  }
}

/**
 * What reboots the machine: the reboot command when configured (logind
 * still counts the sessions), else logind.
 */
export function chooseRebooter(
  config: DaemonConfig,
  logind: Rebooter,
  machineId: string,
  metrics: DaemonMetrics,
  log: DaemonLog,
): Rebooter {
  if (config.rebootCommand === undefined) return logind;
  return new CommandRebooter({
    command: config.rebootCommand,
    timeoutMs: config.commandTimeoutMs,
    env: commandEnv(machineId, config.group ?? ""),
    sessions: logind,
    log,
    onRun: (result) => metrics.countCommand("reboot-command", result),
  });
}
