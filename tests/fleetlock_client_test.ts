/**
 * locksmithd's FleetLock client over real HTTP: the request on the wire,
 * TLS with a CA, then real daemons (strategy `fleetlock`, the `daemon`
 * permission set, private buses) against a real `daemon.ts serve` and a
 * real etcd: steady-state at start, pre-reboot before rebooting, waiting
 * while full with backoff, never a reboot without a 2xx (server stopped,
 * answering 500), the window, Zincati's id, tokens, the probe sent after no
 * answer, calls that reach the server soon after an outage however long the
 * backoff grew; and a mixed fleet of
 * etcd-lock and fleetlock daemons sharing one semaphore through the server,
 * never more than `max` holders at any revision, each machine rebooting
 * exactly once.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { type Machine, startMachine } from "./harness/machine.ts";
import {
  type ServeProcess,
  startServeProcess,
} from "./harness/serve_process.ts";
import { makeTestCertificates } from "./harness/tls.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import { until } from "./harness/until.ts";
import { fleetIds, rollFleet } from "./harness/fleet.ts";
import { startFleetMonitor } from "./harness/fleet_monitor.ts";
import { checkHistory } from "./harness/invariants.ts";
import { FleetLockClient } from "../lib/fleetlock/client/client.ts";
import { fleetLockKey } from "../lib/fleetlock/protocol/protocol.ts";
import { DEFAULT_SEMAPHORE_KEY, semaphoreKey } from "../lib/semaphore/keys.ts";
import { parseSemaphore } from "../lib/semaphore/document.ts";
import { parseDuration } from "../lib/common/duration.ts";

const ZINCATI_BODY = (id: string, group: string) =>
  `{\n  "client_params": {\n    "id": "${id}",\n    "group": "${group}"\n  }\n}`;

/** A TCP listener that records one raw request and answers it with `answer` (or never). */
function recordOneRequest(
  answer: string | undefined,
): { port: number; request: Promise<string>; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const open: Deno.Conn[] = [];
  const request = (async () => {
    const conn = await listener.accept();
    open.push(conn);
    const buffer = new Uint8Array(65_536);
    let text = "";
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
      const end = text.indexOf("\r\n\r\n");
      const length = /content-length: (\d+)/i.exec(text);
      if (
        end >= 0 && (!length || text.length >= end + 4 + Number(length[1]))
      ) {
        break;
      }
    }
    if (answer !== undefined) {
      await conn.write(new TextEncoder().encode(answer));
      conn.close();
      open.splice(open.indexOf(conn), 1);
    }
    return text;
  })();
  return {
    port,
    request,
    close() {
      listener.close();
      for (const conn of open) conn.close();
    },
  };
}

