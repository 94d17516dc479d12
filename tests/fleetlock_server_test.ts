/**
 * The FleetLock server over real HTTP against a real etcd: every error
 * path, idempotency, a storm on few slots, conflicts with other writers,
 * hostile HTTP, tokens, TLS, graceful shutdown, health and metrics, and
 * `daemon.ts serve` run with exactly the `serve` permission set.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { startServeProcess } from "./harness/serve_process.ts";
import { keyHistory } from "./harness/history.ts";
import {
  checkHistory,
  type HistoryReport,
  type SeenOperation,
} from "./harness/invariants.ts";
import { grpcStarted } from "./harness/metrics.ts";
import { makeTestCertificates } from "./harness/tls.ts";
import { rawExchange } from "./harness/raw_http.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import { programFlags, REPO_ROOT } from "./harness/permissions.ts";
import {
  type FleetLockServer,
  startFleetLockServer,
} from "../lib/serve/server.ts";
import {
  parseServeArgs,
  resolveServeOptions,
} from "../lib/serve/serve_options.ts";
import {
  fleetLockKey,
  semaphoreGroupOf,
} from "../lib/fleetlock/protocol/protocol.ts";
import { openEtcdLockStore } from "../lib/etcd/open.ts";
import { lockSlot, unlockSlot } from "../lib/semaphore/lock_store.ts";
import { parseSemaphore } from "../lib/semaphore/document.ts";
import { SemaphoreRefusedError } from "../lib/common/errors.ts";

const ZINCATI_ID = "975228d46dc94622b9bbe16671e2b58d";

/** Zincati's body: serde_json pretty-printed, `id` before `group`, no trailing newline. */
function zincatiBody(id: string, group = "default"): string {
  return `{\n  "client_params": {\n    "id": ${
    JSON.stringify(id)
  },\n    "group": ${JSON.stringify(group)}\n  }\n}`;
}

