/**
 * Start-up cost of an etcd port adapter: loads it (dynamic import, so the
 * load is timed), opens it and does one range. Run it with `time` for the
 * whole process:
 *
 *   time deno run -A bench/startup/port_open.ts grpc http://127.0.0.1:2379
 *
 * Prints one line: the adapter, and the load, open and first-range times.
 */

import type { EtcdPort } from "../../lib/etcd/client/port.ts";

const [transport = "gateway", endpoint = "http://127.0.0.1:2379"] = Deno.args;
const options = { endpoints: [endpoint], timeoutMs: 5_000 };
const t0 = performance.now();
const open: (o: typeof options) => Promise<EtcdPort> = transport === "grpc"
  ? (await import("../../lib/etcd/grpc/grpc.ts")).openGrpcPort
  : (await import("../../lib/etcd/gateway/gateway.ts")).openGatewayPort;
const t1 = performance.now();
const port = await open(options);
const t2 = performance.now();
await port.range({ key: new TextEncoder().encode("k") }, {
  deadline: Date.now() + 5_000,
});
const t3 = performance.now();
await port.close();
const ms = (a: number, b: number) => `${(b - a).toFixed(0)} ms`;
console.log(
  `${transport}: load ${ms(t0, t1)}, open ${ms(t1, t2)}, first range ${
    ms(t2, t3)
  }`,
);