Deno.test("the client's request on the wire is Zincati's: path joined, header, body, no Content-Type, Basic from the userinfo", async () => {
  const server = recordOneRequest(
    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
  );
  const client = new FleetLockClient({
    baseUrl: `http://zincati:t0ken@127.0.0.1:${server.port}/fleet/lock?x=1`,
    id: "975228d46dc94622b9bbe16671e2b58d",
    group: "web",
    timeoutMs: 5_000,
  });
  try {
    const answer = await client.lock(new AbortController().signal);
    assert.deepEqual(answer, { ok: true, status: 200 });
    const raw = await server.request;
    const [head, body] = raw.split("\r\n\r\n") as [string, string];
    const [requestLine, ...headerLines] = head.split("\r\n");
    assert.equal(requestLine, "POST /fleet/v1/pre-reboot HTTP/1.1");
    const headers = new Map(
      headerLines.map((l) => {
        const colon = l.indexOf(":");
        return [l.slice(0, colon).toLowerCase(), l.slice(colon + 1).trim()];
      }),
    );
    assert.equal(headers.get("fleet-lock-protocol"), "true");
    assert.equal(headers.get("content-type"), undefined);
    assert.equal(
      headers.get("authorization"),
      `Basic ${btoa("zincati:t0ken")}`,
    );
    assert.match(headers.get("user-agent") ?? "", /^locksmithd\//);
    assert.equal(
      headers.get("content-length"),
      String(ZINCATI_BODY("975228d46dc94622b9bbe16671e2b58d", "web").length),
    );
    assert.equal(body, ZINCATI_BODY("975228d46dc94622b9bbe16671e2b58d", "web"));
  } finally {
    server.close();
    await client.close();
  }
});

Deno.test("a server that does not answer in time, or not at all, is a refusal naming it, never a grant", async () => {
  const silent = recordOneRequest(undefined);
  const slow = new FleetLockClient({
    baseUrl: `http://127.0.0.1:${silent.port}/`,
    id: "node-1",
    group: "default",
    timeoutMs: 300,
  });
  const started = performance.now();
  const answer = await slow.unlock(new AbortController().signal);
  assert.ok(performance.now() - started < 3_000);
  assert.deepEqual(answer, {
    ok: false,
    status: undefined,
    kind: "timeout",
    full: false,
    uncertain: true,
    answered: false,
    message:
      `FleetLock server http://127.0.0.1:${silent.port}/v1/steady-state did not answer within 300ms`,
  });
  silent.close();
  await slow.close();
  const gone = new FleetLockClient({
    baseUrl: `http://127.0.0.1:${silent.port}/`,
    id: "node-1",
    group: "default",
  });
  const refused = await gone.lock(new AbortController().signal);
  assert.equal(refused.ok, false);
  assert.ok(!refused.ok && refused.kind === "unreachable");
  assert.match(
    (refused as { message: string }).message,
    new RegExp(
      `^FleetLock server http://127\\.0\\.0\\.1:${silent.port}/v1/pre-reboot cannot be reached: connection refused`,
    ),
  );
  await gone.close();
});

Deno.test("the probe is a GET of -/healthy with the credentials but no FleetLock header or body; any answer of the server's own is true, a gateway's 502 is not", async () => {
  const answers: [string, boolean][] = [
    [
      "HTTP/1.1 404 Not Found\r\ncontent-length: 19\r\n\r\n404 page not found\n",
      true,
    ],
    [
      'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 40\r\n\r\n{"kind":"etcd_unavailable","value":"x"}\n',
      true,
    ],
    [
      "HTTP/1.1 502 Bad Gateway\r\ncontent-length: 11\r\n\r\nBad Gateway",
      false,
    ],
  ];
  for (const [answer, expected] of answers) {
    const server = recordOneRequest(answer);
    const client = new FleetLockClient({
      baseUrl: `http://zincati:t0ken@127.0.0.1:${server.port}/fleet/`,
      id: "node-1",
      group: "default",
      timeoutMs: 5_000,
    });
    try {
      assert.equal(
        await client.probe(new AbortController().signal),
        expected,
        answer,
      );
      const [head, body] = (await server.request).split("\r\n\r\n") as [
        string,
        string,
      ];
      const [requestLine, ...headerLines] = head.split("\r\n");
      assert.equal(requestLine, "GET /fleet/-/healthy HTTP/1.1");
      const names = headerLines.map((l) =>
        l.slice(0, l.indexOf(":")).toLowerCase()
      );
      assert.ok(!names.includes("fleet-lock-protocol"), head);
      assert.ok(names.includes("authorization"), head);
      assert.equal(body, "");
    } finally {
      server.close();
      await client.close();
    }
  }
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  closed.close(); // nothing listens there any more
  const gone = new FleetLockClient({
    baseUrl: `http://127.0.0.1:${(closed.addr as Deno.NetAddr).port}/`,
    id: "node-1",
    group: "default",
  });
  assert.equal(await gone.probe(new AbortController().signal), false);
  await gone.close();
});

Deno.test("an https server is trusted with the CA given, and refused without it", async () => {
  const etcd = await startEtcd();
  const certs = await makeTestCertificates();
  const serve = await startServeProcess({
    endpoint: etcd.endpoint,
    args: ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey],
    read: [certs.dir],
  });
  try {
    assert.match(serve.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
    const trusted = new FleetLockClient({
      baseUrl: serve.url,
      id: "tls-node",
      group: "default",
      caCerts: [await Deno.readTextFile(certs.caFile)],
    });
    const grant = await trusted.lock(new AbortController().signal);
    assert.deepEqual(grant, {
      ok: true,
      status: 200,
      result: "locked",
      held: 1,
      max: 1,
    });
    assert.deepEqual(
      (await trusted.unlock(new AbortController().signal)).ok,
      true,
    );
    await trusted.close();
    const untrusted = new FleetLockClient({
      baseUrl: serve.url,
      id: "tls-node",
      group: "default",
    });
    const refused = await untrusted.lock(new AbortController().signal);
    assert.equal(refused.ok, false);
    console.log(
      `  without the CA: ${(refused as { message: string }).message}`,
    );
    assert.match(
      (refused as { message: string }).message,
      /cannot be reached: .*(certificate|UnknownIssuer)/i,
    );
    await untrusted.close();
  } finally {
    await serve.close();
    await certs.remove();
    await etcd.close();
  }
});

// ------------------------------------------------------------ real daemons

let etcd: EtcdCluster;
let raw: Etcd3;
let serve: ServeProcess;
let counter = 0;

/** A machine on strategy fleetlock, pointed at the server. */
function fleetLockMachine(
  config: Record<string, string> = {},
  id = `fl-${++counter}`,
): Promise<Machine> {
  return startMachine({
    id,
    endpoint: etcd.endpoint,
    config: {
      REBOOT_STRATEGY: "fleetlock",
      LOCKSMITHD_FLEETLOCK_URL: serve.url,
      ...config,
    },
  });
}

async function holders(key: string): Promise<string[]> {
  const text = await raw.get(key).string();
  return text === null ? [] : [...parseSemaphore(text, key).holders];
}

const PRE_FULL =
  'locksmith_fleetlock_requests_total{endpoint="pre-reboot",result="failed_lock_semaphore_full"}';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("locksmithd on strategy fleetlock against a real locksmithd serve and etcd", async (t) => {
  etcd = await startEtcd();
  raw = new Etcd3({ hosts: etcd.endpoints });
  serve = await startServeProcess({ endpoint: etcd.endpoint });
  try {
    await t.step(
      "steady-state at start, pre-reboot before the reboot, steady-state again after boot",
      async () => {
        const m = await fleetLockMachine({ LOCKSMITHD_GROUP: "web" });
        try {
          m.startDaemon();
          await m.waitForLine(
            /holds no slot \(the FleetLock server says so\): nothing to release/,
            20_000,
            true,
          );
          await m.waitForLine(
            /waiting for a reboot to be needed/,
            20_000,
            true,
          );
          assert.equal(
            await serve.sample(
              'locksmith_fleetlock_requests_total{endpoint="steady-state",result="not_held"}',
            ),
            1,
          );
          assert.match(
            m.lines.join("\n"),
            new RegExp(
              `starting: strategy fleetlock, machine ${m.id}, FleetLock server http://127\\.0\\.0\\.1:\\d+/ \\(group web, id ${m.id}\\)`,
            ),
          );
          assert.equal(await m.reboots(), 0);
          await m.needReboot();
          await m.waitForLine(/reboot requested$/, 20_000, true);
          assert.match(
            m.lines.join("\n"),
            /took a slot: pre-reboot answered 200 \(1 of 1 held\)/,
          );
          assert.deepEqual(await m.bus.logind.rebootCalls(), [false]);
          assert.deepEqual(await holders(semaphoreKey("web")), [m.id]);
          assert.ok(
            serve.lines.some((l) =>
              l.includes(`group web: ${m.id} took a slot (1/1 held)`)
            ),
          );
          await m.reboot();
          await m.waitForLine(
            /released the slot held by .*: the reboot has happened, or none was needed \(steady-state at every start\)$/,
            20_000,
            true,
          );
          assert.deepEqual(await holders(semaphoreKey("web")), []);
          assert.equal(await m.reboots(), 0, "no second reboot");
        } finally {
          await m.close();
        }
      },
    );

    await t.step(
      "a full semaphore keeps it waiting, asking again with growing gaps, until a slot is free",
      async () => {
        const key = fleetLockKey("full");
        const lock = await runCtlProcess([
          "lock",
          "someone-else",
          "--group",
          "full",
          "--endpoint",
          etcd.endpoint,
        ]);
        assert.equal(lock.code, 0, lock.stderr);
        const m = await fleetLockMachine({ LOCKSMITHD_GROUP: "full" });
        try {
          m.startDaemon();
          await m.waitForLine(
            /waiting for a reboot to be needed/,
            20_000,
            true,
          );
          const before = await serve.sample(PRE_FULL);
          await m.needReboot();
          await m.waitForLine(/no slot free for this machine/, 20_000, true);
          // Record when each pre-reboot call is answered "full".
          const seen: number[] = [];
          let count = before;
          const until = performance.now() + 17_000;
          while (performance.now() < until && seen.length < 3) {
            const now = await serve.sample(PRE_FULL);
            if (now > count) seen.push(performance.now());
            count = now;
            await sleep(100);
          }
          assert.ok(seen.length >= 3, `calls seen: ${seen.length}`);
          const gaps = [seen[1]! - seen[0]!, seen[2]! - seen[1]!];
          // 5 s, then 10 s, each with jitter in [50 %, 100 %] (and some slack).
          assert.ok(gaps[0]! >= 2_300 && gaps[0]! <= 6_500, `${gaps}`);
          assert.ok(gaps[1]! >= 4_800 && gaps[1]! <= 11_500, `${gaps}`);
          assert.equal(await m.reboots(), 0, "no reboot while full");
          assert.equal(
            m.lines.filter((l) => l.includes("no slot free")).length,
            1,
            "the wait is logged once",
          );
          assert.match(
            m.lines.find((l) => l.includes("no slot free"))!,
            /no slot free for this machine \(FleetLock server http:\/\/127\.0\.0\.1:\d+\/v1\/pre-reboot answered 409 failed_lock_semaphore_full: "all 1 slot\(s\) of group full are held; retry later"\); asking again with backoff \(5s doubling to 1m, with jitter\)/,
          );
          const unlock = await runCtlProcess([
            "unlock",
            "someone-else",
            "--group",
            "full",
            "--endpoint",
            etcd.endpoint,
          ]);
          assert.equal(unlock.code, 0, unlock.stderr);
          await m.waitForLine(/reboot requested$/, 30_000, true);
          assert.deepEqual(await holders(key), [m.id]);
        } finally {
          await m.close();
        }
      },
    );

    await t.step(
      "never a reboot without a 2xx: a server answering 500, then a server stopped; both reboot once it answers 200",
      async () => {
        const broken = await fleetLockMachine({ LOCKSMITHD_GROUP: "broken" });
        const orphan = await fleetLockMachine({ LOCKSMITHD_GROUP: "orphan" });
        try {
          broken.startDaemon();
          orphan.startDaemon();
          await Promise.all(
            [broken, orphan].map((m) =>
              m.waitForLine(
                /holds no slot \(the FleetLock server says so\)/,
                20_000,
                true,
              )
            ),
          );
          // A corrupt document: locksmith's server answers 500 internal_error.
          await raw.put(semaphoreKey("broken")).value("not a document");
          await broken.needReboot();
          await broken.waitForLine(
            /cannot take a slot: FleetLock server .* answered 500 internal_error: "the stored semaphore of group broken is corrupt/,
            20_000,
            true,
          );
          await serve.stop();
          await orphan.needReboot();
          await orphan.waitForLine(
            /cannot take a slot: FleetLock server http:\/\/127\.0\.0\.1:\d+\/v1\/pre-reboot cannot be reached: /,
            20_000,
            true,
          );
          await broken.waitForLine(
            /cannot take a slot: .*cannot be reached/,
            20_000,
            true,
          );
          // Each asks again (every failed attempt is logged) and still does
          // not reboot.
          const failures = (m: typeof broken) =>
            m.lines.filter((l) => l.includes("cannot take a slot")).length;
          const before = [failures(broken), failures(orphan)];
          assert.equal(await broken.reboots(), 0);
          assert.equal(await orphan.reboots(), 0);
          await until(
            "another attempt by each",
            () =>
              failures(broken) > before[0]! && failures(orphan) > before[1]!,
            30_000,
          );
          assert.equal(await broken.reboots(), 0);
          assert.equal(await orphan.reboots(), 0);
          const reset = await runCtlProcess([
            "reset",
            "--force",
            "--group",
            "broken",
            "--endpoint",
            etcd.endpoint,
          ]);
          assert.equal(reset.code, 0, reset.stderr);
          await serve.restart();
          await Promise.all(
            [broken, orphan].map((m) =>
              m.waitForLine(/reboot requested$/, 40_000, true)
            ),
          );
          assert.equal(await broken.reboots(), 1);
          assert.equal(await orphan.reboots(), 1);
          assert.deepEqual(await holders(semaphoreKey("broken")), [broken.id]);
          assert.deepEqual(await holders(semaphoreKey("orphan")), [orphan.id]);
        } finally {
          await broken.close();
          await orphan.close();
        }
      },
    );

    await t.step(
      "a closed reboot window sends no pre-reboot; an open one does",
      async () => {
        // Twelve hours from now: closed for the whole test.
        const hour = (new Date().getUTCHours() + 12) % 24;
        const closed = await fleetLockMachine({
          LOCKSMITHD_GROUP: "window",
          LOCKSMITHD_REBOOT_WINDOW_START: `${hour}:00`,
          LOCKSMITHD_REBOOT_WINDOW_LENGTH: "1h",
          LOCKSMITHD_REBOOT_WINDOW_TZ: "UTC",
        });
        const open = await fleetLockMachine({
          LOCKSMITHD_GROUP: "window",
          // From an hour ago to two hours ahead: open now, at any time of day.
          LOCKSMITHD_REBOOT_WINDOW_START: `${(hour + 11) % 24}:00`,
          LOCKSMITHD_REBOOT_WINDOW_LENGTH: "3h",
          LOCKSMITHD_REBOOT_WINDOW_TZ: "UTC",
        });
        try {
          closed.startDaemon();
          await closed.waitForLine(
            /waiting for a reboot to be needed/,
            20_000,
            true,
          );
          await closed.needReboot();
          await closed.waitForLine(
            /waiting for the reboot window/,
            20_000,
            true,
          );
          // Logged as the loop starts to sleep until the window opens
          // (hours away); checked again after the open one's whole run.
          assert.equal(await closed.reboots(), 0);
          assert.deepEqual(await holders(semaphoreKey("window")), []);
          assert.ok(
            !closed.lines.some((l) => l.includes("pre-reboot")),
            "no pre-reboot outside the window",
          );
          open.startDaemon();
          await open.waitForLine(
            /waiting for a reboot to be needed/,
            20_000,
            true,
          );
          await open.needReboot();
          await open.waitForLine(/reboot requested$/, 20_000, true);
          assert.deepEqual(await holders(semaphoreKey("window")), [open.id]);
          assert.equal(await closed.reboots(), 0);
          assert.ok(
            !closed.lines.some((l) => l.includes("pre-reboot")),
            "no pre-reboot outside the window",
          );
        } finally {
          await closed.close();
          await open.close();
        }
      },
    );

    await t.step(
      "with LOCKSMITHD_FLEETLOCK_ID=zincati it releases a slot Zincati took for the same machine",
      async () => {
        const machineId = "1c09ca98649c4c7abc779cd04c96812e";
        const zincati = "978a225b3d7b40e9acd7ce9b62f68444";
        const res = await fetch(`${serve.url}v1/pre-reboot`, {
          method: "POST",
          headers: { "fleet-lock-protocol": "true" },
          body: new TextEncoder().encode(ZINCATI_BODY(zincati, "default")),
        });
        assert.equal(res.status, 200, await res.text());
        assert.deepEqual(await holders(DEFAULT_SEMAPHORE_KEY), [zincati]);
        const m = await fleetLockMachine(
          { LOCKSMITHD_FLEETLOCK_ID: "zincati" },
          machineId,
        );
        try {
          m.startDaemon();
          await m.waitForLine(
            new RegExp(
              `released the slot held by ${zincati}: the reboot has happened`,
            ),
            20_000,
            true,
          );
          assert.match(
            m.lines.join("\n"),
            new RegExp(
              `FleetLock id ${zincati}: Zincati's id of machine id ${machineId}`,
            ),
          );
          assert.deepEqual(await holders(DEFAULT_SEMAPHORE_KEY), []);
        } finally {
          await m.close();
        }
      },
    );

    await t.step(
      "a configuration error (no URL, a bad id source) stops it with exit 2 and one line",
      async () => {
        const m = await startMachine({
          id: "node-1",
          endpoint: etcd.endpoint,
          config: {
            REBOOT_STRATEGY: "fleetlock",
            LOCKSMITHD_FLEETLOCK_ID: "zincati",
            LOCKSMITHD_FLEETLOCK_URL: serve.url,
          },
        });
        try {
          m.startDaemon();
          assert.equal(await m.exited(), 2);
          assert.equal(m.lines.length, 1, m.lines.join("\n"));
          assert.match(
            m.lines[0]!,
            /ERROR +LOCKSMITHD_FLEETLOCK_ID=zincati derives Zincati's id from the machine id, but LOCKSMITHD_MACHINE_ID "node-1" is not 32 hexadecimal digits \(a systemd machine id\)$/,
          );
          await Deno.writeTextFile(m.configFile, "REBOOT_STRATEGY=fleetlock\n");
          m.startDaemon();
          assert.equal(await m.exited(), 2);
          assert.match(
            m.lines.at(-1)!,
            /^locksmithd: REBOOT_STRATEGY=fleetlock \(from .*update\.conf:1\) needs LOCKSMITHD_FLEETLOCK_URL, the base URL of the FleetLock server, e\.g\. http:\/\/fleetlock\.example\.com:8080\/$/,
          );
        } finally {
          await m.close();
        }
      },
    );
  } finally {
    await serve.close();
    raw.close();
    await etcd.close();
  }
});

Deno.test("a server with tokens is reached with LOCKSMITHD_FLEETLOCK_TOKEN or user:token@ in the URL, and refuses a daemon without one", async () => {
  const cluster = await startEtcd();
  const server = await startServeProcess({
    endpoint: cluster.endpoint,
    args: ["--token", "*=s3cr3t-t0ken"],
  });
  const start = (id: string, config: Record<string, string>) =>
    startMachine({
      id,
      endpoint: cluster.endpoint,
      config: { REBOOT_STRATEGY: "fleetlock", ...config },
    });
  const url = new URL(server.url);
  const machines = [
    await start("bearer", {
      LOCKSMITHD_FLEETLOCK_URL: server.url,
      LOCKSMITHD_FLEETLOCK_TOKEN: "s3cr3t-t0ken",
    }),
    await start("basic", {
      LOCKSMITHD_FLEETLOCK_URL: `http://zincati:s3cr3t-t0ken@${url.host}/`,
    }),
    await start("none", { LOCKSMITHD_FLEETLOCK_URL: server.url }),
  ];
  try {
    for (const m of machines) m.startDaemon();
    await machines[0]!.waitForLine(/holds no slot/, 20_000, true);
    await machines[1]!.waitForLine(/holds no slot/, 20_000, true);
    const refused = await machines[2]!.waitForLine(
      /cannot release the slot/,
      20_000,
      true,
    );
    assert.match(
      refused,
      // The token is checked before the body: the answer cannot name the group.
      /cannot release the slot: FleetLock server http:\/\/127\.0\.0\.1:\d+\/v1\/steady-state answered 401 unauthorized: "this server needs a token/,
    );
    for (const m of machines) {
      assert.ok(
        !m.lines.join("\n").includes("s3cr3t"),
        "the token is never logged",
      );
    }
  } finally {
    for (const m of machines) await m.close();
    await server.close();
    await cluster.close();
  }
});

/**
 * Waits until `m` has logged `count` failures matching `pattern` (whose
 * first group is the "retrying in" delay) and returns that last delay in ms.
 */
async function nthRetry(
  m: Machine,
  pattern: RegExp,
  count: number,
): Promise<number> {
  const seen = () => m.lines.filter((l) => pattern.test(l));
  await until(
    () => `${count} lines matching ${pattern}; log:\n${m.lines.join("\n")}`,
    () => seen().length >= count,
    90_000,
  );
  return parseDuration(pattern.exec(seen()[count - 1]!)![1]!)!;
}

Deno.test("after a FleetLock server outage long enough for the backoff to grow, the waiting pre-reboot and the steady-state after boot reach the server within 8 s of its return", async (t) => {
  const cluster = await startEtcd();
  const group = "outage";
  /** When the server logged each slot taken or given back by the machine. */
  const events: { line: string; at: number }[] = [];
  const server = await startServeProcess({
    endpoint: cluster.endpoint,
    onLine: (line) => {
      if (line.includes(`group ${group}: `)) {
        events.push({ line, at: Date.now() });
      }
    },
  });
  const m = await startMachine({
    id: "outage-1",
    endpoint: cluster.endpoint,
    config: {
      REBOOT_STRATEGY: "fleetlock",
      LOCKSMITHD_FLEETLOCK_URL: server.url,
      LOCKSMITHD_GROUP: group,
    },
  });
  const reached = async (what: RegExp, backAt: number): Promise<number> => {
    await until(
      () => `the server to log ${what}; log:\n${m.lines.join("\n")}`,
      () => events.some((e) => e.at >= backAt && what.test(e.line)),
      90_000,
    );
    return events.find((e) => e.at >= backAt && what.test(e.line))!.at -
      backAt;
  };
  try {
    await t.step("pre-reboot", async () => {
      m.startDaemon();
      // Steady-state at start, answered: the pre-reboot does not wait for it.
      await m.waitForLine(
        /holds no slot \(the FleetLock server says so\)/,
        20_000,
        true,
      );
      await m.waitForLine(/waiting for a reboot to be needed/, 20_000, true);
      await server.stop();
      await m.needReboot();
      // The fourth failure in a row: 40 s with jitter, at least 20 s.
      const delay = await nthRetry(
        m,
        /cannot take a slot: .* cannot be reached: .*; retrying in (\S+)/,
        4,
      );
      assert.ok(delay >= 20_000, `the backoff grew to ${delay} ms`);
      await server.restart();
      const late = await reached(/took a slot/, Date.now());
      console.log(
        `  pre-reboot reached the server ${late} ms after it was back (the backoff was ${delay} ms)`,
      );
      assert.ok(late < 8_000, `${late} ms`);
      await m.waitForLine(/reboot requested$/, 20_000, true);
    });
    await t.step("steady-state after boot", async () => {
      await server.stop();
      await m.reboot();
      // The third failure in a row: 20 s with jitter, at least 10 s.
      const delay = await nthRetry(
        m,
        /cannot release the slot: .* cannot be reached: .*; retrying in (\S+)/,
        3,
      );
      assert.ok(delay >= 10_000, `the backoff grew to ${delay} ms`);
      await server.restart();
      const late = await reached(/released its slot/, Date.now());
      console.log(
        `  steady-state reached the server ${late} ms after it was back (the backoff was ${delay} ms)`,
      );
      assert.ok(late < 8_000, `${late} ms`);
      await m.waitForLine(/released the slot held by/, 20_000, true);
    });
  } finally {
    await m.close();
    await server.close();
    await cluster.close();
  }
});

Deno.test("a mixed fleet: etcd-lock and fleetlock daemons share one semaphore, never more than max holders, each rebooting once", async () => {
  const cluster = await startEtcd();
  const max = 2;
  const group = "mixed";
  const key = semaphoreKey(group);
  const server = await startServeProcess({
    endpoint: cluster.endpoint,
    args: ["--slots", `${group}=${max}`],
  });
  try {
    const ids = fleetIds(8);
    const onFleetLock = new Set(ids.filter((_, i) => i % 2 === 1));
    const monitor = await startFleetMonitor(cluster.endpoints, key);
    const result = await rollFleet({
      machines: ids.length,
      endpoint: cluster.endpoint,
      group,
      rebootMs: 300,
      timeoutMs: 240_000,
      configOf: (id) =>
        onFleetLock.has(id)
          ? {
            REBOOT_STRATEGY: "fleetlock",
            LOCKSMITHD_FLEETLOCK_URL: server.url,
          }
          : {} as Record<string, string>,
    });
    const timeline = await monitor.stop();
    assert.deepEqual(
      result.reboots,
      Object.fromEntries(ids.map((id) => [id, 1])),
      "every machine rebooted exactly once",
    );
    // The server applies concurrent calls in one write (group commit): a
    // write may add several holders. Everything else is checked as usual.
    const report = checkHistory(key, timeline.versions);
    const violations = report.violations.filter((v) =>
      !/ \d+ added and \d+ removed in one write$/.test(v) ||
      / 0 added and 0 removed/.test(v)
    );
    assert.deepEqual(violations, [], "the document's invariants");
    assert.ok(
      report.maxHolders <= max,
      `at most ${max} holders at any revision, saw ${report.maxHolders}`,
    );
    for (const version of timeline.versions) {
      const doc = parseSemaphore(version.value!, key);
      assert.ok(doc.holders.length <= max, `rev ${version.revision}`);
    }
    const took = new Set(timeline.takeOrder);
    assert.deepEqual([...took].sort(), [...ids].sort(), "everyone held once");
    assert.deepEqual(
      await (async () => {
        const client = new Etcd3({ hosts: cluster.endpoints });
        try {
          const text = await client.get(key).string();
          return text === null ? [] : parseSemaphore(text, key).holders;
        } finally {
          client.close();
        }
      })(),
      [],
      "no slot left held",
    );
    console.log(
      `  mixed fleet: ${
        ids.length - onFleetLock.size
      } etcd-lock + ${onFleetLock.size} fleetlock, max ${max}: ${report.versions} versions, at most ${report.maxHolders} holders; order ${
        result.order.map((id) =>
          `${id.slice(-2)}${onFleetLock.has(id) ? "F" : "E"}`
        ).join(" ")
      }`,
    );
  } finally {
    await server.close();
    await cluster.close();
  }
});
