/**
 * `locksmithd serve` (`daemon.ts serve`, the FleetLock server) as a real
 * subprocess with the `serve` permission set of deno.json, on a port of
 * loopback, for the tests of locksmithd's FleetLock client and for
 * `deno task demo --fleetlock`. It can be stopped and started again on the
 * same port.
 */

import { programFlags, REPO_ROOT } from "./permissions.ts";
import { readLines } from "./lines.ts";

/** Options of {@link startServeProcess}. */
export interface ServeProcessOptions {
  /** etcd endpoints, comma separated (`LOCKSMITHD_ENDPOINT`). */
  readonly endpoint: string;
  /** More arguments after `serve` (e.g. `--slots`, `--token`, `--tls-cert`). */
  readonly args?: readonly string[];
  /** Paths the server must read besides the set's (TLS files). */
  readonly read?: readonly string[];
  /** Port to listen on (default: a free one, chosen by the server). */
  readonly port?: number;
  /** Called with each log line of the server, as it comes. */
  readonly onLine?: (line: string) => void;
  /** More environment variables (e.g. `LOCKSMITHD_FLEETLOCK_SLOTS`). */
  readonly env?: Readonly<Record<string, string>>;
}

/** A running (or stopped) server. */
export interface ServeProcess {
  /** `http(s)://127.0.0.1:<port>/`, the base URL for clients. */
  readonly url: string;
  /** The port, kept across restarts. */
  readonly port: number;
  /** The process id of the running server. */
  readonly pid: number;
  /** Every log line of every run, in order. */
  readonly lines: string[];
  /** The Prometheus text of `GET /metrics`. */
  metrics(): Promise<string>;
  /** The value of one sample of the metrics, e.g. `locksmith_fleetlock_requests_total{endpoint="pre-reboot",result="full"}`; 0 when absent. */
  sample(name: string): Promise<number>;
  /** Stops the server with `signal` (default SIGTERM) and returns its exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  /** Starts it again on the same port (after {@link ServeProcess.stop}). */
  restart(): Promise<void>;
  /** Kills it if it runs. */
  close(): Promise<void>;
}

const STARTED = /serving FleetLock on (https?):\/\/127\.0\.0\.1:(\d+)\//;

/** Starts `daemon.ts serve` and waits until it serves. */
export async function startServeProcess(
  options: ServeProcessOptions,
): Promise<ServeProcess> {
  const lines: string[] = [];
  let child: Deno.ChildProcess | undefined;
  let pump: Promise<void> = Promise.resolve();
  let port = options.port ?? 0;
  let scheme = "http";

  const launch = async (): Promise<void> => {
    const run = lines.length;
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...programFlags("serve", { read: [...(options.read ?? [])] }),
        `${REPO_ROOT}daemon.ts`,
        "serve",
        "--listen",
        `127.0.0.1:${port}`,
        ...(options.args ?? []),
      ],
      cwd: REPO_ROOT,
      clearEnv: true,
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        NO_COLOR: "1",
        LOCKSMITHD_ENDPOINT: options.endpoint,
        ...options.env,
      },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    pump = readLines(child.stderr, (line) => {
      lines.push(line);
      options.onLine?.(line);
    }, (rest) => lines.push(rest));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const match = lines.slice(run).map((l) => STARTED.exec(l)).find((m) =>
        m !== null
      );
      if (match) {
        scheme = match[1] as string;
        port = Number(match[2]);
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(`serve did not start; log:\n${lines.join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const stop = async (signal: Deno.Signal = "SIGTERM"): Promise<number> => {
    if (!child) return 0;
    const c = child;
    try {
      c.kill(signal);
    } catch { /* exited */ }
    const status = await c.status;
    await pump;
    child = undefined;
    return status.code;
  };

  await launch();
  const server: ServeProcess = {
    get url() {
      return `${scheme}://127.0.0.1:${port}/`;
    },
    get port() {
      return port;
    },
    get pid() {
      if (!child) throw new Error("the server is not running");
      return child.pid;
    },
    lines,
    async metrics() {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      return await response.text();
    },
    async sample(name: string) {
      const text = await server.metrics();
      const line = text.split("\n").find((l) => l.startsWith(`${name} `));
      return line === undefined ? 0 : Number(line.slice(name.length + 1));
    },
    stop,
    restart: launch,
    async close() {
      await stop("SIGKILL").catch(() => 0);
    },
  };
  return server;
}
