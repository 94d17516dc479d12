/**
 * Starts real etcd servers (Debian etcd-server) on free loopback ports for
 * tests: a single member or a cluster, plain or TLS, with member control
 * (kill, pause with SIGSTOP, resume, restart from the same data dir).
 */

import { freePorts } from "./ports.ts";
import { requireProgram } from "./tools.ts";

/** GETs `url` and returns its body, giving up after `timeoutMs` (a paused member never answers). */
async function fetchText(url: string, timeoutMs: number): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const res = await fetch(url, { signal: controller.signal });
    return await res.text();
  } finally {
    clearTimeout(timer);
  }
}

/** TLS files for an etcd server. */
export interface EtcdTls {
  /** CA certificate file. */
  readonly caFile: string;
  /** Server certificate file (SAN 127.0.0.1). */
  readonly certFile: string;
  /** Server key file. */
  readonly keyFile: string;
  /** Require client certificates signed by the CA. */
  readonly clientCertAuth: boolean;
}

/** One etcd member. */
export interface EtcdMember {
  /** Member name (`m0`, `m1`, ...). */
  readonly name: string;
  /** Client URL. */
  readonly clientUrl: string;
  /** Plain-HTTP metrics URL (`/metrics`, `/health`). */
  readonly metricsUrl: string;
  /** Whether the process is running (not killed; it may be paused). */
  readonly running: boolean;
  /** Whether the process is frozen by {@link EtcdMember.pause}. */
  readonly paused: boolean;
  /** Stops the member with SIGKILL. */
  kill(): Promise<void>;
  /** Stops the member with SIGTERM. */
  stop(): Promise<void>;
  /** Freezes the member with SIGSTOP. */
  pause(): void;
  /** Thaws a paused member with SIGCONT. */
  resume(): void;
  /**
   * Starts the member; after a kill or stop, starts it again from its data
   * dir (without `--initial-cluster-state`: etcd rejoins with its own WAL).
   */
  start(): Promise<void>;
}

/** A running etcd cluster (possibly of one member). */
export interface EtcdCluster {
  /** The members, in start order. */
  readonly members: readonly EtcdMember[];
  /** Client URLs of all members. */
  readonly endpoints: string[];
  /** Comma-separated client URLs, for `--endpoint`. */
  readonly endpoint: string;
  /** Root of the data dirs. */
  readonly dir: string;
  /** Waits until every running, unpaused member answers `/health` with a leader. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** The current leader, found through the metrics endpoint (paused members are skipped). */
  leader(): Promise<EtcdMember>;
  /**
   * Waits until one running, unpaused member reports itself leader and
   * returns it (after a leader is killed or paused, the new one).
   */
  waitLeader(timeoutMs?: number): Promise<EtcdMember>;
  /** The running, unpaused members that are not the current leader. */
  followers(): Promise<EtcdMember[]>;
  /** Stops every member with SIGTERM, the leader last; the data dirs stay. */
  stopAll(): Promise<void>;
  /** Starts every stopped member from its data dir and waits until healthy. */
  startAll(timeoutMs?: number): Promise<void>;
  /** Kills every member and removes the data dirs. */
  close(): Promise<void>;
}

/** Options of {@link startEtcd}. */
export interface StartEtcdOptions {
  /** Number of members (default 1). */
  readonly members?: number;
  /** Serve clients over TLS with these files. */
  readonly tls?: EtcdTls;
  /** Extra etcd flags for every member. */
  readonly extraArgs?: readonly string[];
}

/**
 * A fresh directory for the members' data: in `/dev/shm` (RAM, so etcd's
 * fsyncs cost nothing) when Deno may write there, which takes `--allow-all`
 * (Deno guards every path under `/dev`); else in the default temp dir, as
 * under the `deno task test` flags.
 */
async function makeDataDir(): Promise<string> {
  const prefix = "locksmith-etcd-";
  try {
    return await Deno.makeTempDir({ dir: "/dev/shm", prefix });
  } catch {
    return await Deno.makeTempDir({ prefix });
  }
}

