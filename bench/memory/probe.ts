/**
 * Memory floors for the benchmark: a process that loads one part of what
 * locksmithd loads and then idles until killed, so that its resident set can
 * be compared with the daemon's.
 *
 * Usage: `deno run -A bench/memory/probe.ts MODE`, MODE one of `idle`,
 * `etcd3 ENDPOINTS KEY` (etcd3 client, read, watch), `gateway-watch
 * ENDPOINTS KEY` (the same over etcd's JSON gateway with fetch: a prototype),
 * `dbus`
 * (`dbus` connects to `DBUS_SYSTEM_BUS_ADDRESS`).
 */

const [mode, endpoints, key] = Deno.args;
if (mode === "etcd3" && endpoints && key) {
  const { openMachineStore } = await import("../machine.ts");
  const store = await openMachineStore(endpoints.split(","), key);
  await store.read();
  // Opens the watch, as a waiting locksmithd has.
  store.waitForChange(store.revision, 24 * 3600_000).catch(() => {});
} else if (mode === "gateway-watch" && endpoints && key) {
  // Prototype: the same read and watch through etcd's JSON gateway with
  // fetch, without grpc-js and protobufjs.
  const { parseSemaphore } = await import("../../lib/semaphore/document.ts");
  const base64 = (t: string) =>
    btoa(String.fromCharCode(...new TextEncoder().encode(t)));
  const endpoint = endpoints.split(",")[0]!;
  const res = await fetch(`${endpoint}/v3/kv/range`, {
    method: "POST",
    body: JSON.stringify({ key: base64(key) }),
  });
  const body = await res.json() as { kvs?: { value: string }[] };
  if (body.kvs?.[0]) parseSemaphore(atob(body.kvs[0].value), key);
  const watch = await fetch(`${endpoint}/v3/watch`, {
    method: "POST",
    body: JSON.stringify({ create_request: { key: base64(key) } }),
  });
  (async () => {
    for await (const _ of watch.body!) { /* events */ }
  })();
} else if (mode === "dbus") {
  const { connectSystemBus } = await import("../../lib/dbus/system_bus.ts");
  await connectSystemBus({});
} else if (mode !== "idle") {
  console.error(
    "usage: probe.ts idle | etcd3 ENDPOINTS KEY | gateway-watch ENDPOINTS KEY | dbus",
  );
  Deno.exit(2);
}
setInterval(() => {}, 3600_000);
