/**
 * docs/install.md followed in a scratch root. Run as root inside
 * `unshare --mount --net --propagation private` (tests/install_guide_test.ts
 * does): `/etc`, `/usr`, `/opt` and `/var` become overlays whose writes go to
 * a tmpfs, `/run` a tmpfs, the network namespace its own loopback. There it
 * starts etcd on 127.0.0.1:2379 (without its JSON gateway, so that the
 * installed programs take the gRPC fallback with their permission sets) and
 * a private system bus with python-dbusmock's logind at
 * `/run/dbus/system_bus_socket`; runs the guide's blocks marked
 * "run by the install test" in one shell, in order; then starts each
 * installed unit's ExecStart the way systemd would (its Environment=,
 * WorkingDirectory=, User=, CacheDirectory=), with the file system read-only
 * but for the cache (ProtectSystem=strict), an empty /tmp (PrivateTmp) and
 * /home and /root hidden (ProtectHome), until locksmithd has taken a slot in
 * etcd and asked logind to reboot, and the FleetLock server has answered a
 * request from etcd. Prints `[scratch] PASS` at the end; any failure throws.
 *
 * Usage: scratch_root.ts <scratch dir> <checkout to clone>
 */

import assert from "node:assert/strict";
import { type DbusHarness, startDbus } from "./dbus.ts";
import { readLines } from "./lines.ts";

/** Starts a private system bus at /run/dbus/system_bus_socket (python-dbusmock's logind on it). */
export async function startBusHere(): Promise<DbusHarness> {
  const bus = await startDbus();
  const socket = bus.env.DBUS_SYSTEM_BUS_ADDRESS!.replace(/^unix:path=/, "");
  await sh(
    `touch /run/dbus/system_bus_socket && mount --bind ${socket} /run/dbus/system_bus_socket`,
  );
  return bus;
}

const say = (line: string) => console.log(`[scratch] ${line}`);

export async function sh(
  script: string,
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-euo", "pipefail", "-c", script],
    cwd: options.cwd,
    clearEnv: options.env !== undefined,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  const text = d.decode(out.stdout) + d.decode(out.stderr);
  assert.ok(out.success, `${script}\nexited ${out.code}:\n${text}`);
  return text;
}

/** The blocks of docs/install.md marked for this test, in order. */
export function guideBlocks(markdown: string): string[] {
  const re = /<!-- run by the install test -->\s*\n\s*```sh\n([\s\S]*?)\n```/g;
  return [...markdown.matchAll(re)].map((m) => m[1]!);
}

/** A unit file's settings (last value wins, `Environment=` accumulates). */
export function parseUnit(text: string): {
  exec: string;
  env: Record<string, string>;
  user?: string;
  cwd?: string;
  cache?: string;
} {
  const env: Record<string, string> = {};
  const one: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(raw.trim());
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if (key === "Environment") {
      const [name, ...rest] = value.split("=");
      env[name!] = rest.join("=");
    } else one[key] = value;
  }
  return {
    exec: one.ExecStart!,
    env,
    user: one.User,
    cwd: one.WorkingDirectory,
    cache: one.CacheDirectory,
  };
}

