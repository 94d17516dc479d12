/** Notifications: received by a real HTTP server on a loopback port. */
import assert from "node:assert/strict";
import { VERSION } from "../lib/common/version.ts";
import type { SafetyClock } from "../lib/host/clock.ts";
import type { NotificationResult } from "../lib/daemon/observe/metrics_port.ts";
import {
  type Notification,
  Notifier,
  type NotifierOptions,
} from "../lib/daemon/observe/notify.ts";
import { backoffMs as notifyBackoffMs } from "../lib/common/backoff.ts";
import { freePorts } from "./harness/ports.ts";

const MACHINE = "69d27b356a94476da859461d3a3bc6fd";

/** What the receiver saw of a request. */
interface Seen {
  method: string;
  headers: Record<string, string>;
}

/** A receiver on a loopback port; `answer` decides the status of each request (1-based). */
async function withReceiver(
  answer: (n: number, body: Notification) => number | Promise<number>,
  fn: (
    url: string,
    received: Notification[],
    requests: Seen[],
  ) => Promise<void>,
): Promise<void> {
  const received: Notification[] = [];
  const requests: Seen[] = [];
  const [port] = freePorts(1) as [number];
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: () => {},
  }, async (request) => {
    requests.push({
      method: request.method,
      headers: Object.fromEntries(request.headers),
    });
    const body = await request.json() as Notification;
    const status = await answer(requests.length, body);
    if (status >= 200 && status < 300) received.push(body);
    return new Response(null, { status });
  });
  try {
    await fn(
      `http://127.0.0.1:${port}/hooks/locksmith?token=secret`,
      received,
      requests,
    );
  } finally {
    await server.shutdown();
  }
}

function notifier(url: string, extra: Partial<NotifierOptions> = {}) {
  const warnings: string[] = [];
  const results: NotificationResult[] = [];
  const n = new Notifier({
    url,
    machine: MACHINE,
    group: "prod",
    log: { warn: (m) => warnings.push(m) },
    backoffBaseMs: 10,
    backoffMaxMs: 40,
    random: () => 0.5,
    onResult: (r) => results.push(r),
    ...extra,
  });
  return { n, warnings, results };
}

Deno.test("notify() delivers events in order with machine, group, time and details, retrying through failures", async () => {
  await withReceiver(
    (n) => n <= 3 ? 503 : 200,
    async (url, received, requests) => {
      const { n, warnings, results } = notifier(url);
      n.notify("slot-taken", { available: 0, max: 1 });
      n.notify("reboot-requested");
      n.notify("slot-released");
      n.notify("health-check-failed", { exitCode: 1, output: "disk full" });
      assert.ok(await n.flush(5_000), "flushed in time");
      assert.deepEqual(received.map((e) => e.event), [
        "slot-taken",
        "reboot-requested",
        "slot-released",
        "health-check-failed",
      ]);
      assert.equal(
        requests.length,
        3 + 4,
        "three failed attempts, then one each",
      );
      const first = received[0] as Notification;
      assert.equal(first.machine, MACHINE);
      assert.equal(first.group, "prod");
      assert.deepEqual(first.details, { available: 0, max: 1 });
      assert.equal(new Date(first.time).toISOString(), first.time);
      assert.deepEqual(received[3]?.details, {
        exitCode: 1,
        output: "disk full",
      });
      assert.deepEqual(Object.keys(first), [
        "event",
        "machine",
        "group",
        "time",
        "details",
      ]);
      assert.equal(requests[0]?.method, "POST");
      assert.equal(
        requests[0]?.headers["content-type"],
        "application/json",
      );
      assert.equal(
        requests[0]?.headers["user-agent"],
        `locksmithd/${VERSION}`,
      );
      assert.deepEqual(results, ["sent", "sent", "sent", "sent"]);
      assert.deepEqual(warnings, []);
      await n.close(1_000);
    },
  );
});

Deno.test("the default group is null in notifications", async () => {
  await withReceiver(() => 204, async (url, received) => {
    const { n } = notifier(url, { group: "" });
    n.notify("reboot-needed");
    await n.close(5_000);
    assert.equal(received[0]?.group, null);
  });
});

Deno.test("retries wait the injected clock's backoff with the injected jitter", async () => {
  await withReceiver((n) => n <= 3 ? 500 : 200, async (url, received) => {
    const slept: number[] = [];
    let now = Date.parse("2024-06-03T02:00:00Z");
    const clock: SafetyClock = {
      now: () => new Date(now),
      // Backoff sleeps pass at once; close()'s 5 s deadline waits until aborted.
      sleep: (ms, signal) => {
        if (ms >= 5_000) {
          return new Promise((resolve) =>
            signal.addEventListener("abort", () => resolve(false), {
              once: true,
            })
          );
        }
        slept.push(ms);
        now += ms;
        return Promise.resolve(true);
      },
    };
    const { n } = notifier(url, {
      clock,
      random: () => 0,
      backoffBaseMs: 1_000,
      backoffMaxMs: 60_000,
    });
    n.notify("slot-taken");
    await n.close(5_000);
    assert.deepEqual(slept, [500, 1_000, 2_000]);
    assert.equal(received[0]?.time, "2024-06-03T02:00:00.000Z");
  });
});

