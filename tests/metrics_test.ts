/** locksmithd's metrics: scraped over real HTTP from the server on a loopback port. */
import assert from "node:assert/strict";
import { UsageError } from "../lib/common/errors.ts";
import { VERSION } from "../lib/common/version.ts";
import {
  PromDaemonMetrics,
  startMetricsServer,
} from "../lib/daemon/observe/daemon_metrics.ts";
import {
  type DaemonMetrics,
  NO_METRICS,
  timeEtcdRequest,
} from "../lib/daemon/observe/metrics_port.ts";
import {
  formatListenAddress,
  parseListenAddress,
} from "../lib/common/listen_address.ts";
import { ConfigValueError } from "../lib/common/value_error.ts";
import { freePorts } from "./harness/ports.ts";
import {
  DAEMON_METRIC_FAMILIES as FAMILIES,
  scrape,
} from "./harness/daemon_metrics.ts";

async function withServer(
  fn: (metrics: PromDaemonMetrics, port: number) => Promise<void>,
): Promise<void> {
  const metrics = new PromDaemonMetrics();
  const [port] = freePorts(1) as [number];
  const server = startMetricsServer(metrics, { hostname: "127.0.0.1", port });
  try {
    assert.equal(server.address.port, port);
    await fn(metrics, port);
  } finally {
    await server.stop();
  }
}

Deno.test("GET /metrics names every metric with its # TYPE and # HELP, and starts from the idle state", async () => {
  await withServer(async (_metrics, port) => {
    const s = await scrape(port);
    assert.equal(s.contentType, "text/plain; version=0.0.4; charset=utf-8");
    for (const [name, type] of Object.entries(FAMILIES)) {
      assert.equal(s.types.get(name), type, name);
      assert.ok((s.helps.get(name) ?? "").length > 10, `HELP of ${name}`);
    }
    assert.deepEqual([...s.types.keys()].sort(), Object.keys(FAMILIES).sort());
    assert.equal(
      s.samples.get(`locksmithd_build_info{version="${VERSION}"}`),
      1,
    );
    assert.equal(s.samples.get("locksmithd_reboot_needed"), 0);
    assert.equal(
      s.samples.get("locksmithd_waiting_since_timestamp_seconds"),
      0,
    );
    assert.equal(s.samples.get("locksmithd_slot_held"), 0);
    assert.equal(s.samples.get("locksmithd_window_open"), 1);
    assert.equal(s.samples.get("locksmithd_queue_position"), -1);
    assert.equal(
      s.samples.get("locksmithd_last_reboot_request_timestamp_seconds"),
      0,
    );
    for (const result of ["taken", "held", "full", "conflict", "error"]) {
      assert.equal(
        s.samples.get(`locksmithd_lock_attempts_total{result="${result}"}`),
        0,
        result,
      );
    }
    for (const result of ["sent", "given-up", "dropped"]) {
      assert.equal(
        s.samples.get(`locksmithd_notifications_total{result="${result}"}`),
        0,
        result,
      );
    }
    assert.equal(
      s.samples.get(
        'locksmithd_commands_total{command="health-check",result="timeout"}',
      ),
      0,
    );
  });
});

Deno.test("GET /metrics shows the values the daemon set", async () => {
  await withServer(async (metrics, port) => {
    const d: DaemonMetrics = metrics;
    d.setRebootNeeded(true);
    d.setWaitingSince(new Date("2024-06-01T00:00:00.900Z"));
    d.setSlotHeld(true);
    d.setWindowOpen(false);
    d.setQueuePosition(3);
    d.setLastRebootRequest(new Date("2024-06-01T02:00:05Z"));
    d.countLockAttempt("full");
    d.countLockAttempt("full");
    d.countLockAttempt("taken");
    d.observeEtcdRequest("lock", 3);
    d.observeEtcdRequest("lock", 40);
    d.observeEtcdRequest("read", 2_000);
    d.countCommand("health-check", "failure");
    d.countCommand("health-check", "success");
    d.countNotification("sent");
    const s = await scrape(port);
    const v = (name: string) => s.samples.get(name);
    assert.equal(v("locksmithd_reboot_needed"), 1);
    assert.equal(v("locksmithd_waiting_since_timestamp_seconds"), 1717200000);
    assert.equal(v("locksmithd_slot_held"), 1);
    assert.equal(v("locksmithd_window_open"), 0);
    assert.equal(v("locksmithd_queue_position"), 3);
    assert.equal(
      v("locksmithd_last_reboot_request_timestamp_seconds"),
      1717207205,
    );
    assert.equal(v('locksmithd_lock_attempts_total{result="full"}'), 2);
    assert.equal(v('locksmithd_lock_attempts_total{result="taken"}'), 1);
    assert.equal(v('locksmithd_lock_attempts_total{result="error"}'), 0);
    const h = "locksmithd_etcd_request_duration_seconds";
    assert.equal(v(`${h}_bucket{le="0.001",op="lock"}`), 0);
    assert.equal(v(`${h}_bucket{le="0.005",op="lock"}`), 1);
    assert.equal(v(`${h}_bucket{le="0.05",op="lock"}`), 2);
    assert.equal(v(`${h}_bucket{le="+Inf",op="lock"}`), 2);
    assert.equal(v(`${h}_count{op="lock"}`), 2);
    assert.ok(Math.abs((v(`${h}_sum{op="lock"}`) ?? 0) - 0.043) < 1e-9);
    assert.equal(v(`${h}_bucket{le="1",op="read"}`), 0);
    assert.equal(v(`${h}_bucket{le="2.5",op="read"}`), 1);
    assert.equal(
      v('locksmithd_commands_total{command="health-check",result="failure"}'),
      1,
    );
    assert.equal(
      v('locksmithd_commands_total{command="health-check",result="success"}'),
      1,
    );
    assert.equal(v('locksmithd_notifications_total{result="sent"}'), 1);

    d.setWaitingSince(null);
    d.setQueuePosition(null);
    d.setSlotHeld(false);
    const after = await scrape(port);
    assert.equal(
      after.samples.get("locksmithd_waiting_since_timestamp_seconds"),
      0,
    );
    assert.equal(after.samples.get("locksmithd_queue_position"), -1);
    assert.equal(after.samples.get("locksmithd_slot_held"), 0);
  });
});

