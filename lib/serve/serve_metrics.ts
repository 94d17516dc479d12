/**
 * The FleetLock server's Prometheus metrics (prom-client, imported only by
 * the server): requests by endpoint and result, request and etcd latency,
 * batch sizes, the holders and slots of every open group as stored in
 * etcd at scrape time, and from the reboot history (followed by the fleet
 * page's watch) the time machines were away and the slots reclaimed.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "npm:prom-client@15.1.3";
import type { Semaphore } from "../semaphore/document.ts";
import type { RequestObserver, RequestResult, Route } from "./handler.ts";
import type { EtcdOperation } from "./semaphores.ts";
import type { CommitReport } from "./batch.ts";
import type { RebootFigure } from "../fleetpage/reboot_figures.ts";
import { ETCD_LATENCY_BUCKETS } from "../etcd/client/latency_buckets.ts";

/** Names of the metrics, as documented in docs/fleetlock.md. */
export const METRIC_NAMES: Readonly<
  Record<
    | "requests"
    | "requestSeconds"
    | "etcdSeconds"
    | "batchCalls"
    | "conflicts"
    | "holders"
    | "slots"
    | "rebootSeconds"
    | "reclaims"
    | "pageViewers",
    string
  >
> = Object.freeze(
  {
    rebootSeconds: "locksmith_reboot_duration_seconds",
    reclaims: "locksmith_reclaims_total",
    pageViewers: "locksmith_fleet_page_viewers",
    requests: "locksmith_fleetlock_requests_total",
    requestSeconds: "locksmith_fleetlock_request_duration_seconds",
    etcdSeconds: "locksmith_fleetlock_etcd_duration_seconds",
    batchCalls: "locksmith_fleetlock_batch_calls",
    conflicts: "locksmith_fleetlock_etcd_conflicts_total",
    holders: "locksmith_fleetlock_holders",
    slots: "locksmith_fleetlock_slots",
  },
);

/** Buckets of the time away, in seconds: 30 s to 4 h. */
const REBOOT_BUCKETS = [
  30,
  60,
  120,
  300,
  600,
  900,
  1_800,
  3_600,
  7_200,
  14_400,
];

/** Buckets of the latency histograms: locksmithd's etcd buckets, and 0.5 ms. */
const LATENCY_BUCKETS = [0.0005, ...ETCD_LATENCY_BUCKETS];

/** The metrics from the reboot history: time away and slots reclaimed. */
function historyMetrics(registers: Registry[]): {
  rebootSeconds: Histogram<"group">;
  reclaims: Counter<"group">;
} {
  return {
    rebootSeconds: new Histogram({
      name: METRIC_NAMES.rebootSeconds,
      help:
        "Time a machine was away: from taking its slot to releasing it after its boot, by semaphore group (from the reboot history)",
      labelNames: ["group"] as const,
      buckets: REBOOT_BUCKETS,
      registers,
    }),
    reclaims: new Counter({
      name: METRIC_NAMES.reclaims,
      help:
        "Slots reclaimed after their slot TTL (machines that never came back), by semaphore group (from the reboot history)",
      labelNames: ["group"] as const,
      registers,
    }),
  };
}

/** The gauge of the fleet pages connected, read from `viewers` at scrape time. */
function viewersGauge(registers: Registry[], viewers: () => number): void {
  new Gauge({
    name: METRIC_NAMES.pageViewers,
    help: "Fleet pages connected now (they share one etcd watch)",
    registers,
    collect() {
      this.set(viewers());
    },
  });
}

