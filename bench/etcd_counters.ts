/**
 * etcd's own request counters, read from its Prometheus `/metrics` (the
 * plain-HTTP metrics listener, so reading them costs etcd no gRPC request).
 *
 * A "request" here is one message etcd received from a client:
 * `grpc_server_msg_received_total`, summed over methods. A unary call (Range,
 * Txn, Put, ...) is one message; on the Watch stream each create or cancel is
 * one message. Streams opened are counted apart (`grpc_server_started_total`
 * of stream methods), and so are watch messages sent (`msg_sent` on Watch:
 * created and cancelled replies and event batches) and the events in them
 * (`etcd_debugging_mvcc_events_total`).
 *
 * @module
 */

/** One scrape of the counters that matter here. */
export interface EtcdCounters {
  /** Messages received, by gRPC method (`Range`, `Txn`, `Watch`, ...). */
  readonly received: Readonly<Record<string, number>>;
  /** RPCs started, by method (for `Watch`: streams opened). */
  readonly started: Readonly<Record<string, number>>;
  /** Messages sent on the Watch stream (created/cancelled replies and events). */
  readonly watchSent: number;
  /** `etcd_debugging_mvcc_watcher_total` (watchers now open, a gauge). */
  readonly watchers: number;
  /** `etcd_debugging_mvcc_watch_stream_total` (watch streams now open, a gauge). */
  readonly watchStreams: number;
  /** `etcd_mvcc_put_total` (keys written, a counter). */
  readonly puts: number;
  /** `etcd_debugging_mvcc_events_total` (events sent to watchers, a counter). */
  readonly events: number;
}

/** Requests between two scrapes. */
export interface RequestDelta {
  /** Every message received (unary calls plus watch creates/cancels). */
  readonly total: number;
  /** The same, by method; zero methods left out. */
  readonly byMethod: Record<string, number>;
  /** Watch streams opened (not included in {@link total}). */
  readonly watchStreams: number;
  /** Watch messages sent by etcd (events and replies; not included in {@link total}). */
  readonly watchSent: number;
  /** Keys written. */
  readonly puts: number;
  /** Events sent to watchers (several may share one watch message). */
  readonly events: number;
}

function sumByMethod(text: string, metric: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`)) continue;
    // The Health service also has a "Watch" method; only etcd's own services count.
    const service = /grpc_service="([^"]+)"/.exec(line)?.[1] ?? "";
    if (!service.startsWith("etcdserverpb.")) continue;
    const method = /grpc_method="([^"]+)"/.exec(line)?.[1];
    if (method === undefined) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    out[method] = (out[method] ?? 0) + value;
  }
  return out;
}

function plain(text: string, metric: string): number {
  const match = new RegExp(`^${metric} (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : 0;
}

/** Scrapes the counters of the member whose metrics URL is `metricsUrl`. */
export async function scrape(metricsUrl: string): Promise<EtcdCounters> {
  const res = await fetch(`${metricsUrl}/metrics`);
  const text = await res.text();
  const sent = sumByMethod(text, "grpc_server_msg_sent_total");
  return {
    received: sumByMethod(text, "grpc_server_msg_received_total"),
    started: sumByMethod(text, "grpc_server_started_total"),
    watchSent: sent["Watch"] ?? 0,
    watchers: plain(text, "etcd_debugging_mvcc_watcher_total"),
    watchStreams: plain(text, "etcd_debugging_mvcc_watch_stream_total"),
    puts: plain(text, "etcd_mvcc_put_total"),
    events: plain(text, "etcd_debugging_mvcc_events_total"),
  };
}

/** What etcd received between scrapes `a` and `b`. */
export function delta(a: EtcdCounters, b: EtcdCounters): RequestDelta {
  const byMethod: Record<string, number> = {};
  let total = 0;
  for (const [method, value] of Object.entries(b.received)) {
    const d = value - (a.received[method] ?? 0);
    if (d !== 0) byMethod[method] = d;
    total += d;
  }
  return {
    total,
    byMethod,
    watchStreams: (b.started["Watch"] ?? 0) - (a.started["Watch"] ?? 0),
    watchSent: b.watchSent - a.watchSent,
    puts: b.puts - a.puts,
    events: b.events - a.events,
  };
}

/** Adds deltas. */
export function sumDeltas(deltas: readonly RequestDelta[]): RequestDelta {
  const byMethod: Record<string, number> = {};
  let total = 0, watchStreams = 0, watchSent = 0, puts = 0, events = 0;
  for (const d of deltas) {
    total += d.total;
    watchStreams += d.watchStreams;
    watchSent += d.watchSent;
    puts += d.puts;
    events += d.events;
    for (const [m, v] of Object.entries(d.byMethod)) {
      byMethod[m] = (byMethod[m] ?? 0) + v;
    }
  }
  return { total, byMethod, watchStreams, watchSent, puts, events };
}

/** `Txn 3, Range 1`: the methods of a delta, largest first. */
export function formatMethods(d: RequestDelta): string {
  return Object.entries(d.byMethod).sort((x, y) => y[1] - x[1])
    .map(([m, v]) => `${m} ${v}`).join(", ") || "none";
}
