/**
 * A simulated machine: a private system bus (logind mock, update_engine
 * stand-in) and a real locksmithd subprocess started with the `daemon`
 * permission set of deno.json, plus the machine's temp dir (bus socket,
 * config, sentinel). "Rebooting" it means: stop the daemon, clear the
 * need-reboot status and the recorded Reboot calls, start the daemon again.
 * Used by the daemon tests, the fleet test and `deno task demo`.
 */

import { type DbusHarness, startDbus } from "./dbus.ts";
import { programFlags, REPO_ROOT } from "./permissions.ts";
import { IDLE, NEED_REBOOT } from "../../lib/dbus/update_engine.ts";
import { readLines } from "./lines.ts";

/**
 * The whole environment of a locksmithd child on `bus`: a minimal base, the
 * bus address and the given config keys.
 */
export function daemonEnvironment(
  bus: Pick<DbusHarness, "env">,
  config: Record<string, string>,
): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    NO_COLOR: "1",
    ...bus.env,
    ...config,
  };
}

/** Options of {@link startMachine}. */
export interface MachineOptions {
  /** Holder id (`LOCKSMITHD_MACHINE_ID`). */
  readonly id: string;
  /** Comma-separated etcd endpoints (`LOCKSMITHD_ENDPOINT`). */
  readonly endpoint: string;
  /** Extra config keys for the machine's update.conf (e.g. REBOOT_STRATEGY). */
  readonly config?: Record<string, string>;
  /** Start with update_engine on the bus (default true). */
  readonly updateEngine?: boolean;
  /** Environment variables for the daemon, over the harness's own (e.g. another sentinel). */
  readonly env?: Record<string, string>;
  /** Run this command instead of `deno run daemon.ts` (a compiled locksmithd). */
  readonly command?: readonly string[];
  /** Called with each log line of the daemon, as it comes. */
  readonly onLine?: (line: string, machine: Machine) => void;
  /** Programs added to the daemon's permission set as `--allow-run` (its commands). */
  readonly allowRun?: readonly string[];
  /** Paths added to the daemon's read permission beside the machine's directory. */
  readonly allowRead?: readonly string[];
  /** Give the logind mock the wall calls (`SetWallMessage`, `ScheduleShutdown`, …; default true). */
  readonly logindWall?: boolean;
}

/** One simulated machine. */
export interface Machine {
  /** Holder id. */
  readonly id: string;
  /** The machine's private bus and mocks. */
  readonly bus: DbusHarness;
  /** Path of the update.conf the daemon reads. */
  readonly configFile: string;
  /** Path of the reboot sentinel file. */
  readonly sentinel: string;
  /** Every log line of every daemon run, in order. */
  readonly lines: string[];
  /** Whether a daemon process runs. */
  readonly running: boolean;
  /** Starts the daemon (no-op when it runs). */
  startDaemon(extraArgs?: string[]): void;
  /** Sends `signal` to the daemon (it keeps running unless the signal stops it). */
  signal(signal: Deno.Signal): void;
  /** Stops the daemon with `signal` (default SIGTERM) and returns its exit code. */
  stopDaemon(signal?: Deno.Signal): Promise<number>;
  /** Resolves with the daemon's exit code once it exits on its own. */
  exited(): Promise<number>;
  /** Resolves with the first line (from now on, or already seen when `past`) matching `pattern`. */
  waitForLine(
    pattern: RegExp,
    timeoutMs?: number,
    past?: boolean,
  ): Promise<string>;
  /** Makes update_engine report that a reboot is needed (status and signal). */
  needReboot(): Promise<void>;
  /** Number of Reboot calls logind received so far. */
  reboots(): Promise<number>;
  /** Simulates the reboot: stop the daemon, clear need-reboot and reboot calls, start it again on a new boot id. */
  reboot(): Promise<void>;
  /** Stops everything and removes the temp dir. */
  close(): Promise<void>;
}