interface TestServer {
  readonly server: FleetLockServer;
  readonly port: number;
  /** Groups whose store was opened, in order. */
  readonly opened: string[];
  /** Log lines. */
  readonly lines: string[];
  /** POSTs like Zincati: a byte body, so no Content-Type. */
  call(
    endpoint: "pre-reboot" | "steady-state",
    id: string,
    group?: string,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: string }>;
  get(path: string): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

async function startServer(
  etcd: EtcdCluster,
  args: string[] = [],
  extra: { timeoutMs?: number; tls?: { cert: string; key: string } } = {},
): Promise<TestServer> {
  const opened: string[] = [];
  const lines: string[] = [];
  const options = resolveServeOptions(
    parseServeArgs(["--listen", "127.0.0.1:0", ...args]).values,
    {},
  );
  const server = await startFleetLockServer({
    options,
    tls: extra.tls,
    openStore: (group) => {
      opened.push(group);
      return openEtcdLockStore(
        { endpoints: etcd.endpoints, timeoutMs: extra.timeoutMs ?? 5_000 },
        semaphoreGroupOf(group),
      );
    },
    log: {
      info: (m) => lines.push(`INFO ${m}`),
      warn: (m) => lines.push(`WARN ${m}`),
      error: (m) => lines.push(`ERROR ${m}`),
    },
  });
  const client = Deno.createHttpClient({});
  const encoder = new TextEncoder();
  return {
    server,
    port: server.addr.port,
    opened,
    lines,
    async call(endpoint, id, group = "default", headers = {}) {
      const res = await fetch(`${server.url}v1/${endpoint}`, {
        method: "POST",
        client,
        headers: { "fleet-lock-protocol": "true", ...headers },
        body: encoder.encode(zincatiBody(id, group)),
      });
      return { status: res.status, body: await res.text() };
    },
    async get(path) {
      const res = await fetch(`${server.url}${path}`, { client });
      return { status: res.status, body: await res.text() };
    },
    async close() {
      await server.shutdown();
      client.close();
    },
  };
}

async function storedDoc(raw: Etcd3, group: string) {
  const text = await raw.get(fleetLockKey(group)).string();
  return text === null ? undefined : parseSemaphore(text, fleetLockKey(group));
}

async function revisionOf(raw: Etcd3): Promise<number> {
  const res = await raw.get("any-key").exec();
  return Number(res.header.revision);
}

/**
 * {@link checkHistory} for a server that batches. One write may add or
 * remove several holders (never none: a write that changes nothing is still
 * a violation). A lock and an unlock of one id in one batch cancel out and
 * write nothing, so per id the successes missing from the history must come
 * in lock and unlock pairs; a success the history lacks otherwise, or a
 * transition nobody saw succeed, is a violation. The rest is checked as for
 * single writers.
 */
async function checkBatchedHistory(
  etcd: EtcdCluster,
  group: string,
  seen?: readonly SeenOperation[],
): Promise<HistoryReport> {
  const key = fleetLockKey(group);
  const report = checkHistory(key, await keyHistory(etcd.endpoints, key));
  const violations = report.violations.filter((v) => {
    const m = / (\d+) added and (\d+) removed in one write$/.exec(v);
    return m === null || Number(m[1]) + Number(m[2]) === 0;
  });
  const expected = new Map<string, { lock: number; unlock: number }>();
  for (const { op, id } of seen ?? []) {
    const c = expected.get(id) ?? { lock: 0, unlock: 0 };
    c[op]++;
    expected.set(id, c);
  }
  for (
    const id of new Set([...expected.keys(), ...report.transitions.keys()])
  ) {
    if (seen === undefined) break;
    const e = expected.get(id) ?? { lock: 0, unlock: 0 };
    const h = report.transitions.get(id) ?? { lock: 0, unlock: 0 };
    const cancelled = e.lock - h.lock;
    if (cancelled < 0 || e.unlock - h.unlock !== cancelled) {
      violations.push(
        `${id}: clients saw ${e.lock} lock(s) and ${e.unlock} unlock(s) succeed, history has ${h.lock} and ${h.unlock}`,
      );
    }
  }
  return { ...report, violations };
}

/** The transition a successful call made, read from the server's answer. */
function transition(id: string, body: string): SeenOperation[] {
  if (body.includes(" took a slot ")) return [{ op: "lock", id }];
  if (body.includes(" released its slot ")) return [{ op: "unlock", id }];
  return [];
}

function kindOf(body: string): string {
  return JSON.parse(body).kind;
}

Deno.test("FleetLock server against a real etcd", async (t) => {
  const etcd = await startEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoints });
  const metricsUrl = etcd.members[0]!.metricsUrl;
  const main = await startServer(etcd, [
    "--slots",
    "storm=3,web=2",
    "--read-timeout",
    "300ms",
  ]);
  try {
    await t.step(
      "Zincati's exact request, without Content-Type, takes a slot that locksmithctl shows",
      async () => {
        const body = zincatiBody(ZINCATI_ID);
        const response = await rawExchange(main.port, [
          "POST /v1/pre-reboot HTTP/1.1\r\n" +
          "fleet-lock-protocol: true\r\n" +
          "accept: */*\r\n" +
          `host: 127.0.0.1:${main.port}\r\n` +
          `content-length: ${new TextEncoder().encode(body).length}\r\n\r\n` +
          body,
        ]);
        assert.equal(response?.status, 200, response?.body ?? "no response");
        assert.deepEqual((await storedDoc(raw, "default"))?.holders, [
          ZINCATI_ID,
        ]);
        const status = await runCtlProcess([
          "--endpoint",
          etcd.endpoint,
          "status",
        ]);
        assert.equal(status.code, 0, status.stderr);
        assert.match(status.stdout, new RegExp(`^${ZINCATI_ID}$`, "m"));
      },
    );

    await t.step(
      "calls are idempotent: one lock and one unlock in the key's history",
      async () => {
        assert.equal((await main.call("pre-reboot", ZINCATI_ID)).status, 200);
        assert.equal((await main.call("steady-state", ZINCATI_ID)).status, 200);
        assert.equal((await main.call("steady-state", ZINCATI_ID)).status, 200);
        const report = await checkBatchedHistory(etcd, "default");
        assert.deepEqual(report.violations, []);
        assert.deepEqual(report.transitions.get(ZINCATI_ID), {
          lock: 1,
          unlock: 1,
        });
      },
    );

    await t.step(
      "a call that changes nothing writes nothing and costs at most one etcd request",
      async () => {
        assert.equal(
          (await main.call("pre-reboot", "holder", "web")).status,
          200,
        );
        const revision = await revisionOf(raw);
        const before = await grpcStarted(metricsUrl, ["Range", "Txn", "Put"]);
        for (let i = 0; i < 10; i++) {
          assert.equal(
            (await main.call("steady-state", `nobody-${i}`, "web")).status,
            200,
          );
          assert.equal(
            (await main.call("pre-reboot", "holder", "web")).status,
            200,
          );
        }
        const requests =
          (await grpcStarted(metricsUrl, ["Range", "Txn", "Put"])) - before;
        assert.ok(requests <= 20, `${requests} etcd requests for 20 calls`);
        // revisionOf itself is a Range, not a write: the revision must not move.
        assert.equal(await revisionOf(raw), revision);
      },
    );

    await t.step(
      "100 parallel pre-reboot calls on 3 slots: exactly 3 succeed, never more holders",
      async () => {
        const results = await Promise.all(
          Array.from(
            { length: 100 },
            (_, i) => main.call("pre-reboot", `m${i}`, "storm"),
          ),
        );
        const statuses = results.map((r) => r.status);
        assert.equal(statuses.filter((s) => s === 200).length, 3);
        assert.equal(statuses.filter((s) => s === 409).length, 97);
        for (const r of results.filter((r) => r.status === 409)) {
          assert.equal(kindOf(r.body), "failed_lock_semaphore_full");
        }
        const seen = results.flatMap((r, i) => transition(`m${i}`, r.body));
        assert.equal(seen.length, 3);
        const report = await checkBatchedHistory(etcd, "storm", seen);
        assert.deepEqual(report.violations, []);
        assert.equal(report.maxHolders, 3);
        assert.equal((await storedDoc(raw, "storm"))?.max, 3);
      },
    );

    await t.step("one long-lived store per group, not per request", () => {
      assert.deepEqual([...main.opened].sort(), ["default", "storm", "web"]);
    });

    await t.step(
      "compare-and-swap conflicts with other writers never give a 500",
      async () => {
        const second = await startServer(etcd, ["--slots", "race=4"]);
        const outsider = await openEtcdLockStore(
          { endpoints: etcd.endpoints, timeoutMs: 5_000 },
          "race",
        );
        let stop = false;
        const seen: SeenOperation[] = [];
        let conflicts = 0;
        const meddling = (async () => {
          let n = 0;
          while (!stop) {
            const id = `outsider-${n++ % 2}`;
            try {
              await lockSlot(outsider, id);
              seen.push({ op: "lock", id });
              await unlockSlot(outsider, id);
              seen.push({ op: "unlock", id });
            } catch (error) {
              if (!(error instanceof SemaphoreRefusedError)) throw error;
            }
          }
        })();
        try {
          const statuses = await Promise.all(
            Array.from({ length: 400 }, (_, i) => {
              const server = i % 2 === 0 ? main : second;
              const endpoint = i % 3 === 0 ? "steady-state" : "pre-reboot";
              return server.call(endpoint, `r${i % 20}`, "race").then((r) => {
                seen.push(...transition(`r${i % 20}`, r.body));
                return r.status;
              });
            }),
          );
          assert.deepEqual(
            statuses.filter((s) => s !== 200 && s !== 409),
            [],
            "only 200 and 409",
          );
          for (const server of [main, second]) {
            const metrics = (await server.get("metrics")).body;
            conflicts += Number(
              /^locksmith_fleetlock_etcd_conflicts_total (\d+)$/m.exec(metrics)
                ?.[1],
            );
          }
        } finally {
          stop = true;
          await meddling;
          await outsider.close();
          await second.close();
        }
        const report = await checkBatchedHistory(etcd, "race", seen);
        assert.deepEqual(report.violations, []);
        assert.ok(report.maxHolders <= 4);
        assert.ok(seen.length > 10, `only ${seen.length} transitions`);
        assert.ok(
          conflicts > 0,
          "the race had conflicts, and they were retried",
        );
      },
    );

    await t.step("protocol errors are 4xx {kind, value} JSON", async () => {
      const post = (
        path: string,
        body: string,
        headers: Record<string, string>,
      ) =>
        fetch(`${main.server.url}${path.slice(1)}`, {
          method: "POST",
          headers,
          body: new TextEncoder().encode(body),
        }).then(async (r) => ({
          status: r.status,
          type: r.headers.get("content-type"),
          allow: r.headers.get("allow"),
          body: await r.text(),
        }));
      const fl = { "fleet-lock-protocol": "true" };
      const cases: [string, string, Record<string, string>, number, string][] =
        [
          ["/v1/pre-reboot", zincatiBody("a"), {}, 400, "bad_request"],
          [
            "/v1/pre-reboot",
            zincatiBody("a"),
            { "fleet-lock-protocol": "false" },
            400,
            "bad_request",
          ],
          ["/v1/pre-reboot", "not json", fl, 400, "bad_request"],
          [
            "/v1/pre-reboot",
            '{"client_params":{"id":1,"group":"default"}}',
            fl,
            400,
            "bad_request",
          ],
          [
            "/v1/pre-reboot",
            '{"client_params":{"id":"a","group":7}}',
            fl,
            400,
            "bad_request",
          ],
          ["/v1/pre-reboot", '{"client_params":"x"}', fl, 400, "bad_request"],
          [
            "/v1/steady-state",
            zincatiBody("x".repeat(20_000)),
            fl,
            400,
            "bad_request",
          ],
          [
            "/v1/pre-reboot",
            zincatiBody("a", "bad/group"),
            fl,
            400,
            "bad_request",
          ],
          ["/v1/pre-reboot", zincatiBody("a", ""), fl, 400, "bad_request"],
          ["/v1/pre-reboot", "x".repeat(70_000), fl, 413, "payload_too_large"],
          ["/pre-reboot", zincatiBody("a"), fl, 404, "not_found"],
          ["/v1/pre-reboot/", zincatiBody("a"), fl, 404, "not_found"],
        ];
      for (const [path, body, headers, status, kind] of cases) {
        const r = await post(path, body, headers);
        assert.equal(
          r.status,
          status,
          `${path} ${body.slice(0, 60)}: ${r.body}`,
        );
        assert.equal(r.type, "application/json");
        assert.equal(kindOf(r.body), kind);
        assert.equal(typeof JSON.parse(r.body).value, "string");
      }
      for (const method of ["GET", "PUT", "DELETE"]) {
        const r = await fetch(`${main.server.url}v1/pre-reboot`, { method });
        assert.equal(r.status, 405);
        assert.equal(r.headers.get("allow"), "POST");
        assert.equal(kindOf(await r.text()), "method_not_allowed");
      }
    });

    await t.step("hostile HTTP never yields a 500 or a crash", async () => {
      const head = (extra: string, length: number) =>
        `POST /v1/pre-reboot HTTP/1.1\r\nhost: x\r\n${extra}content-length: ${length}\r\n\r\n`;
      const body = zincatiBody("h1");
      const repeated = await rawExchange(main.port, [
        head(
          "fleet-lock-protocol: true\r\nfleet-lock-protocol: true\r\n",
          body.length,
        ) + body,
      ]);
      assert.equal(repeated?.status, 400);
      assert.match(repeated?.body ?? "", /true, true/);
      const missing = await rawExchange(main.port, [
        head("", body.length) + body,
      ]);
      assert.equal(missing?.status, 400);

      const started = performance.now();
      const slow = await rawExchange(main.port, [
        head("fleet-lock-protocol: true\r\n", body.length) + body.slice(0, 10),
      ]);
      assert.equal(slow?.status, 408);
      assert.equal(kindOf(slow?.body ?? ""), "request_timeout");
      assert.ok(performance.now() - started < 3_000);

      const chunk = `${(16 * 1024).toString(16)}\r\n${
        "x".repeat(16 * 1024)
      }\r\n`;
      const chunked = await rawExchange(main.port, [
        "POST /v1/pre-reboot HTTP/1.1\r\nhost: x\r\nfleet-lock-protocol: true\r\n" +
        "transfer-encoding: chunked\r\n\r\n",
        ...Array.from({ length: 8 }, () => chunk),
      ]);
      assert.equal(chunked?.status, 413);

      const declared = await rawExchange(main.port, [
        head("fleet-lock-protocol: true\r\n", 10 ** 9) + "{",
      ]);
      assert.equal(declared?.status, 413);

      const utf8 = await rawExchange(main.port, [
        head("fleet-lock-protocol: true\r\n", 3),
        new Uint8Array([0x7b, 0xff, 0x7d]),
      ]);
      assert.equal(utf8?.status, 400);

      for (
        const garbage of [
          "POST /v1/pre-reboot HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}x",
          "\x00\x01\x02 nonsense\r\n\r\n",
          "POST /v1/pre-reboot HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n",
          `GET /${"a".repeat(100_000)} HTTP/1.1\r\nhost: x\r\n\r\n`,
        ]
      ) {
        const response = await rawExchange(main.port, [garbage]);
        assert.ok(
          response === undefined ||
            (response.status >= 400 && response.status < 500),
          `${garbage.slice(0, 40)}: ${response?.status}`,
        );
      }
      assert.equal((await main.get("-/healthy")).status, 200, "still serving");
      assert.deepEqual(main.lines.filter((l) => l.startsWith("ERROR")), []);
    });

    await t.step("groups outside --groups are 403 unknown_group", async () => {
      const restricted = await startServer(etcd, ["--groups", "web,default"]);
      try {
        const r = await restricted.call("pre-reboot", "m", "db");
        assert.equal(r.status, 403);
        assert.equal(kindOf(r.body), "unknown_group");
        assert.deepEqual(restricted.opened, [], "no store opened for it");
        assert.equal(
          (await restricted.call("steady-state", "m", "web")).status,
          200,
        );
      } finally {
        await restricted.close();
      }
    });

    await t.step(
      "groups with tokens answer 401 without one, 200 with Bearer or Basic",
      async () => {
        const guarded = await startServer(etcd, [
          "--token",
          "secure=t0k3n-1",
          "--token",
          "*=adm1n",
        ]);
        try {
          const none = await guarded.call("pre-reboot", "s1", "secure");
          assert.equal(none.status, 401);
          assert.equal(kindOf(none.body), "unauthorized");
          const wrong = await guarded.call("pre-reboot", "s1", "secure", {
            authorization: "Bearer nope",
          });
          assert.equal(wrong.status, 401);
          const bearer = await guarded.call("pre-reboot", "s1", "secure", {
            authorization: "Bearer t0k3n-1",
          });
          assert.equal(bearer.status, 200);
          const basic = await guarded.call("steady-state", "s1", "secure", {
            authorization: `Basic ${btoa("zincati:t0k3n-1")}`,
          });
          assert.equal(basic.status, 200);
          const admin = await guarded.call("steady-state", "s1", "other", {
            authorization: "Bearer adm1n",
          });
          assert.equal(admin.status, 200);
        } finally {
          await guarded.close();
        }
      },
    );

    await t.step("HTTPS with a certificate and key", async () => {
      const certs = await makeTestCertificates();
      const secure = await startServer(etcd, [], {
        tls: {
          cert: await Deno.readTextFile(certs.serverCert),
          key: await Deno.readTextFile(certs.serverKey),
        },
      });
      const client = Deno.createHttpClient({
        caCerts: [await Deno.readTextFile(certs.caFile)],
      });
      try {
        assert.match(secure.server.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
        const r = await fetch(`${secure.server.url}v1/steady-state`, {
          method: "POST",
          client,
          headers: { "fleet-lock-protocol": "true" },
          body: new TextEncoder().encode(zincatiBody("tls-node")),
        });
        assert.equal(r.status, 200, await r.text());
        const plain = await rawExchange(secure.port, [
          "GET /-/healthy HTTP/1.1\r\nhost: x\r\n\r\n",
        ]).catch(() => undefined);
        assert.notEqual(plain?.status, 200, "plain HTTP is not served");
      } finally {
        client.close();
        await secure.close();
        await certs.remove();
      }
    });

    await t.step("/-/healthy and /metrics show the real state", async () => {
      assert.deepEqual(await main.get("-/healthy"), {
        status: 200,
        body: "ok\n",
      });
      // A locksmithd machine takes a slot of "web" behind the server's back.
      const daemonStore = await openEtcdLockStore(
        { endpoints: etcd.endpoints, timeoutMs: 5_000 },
        "web",
      );
      await lockSlot(daemonStore, "locksmithd-node");
      await daemonStore.close();
      const { status, body } = await main.get("metrics");
      assert.equal(status, 200);
      const value = (line: string) => {
        const found = body.split("\n").find((l) => l.startsWith(`${line} `));
        return found === undefined
          ? undefined
          : Number(found.slice(line.length + 1));
      };
      assert.equal(value('locksmith_fleetlock_holders{group="storm"}'), 3);
      assert.equal(value('locksmith_fleetlock_slots{group="storm"}'), 3);
      assert.equal(value('locksmith_fleetlock_holders{group="web"}'), 2);
      assert.equal(value('locksmith_fleetlock_slots{group="web"}'), 2);
      assert.ok(
        (value(
          'locksmith_fleetlock_requests_total{endpoint="pre-reboot",result="failed_lock_semaphore_full"}',
        ) ?? 0) >= 97,
      );
      assert.ok(
        (value(
          'locksmith_fleetlock_requests_total{endpoint="pre-reboot",result="locked"}',
        ) ?? 0) >= 4,
      );
      assert.ok(
        (value(
          'locksmith_fleetlock_etcd_duration_seconds_count{operation="update",outcome="ok"}',
        ) ?? 0) > 0,
      );
      assert.match(body, /^locksmith_fleetlock_batch_calls_count \d+$/m);
      assert.match(
        body,
        /^locksmith_fleetlock_request_duration_seconds_bucket\{le="0\.005",endpoint="pre-reboot"\} \d+$/m,
      );
    });

    await t.step(
      "health is 503 while etcd is frozen; shutdown finishes the call in flight",
      async () => {
        const fragile = await startServer(etcd, [], { timeoutMs: 800 });
        try {
          assert.equal(
            (await fragile.call("steady-state", "warm-up")).status,
            200,
          );
          etcd.members[0]!.pause();
          await new Promise((r) => setTimeout(r, 100)); // SIGSTOP takes effect
          try {
            const health = await fragile.get("-/healthy");
            assert.equal(health.status, 503, health.body);
            assert.equal(kindOf(health.body), "etcd_unavailable");
          } finally {
            etcd.members[0]!.resume();
          }
          await etcd.waitHealthy();
        } finally {
          await fragile.close();
        }

        const draining = await startServer(etcd);
        assert.equal(
          (await draining.call("steady-state", "warm-up")).status,
          200,
        );
        etcd.members[0]!.pause();
        await new Promise((r) => setTimeout(r, 100)); // SIGSTOP takes effect
        let inFlight: Promise<{ status: number; body: string }>;
        try {
          let settled = false;
          inFlight = draining.call("pre-reboot", "in-flight", "drain");
          const settle = () => {
            settled = true;
          };
          inFlight.then(settle, settle);
          await new Promise((r) => setTimeout(r, 300));
          assert.equal(settled, false, "the call waits for the frozen etcd");
          const stopping = draining.server.shutdown();
          await new Promise((r) => setTimeout(r, 200));
          await assert.rejects(
            Deno.connect({ hostname: "127.0.0.1", port: draining.port }).then((
              c,
            ) => c.close()),
            "no new connections while draining",
          );
          assert.equal(settled, false, "still in flight while draining");
          etcd.members[0]!.resume();
          assert.equal((await inFlight).status, 200);
          await stopping;
        } finally {
          etcd.members[0]!.resume();
          await draining.close();
        }
        assert.deepEqual((await storedDoc(raw, "drain"))?.holders, [
          "in-flight",
        ]);
      },
    );
  } finally {
    await main.close();
    raw.close();
    await etcd.close();
  }
});