/** This machine's Deno npm cache. */
function npmCache(): string {
  const dir = Deno.env.get("DENO_DIR") ??
    `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
  return `${dir}/npm/registry.npmjs.org`;
}

export async function scratchMounts(scratch: string): Promise<void> {
  await sh(`
mount -t tmpfs tmpfs ${scratch}/upper
for d in etc usr opt var; do
  mkdir -p ${scratch}/upper/$d/up ${scratch}/upper/$d/work
  mount -t overlay overlay -o lowerdir=/$d,upperdir=${scratch}/upper/$d/up,workdir=${scratch}/upper/$d/work /$d
done
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus
ip link set lo up
# The npm registry, which this network namespace cannot reach, stood in for
# by this machine's Deno npm cache, under the cache the guide fills.
npm=/var/cache/locksmith/npm/registry.npmjs.org
mkdir -p $npm ${scratch}/upper/npm/up ${scratch}/upper/npm/work
mount -t overlay overlay -o lowerdir=${npmCache()},upperdir=${scratch}/upper/npm/up,workdir=${scratch}/upper/npm/work $npm`);
}

export async function startEtcdHere(
  scratch: string,
  gateway = false,
): Promise<Deno.ChildProcess> {
  const etcd = new Deno.Command("etcd", {
    args: [
      `--data-dir=${scratch}/etcd`,
      "--listen-client-urls=http://127.0.0.1:2379",
      "--advertise-client-urls=http://127.0.0.1:2379",
      "--listen-peer-urls=http://127.0.0.1:2380",
      "--initial-advertise-peer-urls=http://127.0.0.1:2380",
      "--initial-cluster=default=http://127.0.0.1:2380",
      `--enable-grpc-gateway=${gateway}`,
      "--log-level=error",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await sh(
      "etcdctl --endpoints=http://127.0.0.1:2379 endpoint health 2>&1 || true",
    );
    if (/is healthy/.test(ok)) return etcd;
    assert.ok(Date.now() < deadline, `etcd did not start: ${ok}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Starts a unit's ExecStart in a sandbox like the unit's, returning the
 * process and its stderr lines as they come.
 */
function startUnit(
  unit: ReturnType<typeof parseUnit>,
): { child: Deno.ChildProcess; lines: string[]; seen: Promise<void> } {
  const env = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ...Object.fromEntries(
      Object.entries(unit.env).map(([k, v]) => [
        k,
        v.replace("%b", "0123456789abcdef0123456789abcdef"),
      ]),
    ),
  };
  const cache = unit.cache ? `/var/cache/${unit.cache}` : "";
  const as = unit.user
    ? `setpriv --reuid=${unit.user} --regid=${unit.user} --init-groups`
    : "";
  const prepare = `
${
    cache
      ? `mkdir -p ${cache}${
        unit.user ? ` && chown -R ${unit.user}: ${cache}` : ""
      }`
      : ""
  }
for d in /etc /usr /opt /var; do mount --bind $d $d; mount -o remount,ro,bind $d; done
${cache ? `mount --bind ${cache} ${cache}` : ""}
mount -t tmpfs tmpfs /tmp
mount -t tmpfs -o ro tmpfs /home
mount -t tmpfs -o ro tmpfs /root
cd ${unit.cwd ?? "/"}
exec ${as} env -i ${
    Object.entries(env).map(([k, v]) => `'${k}=${v}'`).join(" ")
  } ${unit.exec}`;
  const child = new Deno.Command("unshare", {
    args: ["--mount", "--propagation", "private", "bash", "-euc", prepare],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const seen = Promise.all([
    readLines(child.stdout, (l) => lines.push(l)),
    readLines(child.stderr, (l) => lines.push(l)),
  ]).then(() => {});
  return { child, lines, seen };
}

async function waitForLine(
  lines: string[],
  re: RegExp,
  what: string,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!lines.some((l) => re.test(l))) {
    assert.ok(Date.now() < deadline, `${what}: ${lines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

if (import.meta.main) {
  const [scratch, checkout] = Deno.args;
  assert.ok(scratch && checkout, "usage: scratch_root.ts <scratch> <checkout>");
  const guide = await Deno.readTextFile(`${checkout}/docs/install.md`);
  await Deno.mkdir(`${scratch}/upper`, { recursive: true });
  await scratchMounts(scratch);
  const etcd = await startEtcdHere(scratch);
  const bus = await startBusHere();
  try {
    const blocks = guideBlocks(guide);
    assert.ok(blocks.length >= 5, `${blocks.length} blocks`);
    say(`docs/install.md: ${blocks.length} blocks, in one shell`);
    const passed = Object.fromEntries(
      [
        "HOME",
        "DENO_CERT",
        "NODE_EXTRA_CA_CERTS",
        "HTTPS_PROXY",
        "https_proxy",
        "NPM_CONFIG_REGISTRY",
      ].flatMap((n) => {
        const v = Deno.env.get(n);
        return v === undefined ? [] : [[n, v]];
      }),
    );
    const out = await sh(blocks.join("\n"), {
      cwd: checkout,
      env: {
        ...passed,
        // No deno on PATH: the guide's first step puts it there.
        PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        LOCKSMITH_GIT: checkout,
        NO_COLOR: "1",
      },
    });
    say(`guide output:\n${out.trim()}`);

    // The first set-max (step 1), with the wrapper (step 4), through gRPC.
    say(await sh("locksmithctl set-max 2 && locksmithctl status"));

    await Deno.writeTextFile("/run/reboot-required", "");
    const daemon = startUnit(
      parseUnit(
        await Deno.readTextFile("/etc/systemd/system/locksmithd.service"),
      ),
    );
    try {
      await waitForLine(
        daemon.lines,
        /reboot requested$/,
        "locksmithd did not ask logind to reboot",
      );
      assert.deepEqual(await bus.logind.rebootCalls(), [false]);
      say(`locksmithd:\n${daemon.lines.join("\n")}`);
      const status = await sh("locksmithctl status");
      assert.match(status, /Available: 1\nMax: 2\n/);
      say(`locksmithctl status:\n${status.trim()}`);
    } finally {
      stopChild(daemon.child);
      await daemon.child.status;
      await daemon.seen;
    }

    const serve = startUnit(
      parseUnit(
        await Deno.readTextFile(
          "/etc/systemd/system/locksmith-fleetlock.service",
        ),
      ),
    );
    try {
      await waitForLine(
        serve.lines,
        /serving FleetLock on http:\/\/127\.0\.0\.1:8080\//,
        "locksmithd serve did not start",
      );
      const res = await fetch("http://127.0.0.1:8080/v1/pre-reboot", {
        method: "POST",
        headers: { "fleet-lock-protocol": "true" },
        body: JSON.stringify({
          client_params: { id: "zincati-1", group: "default" },
        }),
      });
      const body = await res.text();
      assert.equal(res.status, 200, body);
      say(`locksmithd serve (as user locksmith):\n${serve.lines.join("\n")}`);
      const status = await sh("locksmithctl status");
      assert.match(status, /Available: 0\nMax: 2\n/);
    } finally {
      stopChild(serve.child);
      await serve.child.status;
      await serve.seen;
    }
    say("PASS");
  } finally {
    await bus.close();
    etcd.kill("SIGTERM");
    await etcd.status;
  }
}

/** Sends SIGTERM unless the process already ended (its output then says why). */
function stopChild(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGTERM");
  } catch {
    // it exited by itself: the assertion that failed names what it printed
  }
}
