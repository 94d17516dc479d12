/** Reads request counters from etcd's own Prometheus `/metrics`. */

async function sumOf(
  metric: string,
  metricsUrl: string,
  methods?: readonly string[],
): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`)) continue;
    const method = /grpc_method="([^"]+)"/.exec(line)?.[1];
    if (methods && (method === undefined || !methods.includes(method))) {
      continue;
    }
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/** Sum of `grpc_server_handled_total` (calls etcd finished) for `methods` (all when absent). */
export function grpcHandled(
  metricsUrl: string,
  methods?: readonly string[],
): Promise<number> {
  return sumOf("grpc_server_handled_total", metricsUrl, methods);
}

/** Sum of `grpc_server_started_total` for `methods` (counts streams when they open). */
export function grpcStarted(
  metricsUrl: string,
  methods?: readonly string[],
): Promise<number> {
  return sumOf("grpc_server_started_total", metricsUrl, methods);
}