/** Starts an etcd cluster on loopback; throws with an install hint when etcd is missing. */
export async function startEtcd(
  options: StartEtcdOptions = {},
): Promise<EtcdCluster> {
  await requireProgram("etcd");
  const n = options.members ?? 1;
  const dir = await makeDataDir();
  const ports = freePorts(3 * n);
  const scheme = options.tls ? "https" : "http";
  const specs = Array.from({ length: n }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `${scheme}://127.0.0.1:${ports[3 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[3 * i + 1]}`,
    metricsUrl: `http://127.0.0.1:${ports[3 * i + 2]}`,
  }));
  const initialCluster = specs.map((s) => `${s.name}=${s.peerUrl}`).join(",");
  const token = `locksmith-test-${crypto.randomUUID()}`;

  const members = specs.map((spec) => {
    let child: Deno.ChildProcess | undefined;
    let started = false;
    let paused = false;
    const args = [
      `--name=${spec.name}`,
      `--data-dir=${dir}/${spec.name}`,
      `--listen-client-urls=${spec.clientUrl}`,
      `--advertise-client-urls=${spec.clientUrl}`,
      `--listen-peer-urls=${spec.peerUrl}`,
      `--initial-advertise-peer-urls=${spec.peerUrl}`,
      `--listen-metrics-urls=${spec.metricsUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-token=${token}`,
      "--initial-cluster-state=new",
      "--logger=zap",
      "--log-outputs=stderr",
      "--log-level=error",
      ...(options.tls
        ? [
          `--cert-file=${options.tls.certFile}`,
          `--key-file=${options.tls.keyFile}`,
          // etcd requires client certificates whenever it has a trusted CA.
          ...(options.tls.clientCertAuth
            ? [
              `--trusted-ca-file=${options.tls.caFile}`,
              "--client-cert-auth=true",
            ]
            : []),
        ]
        : []),
      ...(options.extraArgs ?? []),
    ];
    /** Ends the process with `signal` (thawing it first, so a paused one can act on it). */
    const end = async (signal: Deno.Signal) => {
      if (!child) return;
      const c = child;
      child = undefined;
      paused = false;
      try {
        c.kill("SIGCONT");
        c.kill(signal);
      } catch { /* already gone */ }
      await c.status;
    };
    const member: EtcdMember = {
      name: spec.name,
      clientUrl: spec.clientUrl,
      metricsUrl: spec.metricsUrl,
      get running() {
        return child !== undefined;
      },
      get paused() {
        return paused;
      },
      start() {
        if (child) return Promise.resolve();
        const log = Deno.openSync(`${dir}/${spec.name}.log`, {
          append: true,
          create: true,
        });
        child = new Deno.Command("etcd", {
          args: started
            ? args.filter((a) => !a.startsWith("--initial-cluster-state"))
            : args,
          stdin: "null",
          stdout: "null",
          stderr: "piped",
        }).spawn();
        started = true;
        child.stderr.pipeTo(log.writable).catch(() => {});
        return Promise.resolve();
      },
      kill: () => end("SIGKILL"),
      stop: () => end("SIGTERM"),
      pause() {
        if (!child) return;
        child.kill("SIGSTOP");
        paused = true;
      },
      resume() {
        if (!child) return;
        child.kill("SIGCONT");
        paused = false;
      },
    };
    return member;
  });

  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    endpoint: members.map((m) => m.clientUrl).join(","),
    dir,
    async waitHealthy(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (const m of members.filter((m) => m.running && !m.paused)) {
        while (true) {
          try {
            const body = JSON.parse(
              await fetchText(`${m.metricsUrl}/health`, 1_000),
            ) as { health?: string };
            if (body.health === "true") break;
          } catch { /* not up yet */ }
          if (Date.now() > deadline) {
            const log = await Deno.readTextFile(`${dir}/${m.name}.log`).catch(
              () => "",
            );
            throw new Error(
              `etcd member ${m.name} not healthy after ${timeoutMs} ms; log tail:\n${
                log.slice(-2000)
              }`,
            );
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
    async leader() {
      for (const m of members.filter((m) => m.running && !m.paused)) {
        const text = await fetchText(`${m.metricsUrl}/metrics`, 2_000)
          .catch(() => "");
        if (/^etcd_server_is_leader 1$/m.test(text)) return m;
      }
      throw new Error("no etcd member is leader");
    },
    async waitLeader(timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (true) {
        try {
          return await cluster.leader();
        } catch (error) {
          if (Date.now() > deadline) throw error;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async followers() {
      const leader = await cluster.leader();
      return members.filter((m) => m.running && !m.paused && m !== leader);
    },
    async stopAll() {
      // One by one, the leader last: a leader stopped while its peers stop
      // too waits seconds for a leadership transfer that cannot happen.
      const leader = await cluster.leader().catch(() => undefined);
      for (const m of members.filter((m) => m !== leader)) await m.stop();
      await leader?.stop();
    },
    async startAll(timeoutMs = 20_000) {
      await Promise.all(members.map((m) => m.start()));
      await cluster.waitHealthy(timeoutMs);
    },
    async close() {
      await Promise.all(members.map((m) => m.kill()));
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    await Promise.all(members.map((m) => m.start()));
    await cluster.waitHealthy();
  } catch (error) {
    await cluster.close();
    throw error;
  }
  return cluster;
}