/** The metrics of the FleetLock requests: count and latency. */
function requestMetrics(registers: Registry[]): {
  requests: Counter<"endpoint" | "result">;
  requestSeconds: Histogram<"endpoint">;
} {
  return {
    requests: new Counter({
      name: METRIC_NAMES.requests,
      help: "FleetLock requests answered, by endpoint and result",
      labelNames: ["endpoint", "result"] as const,
      registers,
    }),
    requestSeconds: new Histogram({
      name: METRIC_NAMES.requestSeconds,
      help: "Time to answer a request, by endpoint",
      labelNames: ["endpoint"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
  };
}

/** The metrics of the etcd updates: latency, batch sizes and conflicts. */
function etcdMetrics(registers: Registry[]): {
  etcdSeconds: Histogram<"operation" | "outcome">;
  batchCalls: Histogram<string>;
  conflicts: Counter<string>;
} {
  return {
    etcdSeconds: new Histogram({
      name: METRIC_NAMES.etcdSeconds,
      help:
        "Time of etcd operations (update: one batch with its compare-and-swap retries; read: health and scrapes)",
      labelNames: ["operation", "outcome"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    batchCalls: new Histogram({
      name: METRIC_NAMES.batchCalls,
      help: "FleetLock calls applied together by one etcd update",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    conflicts: new Counter({
      name: METRIC_NAMES.conflicts,
      help:
        "Compare-and-swap writes that lost to another writer and were retried",
      registers,
    }),
  };
}

/**
 * The holders and slots gauges of every open group, both filled from one
 * read of `documents` per scrape.
 */
function groupGauges(
  registers: Registry[],
  documents: () => Promise<ReadonlyMap<string, Semaphore>>,
): void {
  let reading: Promise<ReadonlyMap<string, Semaphore>> | undefined;
  const current = () => {
    reading ??= documents().finally(() => {
      queueMicrotask(() => reading = undefined);
    });
    return reading;
  };
  const byGroup = (
    name: string,
    help: string,
    value: (doc: Semaphore) => number,
  ) =>
    new Gauge({
      name,
      help: `${help}, by group (read from etcd at scrape time)`,
      labelNames: ["group"] as const,
      registers,
      async collect() {
        const docs = await current();
        this.reset();
        for (const [group, doc] of docs) this.set({ group }, value(doc));
      },
    });
  byGroup(
    METRIC_NAMES.holders,
    "Machines holding a slot",
    (doc) => doc.holders.length,
  );
  byGroup(METRIC_NAMES.slots, "Slots (max) of the semaphore", (d) => d.max);
}

/** The server's metrics; see the module documentation. */
export class FleetLockMetrics implements RequestObserver {
  readonly #registry = new Registry();
  readonly #requests: Counter<"endpoint" | "result">;
  readonly #requestSeconds: Histogram<"endpoint">;
  readonly #etcdSeconds: Histogram<"operation" | "outcome">;
  readonly #batchCalls: Histogram<string>;
  readonly #conflicts: Counter<string>;
  readonly #rebootSeconds: Histogram<"group">;
  readonly #reclaims: Counter<"group">;

  /**
   * Creates the metrics.
   *
   * @param documents reads the document of every open group at scrape time
   */
  constructor(
    documents: () => Promise<ReadonlyMap<string, Semaphore>>,
    viewers: () => number = () => 0,
  ) {
    const registers = [this.#registry];
    const history = historyMetrics(registers);
    this.#rebootSeconds = history.rebootSeconds;
    this.#reclaims = history.reclaims;
    viewersGauge(registers, viewers);
    const requests = requestMetrics(registers);
    this.#requests = requests.requests;
    this.#requestSeconds = requests.requestSeconds;
    const etcd = etcdMetrics(registers);
    this.#etcdSeconds = etcd.etcdSeconds;
    this.#batchCalls = etcd.batchCalls;
    this.#conflicts = etcd.conflicts;
    groupGauges(registers, documents);
  }

  /** Counts a request (see {@link RequestObserver}). */
  request(route: Route, result: RequestResult, seconds: number): void {
    this.#requests.inc({ endpoint: route, result });
    this.#requestSeconds.observe({ endpoint: route }, seconds);
  }

  /** Times an etcd operation. */
  etcd(operation: EtcdOperation, seconds: number, ok: boolean): void {
    this.#etcdSeconds.observe(
      { operation, outcome: ok ? "ok" : "error" },
      seconds,
    );
  }

  /** Counts reboots that ended (from the history: see `reboot_figures.ts`). */
  reboots(figures: readonly RebootFigure[]): void {
    for (const f of figures) {
      const group = f.group === "" ? "default" : f.group;
      if (f.outcome === "reclaimed") this.#reclaims.inc({ group });
      else if (f.awaySeconds !== undefined) {
        this.#rebootSeconds.observe({ group }, f.awaySeconds);
      }
    }
  }

  /** Records a committed batch. */
  commit(report: CommitReport): void {
    if (report.ok) this.#batchCalls.observe(report.calls);
    this.#conflicts.inc(report.conflicts);
  }

  /** The exposition text and its content type. */
  async expose(): Promise<{ contentType: string; body: string }> {
    return {
      contentType: this.#registry.contentType,
      body: await this.#registry.metrics(),
    };
  }
}