Deno.test("daemon.ts serve runs with exactly the serve permission set and stops on SIGTERM", async () => {
  const etcd = await startEtcd();
  const serve = await startServeProcess({
    endpoint: etcd.endpoint,
    env: { LOCKSMITHD_FLEETLOCK_SLOTS: "sub=2" },
  });
  try {
    const res = await fetch(`${serve.url}v1/pre-reboot`, {
      method: "POST",
      headers: { "fleet-lock-protocol": "true" },
      body: new TextEncoder().encode(zincatiBody("sub-node", "sub")),
    });
    assert.equal(res.status, 200, await res.text());
    assert.match(
      await serve.metrics(),
      /^locksmith_fleetlock_holders\{group="sub"\} 1$/m,
    );
    const code = await serve.stop("SIGTERM");
    const log = serve.lines.join("\n");
    assert.equal(code, 0, log);
    assert.match(log, /INFO {2}group sub: 2 slot\(s\)/);
    assert.match(
      log,
      /SIGTERM received: stopping after the requests in flight/,
    );
    assert.match(serve.lines.at(-1) ?? "", /INFO {2}stopped$/);
  } finally {
    await serve.close();
    await etcd.close();
  }
});

Deno.test("daemon.ts serve reports configuration errors in one line with exit status 2", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...programFlags("serve"),
      `${REPO_ROOT}daemon.ts`,
      "serve",
      "--slots",
      "web=many",
    ],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.equal(
    new TextDecoder().decode(out.stderr),
    'locksmithd serve: LOCKSMITHD_FLEETLOCK_SLOTS="web=many" (from --slots) gives group web "many" slots; expected an integer from 0 to 1000000\n',
  );
});