Deno.test("the metrics server answers 404 elsewhere, HEAD without a body, and stops listening on stop()", async () => {
  const metrics = new PromDaemonMetrics("9.9.9");
  const [port] = freePorts(1) as [number];
  const server = startMetricsServer(metrics, { hostname: "127.0.0.1", port });
  for (
    const [method, path] of [["GET", "/"], ["GET", "/metrics/x"], [
      "POST",
      "/metrics",
    ]]
  ) {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { method });
    assert.equal(r.status, 404, `${method} ${path}`);
    await r.body?.cancel();
  }
  const head = await fetch(`http://127.0.0.1:${port}/metrics`, {
    method: "HEAD",
  });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
  const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(body, /^locksmithd_build_info\{version="9\.9\.9"\} 1$/m);
  await server.stop();
  await assert.rejects(fetch(`http://127.0.0.1:${port}/metrics`));
});

Deno.test("startMetricsServer() names the key and the address when the port is taken", async () => {
  await withServer((_metrics, port) => {
    assert.throws(
      () =>
        startMetricsServer(new PromDaemonMetrics(), {
          hostname: "127.0.0.1",
          port,
        }),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.match(
          error.message,
          new RegExp(
            `^LOCKSMITHD_METRICS_ADDR: cannot serve metrics on 127\\.0\\.0\\.1:${port}: .*in use`,
            "i",
          ),
        );
        assert.ok(!error.message.includes("\n"));
        return true;
      },
    );
    return Promise.resolve();
  });
});

Deno.test("parseListenAddress() reads HOST:PORT, [IPv6]:PORT and :PORT", () => {
  const key = "LOCKSMITHD_METRICS_ADDR";
  assert.deepEqual(parseListenAddress(key, "127.0.0.1:9101"), {
    hostname: "127.0.0.1",
    port: 9101,
  });
  assert.deepEqual(parseListenAddress(key, "localhost:9101"), {
    hostname: "localhost",
    port: 9101,
  });
  assert.deepEqual(parseListenAddress(key, "[::1]:9101"), {
    hostname: "::1",
    port: 9101,
  });
  assert.deepEqual(parseListenAddress(key, ":9101"), {
    hostname: "0.0.0.0",
    port: 9101,
  });
  assert.equal(
    formatListenAddress({ hostname: "::1", port: 9101 }),
    "[::1]:9101",
  );
  assert.equal(
    formatListenAddress({ hostname: "127.0.0.1", port: 80 }),
    "127.0.0.1:80",
  );
});

Deno.test("parseListenAddress() refuses anything else in one line naming the key", () => {
  for (
    const text of [
      "9101",
      "127.0.0.1",
      "127.0.0.1:0",
      "127.0.0.1:65536",
      "host:port",
      "::1:9101",
      "a b:1",
      "",
    ]
  ) {
    assert.throws(
      () => parseListenAddress("LOCKSMITHD_METRICS_ADDR", text),
      (error: unknown) => {
        assert.ok(error instanceof ConfigValueError, text);
        assert.ok(error instanceof UsageError);
        assert.equal(error.key, "LOCKSMITHD_METRICS_ADDR");
        assert.equal(error.value, text);
        assert.match(
          error.message,
          /^LOCKSMITHD_METRICS_ADDR=".*" is not HOST:PORT with a port 1-65535/,
        );
        return true;
      },
    );
  }
});

Deno.test("timeEtcdRequest() records the duration of requests that succeed and of those that throw", async () => {
  const seen: [string, number][] = [];
  const recorder: DaemonMetrics = {
    ...NO_METRICS,
    observeEtcdRequest: (op, ms) => seen.push([op, ms]),
  };
  let t = 1_000;
  const now = () => t;
  assert.equal(
    await timeEtcdRequest(recorder, "lock", () => {
      t += 12;
      return Promise.resolve("ok");
    }, now),
    "ok",
  );
  await assert.rejects(
    timeEtcdRequest(recorder, "read", () => {
      t += 5;
      return Promise.reject(new Error("down"));
    }, now),
    /down/,
  );
  assert.deepEqual(seen, [["lock", 12], ["read", 5]]);
});

Deno.test("NO_METRICS accepts every call and records nothing", () => {
  NO_METRICS.setRebootNeeded(true);
  NO_METRICS.setWaitingSince(new Date());
  NO_METRICS.countLockAttempt("taken");
  NO_METRICS.observeEtcdRequest("lock", 1);
  assert.ok(Object.isFrozen(NO_METRICS));
});