Deno.test("an event failing past its give-up time is logged once and the next one goes on", async () => {
  await withReceiver(
    (_n, body) => body.event === "slot-taken" ? 500 : 200,
    async (url, received, requests) => {
      const { n, warnings, results } = notifier(url, { giveUpAfterMs: 150 });
      n.notify("slot-taken");
      n.notify("slot-released");
      assert.ok(await n.flush(5_000));
      assert.deepEqual(received.map((e) => e.event), ["slot-released"]);
      assert.ok(requests.length > 2, `${requests.length} requests`);
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(
        warnings[0] as string,
        /^notification slot-taken to http:\/\/127\.0\.0\.1:\d+ given up after \d+ attempt\(s\) in \d+ms: HTTP 500$/,
      );
      assert.ok(
        !(warnings[0] as string).includes("secret"),
        "the token is never logged",
      );
      assert.deepEqual(results, ["given-up", "sent"]);
      await n.close(1_000);
    },
  );
});

Deno.test("a 4xx refusal is not retried", async () => {
  await withReceiver(() => 400, async (url, _received, requests) => {
    const { n, warnings, results } = notifier(url);
    n.notify("reboot-failed", { error: "logind refused" });
    assert.ok(await n.flush(5_000));
    assert.equal(requests.length, 1);
    assert.match(
      warnings[0] ?? "",
      /reboot-failed .* refused \(HTTP 400\); not retried$/,
    );
    assert.deepEqual(results, ["given-up"]);
    await n.close(1_000);
  });
});

Deno.test("notify() never blocks on a receiver that never answers; the queue is bounded and close() keeps its deadline", async () => {
  let release = () => {};
  const hang = new Promise<number>((resolve) => release = () => resolve(200));
  await withReceiver(() => hang, async (url) => {
    const { n, warnings, results } = notifier(url, {
      queueLimit: 3,
      requestTimeoutMs: 100,
    });
    const started = performance.now();
    for (let i = 0; i < 1_000; i++) n.notify("reboot-requested", { i });
    assert.ok(
      performance.now() - started < 500,
      `${performance.now() - started} ms for 1000 notify()`,
    );
    assert.ok(n.pending <= 4, `${n.pending} pending`);
    assert.ok(warnings.length >= 990, `${warnings.length} drop warnings`);
    assert.match(
      warnings[0] ?? "",
      /queue full \(3 waiting\), dropped the oldest, reboot-requested of /,
    );
    const closing = performance.now();
    await n.close(300);
    assert.ok(
      performance.now() - closing < 2_000,
      `close took ${performance.now() - closing} ms`,
    );
    assert.match(
      warnings.at(-1) ?? "",
      /: \d not sent before closing \(waited 300ms\)$/,
    );
    assert.equal(
      results.filter((r) => r === "dropped").length,
      warnings.length - 1,
    );
    n.notify("slot-released");
    assert.match(
      warnings.at(-1) ?? "",
      /slot-released not sent: notifications are closed/,
    );
    release();
  });
});

Deno.test("notify() never blocks on a refused connection", async () => {
  const [port] = freePorts(1) as [number];
  const { n, warnings } = notifier(`http://127.0.0.1:${port}/`, {
    giveUpAfterMs: 60_000,
  });
  const started = performance.now();
  n.notify("slot-taken");
  assert.ok(performance.now() - started < 50);
  await n.close(200);
  assert.match(warnings.at(-1) ?? "", /1 not sent before closing/);
});

Deno.test("close() sends what is queued before its deadline", async () => {
  await withReceiver(async () => {
    await new Promise((r) => setTimeout(r, 30));
    return 200;
  }, async (url, received) => {
    const { n, warnings } = notifier(url);
    n.notify("slot-taken");
    n.notify("reboot-requested");
    n.notify("reboot-failed");
    await n.close(5_000);
    assert.equal(received.length, 3);
    assert.deepEqual(warnings, []);
    assert.equal(n.pending, 0);
  });
});

Deno.test("notifyBackoffMs() doubles per attempt up to the cap, jittered in the upper half", () => {
  assert.equal(notifyBackoffMs(1, () => 0, 1_000, 60_000), 500);
  assert.equal(notifyBackoffMs(1, () => 0.999999, 1_000, 60_000), 1_000);
  assert.equal(notifyBackoffMs(3, () => 0, 1_000, 60_000), 2_000);
  assert.equal(notifyBackoffMs(20, () => 0, 1_000, 60_000), 30_000);
  assert.equal(notifyBackoffMs(20, () => 0.5, 1_000, 60_000), 45_000);
});
