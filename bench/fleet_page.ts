/**
 * `fleetpage`: what the fleet page of `locksmithd serve` costs etcd with 1
 * and with 100 viewers connected, and what the page weighs. A real serve
 * (its own process) on the benchmark's etcd; viewers are server-sent-event
 * readers in this process. The same workload runs under both: 20 slots
 * taken and released with `lockSlot`/`unlockSlot` (40 changes), then a
 * marker slot; each viewer must have seen the marker. etcd's requests
 * (all clients: the workload's own included, the same in both runs) and
 * the watch messages it sent are counted from its `/metrics`.
 *
 * @module
 */

import { openEtcdStore } from "../lib/etcd/open.ts";
import { lockSlot, unlockSlot } from "../lib/semaphore/lock_store.ts";
import { PAGE_HTML } from "../lib/fleetpage/page.ts";
import { startServeProcess } from "../tests/harness/serve_process.ts";
import { delta, type RequestDelta, scrape } from "./etcd_counters.ts";
import type { Report } from "./report.ts";
import { waitUntil } from "./util.ts";

/** Changes the workload makes (slots taken and released). */
const CYCLES = 20;

interface Viewer {
  text: string;
  messages: number;
  stop(): Promise<void>;
}

async function connect(url: string): Promise<Viewer> {
  const stop = new AbortController();
  const res = await fetch(`${url}api/events`, { signal: stop.signal });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  const viewer: Viewer = {
    text: "",
    messages: 0,
    async stop() {
      await reader.cancel().catch(() => {});
      stop.abort();
      await reading;
    },
  };
  const reading = (async () => {
    for (;;) {
      const next = await reader.read();
      if (next.done) return;
      // Keep only the tail: the marker is in the latest message.
      viewer.text = (viewer.text + next.value).slice(-20_000);
      viewer.messages += next.value.split("event: fleet").length - 1;
    }
  })().catch(() => {});
  return viewer;
}

/** One run with `n` viewers: etcd's counts while they connect and during the workload. */
async function run(
  n: number,
  endpoints: string[],
  metricsUrl: string,
  round: number,
): Promise<{ connect: RequestDelta; work: RequestDelta; sent: number }> {
  const serve = await startServeProcess({ endpoint: endpoints.join(",") });
  const store = await openEtcdStore({ endpoints, timeoutMs: 10_000 });
  const viewers: Viewer[] = [];
  try {
    await store.read();
    const before = await scrape(metricsUrl);
    for (let i = 0; i < n; i++) viewers.push(await connect(serve.url));
    await waitUntil(
      "every viewer's first data",
      () => viewers.every((v) => v.messages > 0),
      10_000,
    );
    const connected = await scrape(metricsUrl);
    for (let i = 0; i < CYCLES; i++) {
      const id = `page-${round}-${i}`;
      await lockSlot(store, id, {
        record: { id, since: new Date().toISOString(), by: "bench" },
      });
      await unlockSlot(store, id, {
        kind: "released",
        at: new Date().toISOString(),
      });
    }
    const marker = `marker-${round}`;
    await lockSlot(store, marker, {
      record: { id: marker, since: new Date().toISOString(), by: "bench" },
    });
    await waitUntil(
      "every viewer seeing the marker",
      () => viewers.every((v) => v.text.includes(`"id":"${marker}"`)),
      15_000,
    );
    const done = await scrape(metricsUrl);
    await unlockSlot(store, marker);
    return {
      connect: delta(before, connected),
      work: delta(connected, done),
      sent: viewers.reduce((s, v) => s + v.messages, 0),
    };
  } finally {
    await Promise.all(viewers.map((v) => v.stop()));
    await store.close();
    await serve.close();
  }
}

/** Measures the fleet page (see the module documentation). */
export async function measureFleetPage(
  report: Report,
  endpoints: string[],
  metricsUrl: string,
): Promise<void> {
  report.log(
    `\nfleetpage: etcd's work with 1 and 100 fleet pages open (${CYCLES} slots taken and released)`,
  );
  const one = await run(1, endpoints, metricsUrl, 1);
  const hundred = await run(100, endpoints, metricsUrl, 100);
  const s = "fleetpage";
  report.add(
    s,
    "etcd requests while 1 viewer connects",
    one.connect.total,
    "req",
  );
  report.add(
    s,
    "etcd requests while 100 viewers connect",
    hundred.connect.total,
    "req",
    { op: "==", value: 0 },
  );
  report.add(
    s,
    "etcd requests during the workload, 1 viewer",
    one.work.total,
    "req",
  );
  report.add(
    s,
    "etcd requests during the workload, 100 viewers",
    hundred.work.total,
    "req",
    { op: "==", value: one.work.total },
  );
  report.add(
    s,
    "etcd watch messages sent, 1 viewer",
    one.work.watchSent,
    "msg",
  );
  report.add(
    s,
    "etcd watch messages sent, 100 viewers",
    hundred.work.watchSent,
    "msg",
    { op: "==", value: one.work.watchSent },
  );
  report.add(
    s,
    "etcd watch streams opened, 100 viewers",
    hundred.connect.watchStreams + hundred.work.watchStreams,
    "streams",
    { op: "==", value: 0 },
  );
  report.add(
    s,
    "fleet messages sent to viewers, 100 viewers",
    hundred.sent,
    "msg",
  );
  const weight = new TextEncoder().encode(PAGE_HTML).length;
  report.add(s, "page with its style and script", weight / 1024, "KiB", {
    op: "<",
    value: 50,
  });
  report.detail("fleetpage", { one, hundred, pageBytes: weight });
}
