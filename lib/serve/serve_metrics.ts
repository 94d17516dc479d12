/**
 * The FleetLock server's Prometheus metrics (prom-client, imported only by
 * the server): requests by endpoint and result, request and etcd latency,
 * batch sizes, and the holders and slots of every open group as stored in
 * etcd at scrape time.
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "npm:prom-client@15.1.3";
import type { Semaphore } from "../semaphore/document.ts";
import type { RequestObserver, RequestResult, Route } from "./handler.ts";
import type { EtcdOperation } from "./semaphores.ts";
import type { CommitReport } from "./batch.ts";
import { ETCD_LATENCY_BUCKETS } from "../etcd/latency_buckets.ts";

/** Names of the metrics, as documented in docs/fleetlock.md. */
export const METRIC_NAMES: Readonly<
  Record<
    | "requests"
    | "requestSeconds"
    | "etcdSeconds"
    | "batchCalls"
    | "conflicts"
    | "holders"
    | "slots",
    string
  >
> = Object.freeze(
  {
    requests: "locksmith_fleetlock_requests_total",
    requestSeconds: "locksmith_fleetlock_request_duration_seconds",
    etcdSeconds: "locksmith_fleetlock_etcd_duration_seconds",
    batchCalls: "locksmith_fleetlock_batch_calls",
    conflicts: "locksmith_fleetlock_etcd_conflicts_total",
    holders: "locksmith_fleetlock_holders",
    slots: "locksmith_fleetlock_slots",
  },
);

/** Buckets of the latency histograms: locksmithd's etcd buckets, and 0.5 ms. */
const LATENCY_BUCKETS = [0.0005, ...ETCD_LATENCY_BUCKETS];

/** The server's metrics; see the module documentation. */
export class FleetLockMetrics implements RequestObserver {
  readonly #registry = new Registry();
  readonly #requests: Counter<"endpoint" | "result">;
  readonly #requestSeconds: Histogram<"endpoint">;
  readonly #etcdSeconds: Histogram<"operation" | "outcome">;
  readonly #batchCalls: Histogram<string>;
  readonly #conflicts: Counter<string>;

  /**
   * Creates the metrics.
   *
   * @param documents reads the document of every open group at scrape time
   */
  constructor(documents: () => Promise<ReadonlyMap<string, Semaphore>>) {
    const registers = [this.#registry];
    this.#requests = new Counter({
      name: METRIC_NAMES.requests,
      help: "FleetLock requests answered, by endpoint and result",
      labelNames: ["endpoint", "result"] as const,
      registers,
    });
    this.#requestSeconds = new Histogram({
      name: METRIC_NAMES.requestSeconds,
      help: "Time to answer a request, by endpoint",
      labelNames: ["endpoint"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#etcdSeconds = new Histogram({
      name: METRIC_NAMES.etcdSeconds,
      help:
        "Time of etcd operations (update: one batch with its compare-and-swap retries; read: health and scrapes)",
      labelNames: ["operation", "outcome"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#batchCalls = new Histogram({
      name: METRIC_NAMES.batchCalls,
      help: "FleetLock calls applied together by one etcd update",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.#conflicts = new Counter({
      name: METRIC_NAMES.conflicts,
      help:
        "Compare-and-swap writes that lost to another writer and were retried",
      registers,
    });
    // Both gauges are filled from one read per scrape.
    let reading: Promise<ReadonlyMap<string, Semaphore>> | undefined;
    const current = () => {
      reading ??= documents().finally(() => {
        queueMicrotask(() => reading = undefined);
      });
      return reading;
    };
    new Gauge({
      name: METRIC_NAMES.holders,
      help: "Machines holding a slot, by group (read from etcd at scrape time)",
      labelNames: ["group"] as const,
      registers,
      async collect() {
        const docs = await current();
        this.reset();
        for (const [group, doc] of docs) {
          this.set({ group }, doc.holders.length);
        }
      },
    });
    new Gauge({
      name: METRIC_NAMES.slots,
      help:
        "Slots (max) of the semaphore, by group (read from etcd at scrape time)",
      labelNames: ["group"] as const,
      registers,
      async collect() {
        const docs = await current();
        this.reset();
        for (const [group, doc] of docs) this.set({ group }, doc.max);
      },
    });
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