/** Starts a machine's bus; the daemon is started by {@link Machine.startDaemon}. */
export async function startMachine(options: MachineOptions): Promise<Machine> {
  const bus = await startDbus({
    updateEngine: options.updateEngine ?? true,
    logindWall: options.logindWall ?? true,
  });
  const configFile = `${bus.dir}/update.conf`;
  const sentinel = `${bus.dir}/reboot-required`;
  const config = {
    REBOOT_STRATEGY: "etcd-lock",
    LOCKSMITHD_LOGIN_DELAY: "0",
    ...options.config,
  };
  await Deno.writeTextFile(
    configFile,
    Object.entries(config).map(([k, v]) => `${k}=${v}\n`).join(""),
  );
  const lines: string[] = [];
  const listeners = new Set<(line: string) => void>();
  let child: Deno.ChildProcess | undefined;
  let pump: Promise<void> = Promise.resolve();
  let boot = 1;

  const machine: Machine = {
    id: options.id,
    bus,
    configFile,
    sentinel,
    lines,
    get running() {
      return child !== undefined;
    },
    startDaemon(extraArgs: string[] = []) {
      if (child) return;
      const [program, ...programArgs] = options.command ??
        [
          Deno.execPath(),
          "run",
          ...programFlags("daemon", {
            read: [bus.dir, ...(options.allowRead ?? [])],
            write: [bus.dir],
            run: [...(options.allowRun ?? [])],
          }),
          `${REPO_ROOT}daemon.ts`,
        ];
      child = new Deno.Command(program!, {
        args: [...programArgs, "--config", configFile, ...extraArgs],
        cwd: REPO_ROOT,
        clearEnv: true,
        env: daemonEnvironment(bus, {
          LOCKSMITHD_MACHINE_ID: options.id,
          LOCKSMITHD_ENDPOINT: options.endpoint,
          LOCKSMITHD_REBOOT_SENTINEL: sentinel,
          LOCKSMITHD_BOOT_ID: `${options.id}-boot-${boot}`,
          ...options.env,
        }),
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      pump = readLines(child.stderr, (line) => {
        lines.push(line);
        options.onLine?.(line, machine);
        for (const l of listeners) l(line);
      }, (rest) => lines.push(rest));
    },
    signal(signal: Deno.Signal) {
      child?.kill(signal);
    },
    async stopDaemon(signal: Deno.Signal = "SIGTERM") {
      if (!child) return 0;
      const c = child;
      try {
        c.kill(signal);
      } catch { /* already exited */ }
      const status = await c.status;
      await pump;
      child = undefined;
      return status.code;
    },
    async exited() {
      if (!child) throw new Error("no daemon runs");
      const c = child;
      const status = await c.status;
      await pump;
      if (child === c) child = undefined;
      return status.code;
    },
    waitForLine(pattern: RegExp, timeoutMs = 20_000, past = false) {
      if (past) {
        const seen = lines.find((l) => pattern.test(l));
        if (seen !== undefined) return Promise.resolve(seen);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(listener);
          reject(
            new Error(
              `${options.id}: no log line matching ${pattern} within ${timeoutMs} ms; log:\n${
                lines.join("\n")
              }`,
            ),
          );
        }, timeoutMs);
        const listener = (line: string) => {
          if (!pattern.test(line)) return;
          clearTimeout(timer);
          listeners.delete(listener);
          resolve(line);
        };
        listeners.add(listener);
      });
    },
    async needReboot() {
      await bus.updateEngine.emit({ currentOperation: NEED_REBOOT });
    },
    async reboots() {
      return (await bus.logind.rebootCalls()).length;
    },
    async reboot() {
      await machine.stopDaemon();
      boot++;
      bus.updateEngine.setStatus({ currentOperation: IDLE });
      await Deno.remove(sentinel).catch(() => {});
      await bus.logind.clearCalls();
      machine.startDaemon();
    },
    async close() {
      await machine.stopDaemon("SIGKILL").catch(() => 0);
      await bus.close();
    },
  };
  return machine;
}
