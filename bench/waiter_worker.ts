/**
 * A process of simulated machines for the waiting-cost measurement: COUNT
 * machines, each with its own etcd client and connections, each running the
 * real locksmithd loop until it takes a slot. Reports on stdout, one line
 * each: `waiting ID` (first time the machine waits for a slot), `held ID
 * EPOCH_MS` (it took a slot), `warn ID MESSAGE`. Stops on SIGTERM.
 *
 * Usage: `deno run -A bench/waiter_worker.ts ENDPOINTS KEY COUNT PREFIX`
 */

import { openMachineStore, takeSlotLikeLocksmithd } from "./machine.ts";

const encoder = new TextEncoder();
function report(line: string): void {
  const bytes = encoder.encode(`${line}\n`);
  let offset = 0;
  while (offset < bytes.length) {
    offset += Deno.stdout.writeSync(bytes.subarray(offset));
  }
}

if (import.meta.main) {
  const [endpointList, key, countText, prefix] = Deno.args;
  if (!endpointList || !key || !countText || !prefix) {
    console.error("usage: waiter_worker.ts ENDPOINTS KEY COUNT PREFIX");
    Deno.exit(2);
  }
  const endpoints = endpointList.split(",");
  const stop = new AbortController();
  Deno.addSignalListener("SIGTERM", () => stop.abort());
  const stores = await Promise.all(
    Array.from(
      { length: Number(countText) },
      () => openMachineStore(endpoints, key),
    ),
  );
  await Promise.all(stores.map(async (store, i) => {
    const id = `${prefix}-${i}`;
    let waited = false;
    const held = await takeSlotLikeLocksmithd(store, id, {
      signal: stop.signal,
      onWaiting: () => {
        if (!waited) report(`waiting ${id}`);
        waited = true;
      },
      onWarning: (m) => report(`warn ${id} ${m.replace(/\n/g, " ")}`),
    });
    if (held) report(`held ${id} ${Date.now()}`);
  }));
  // Every machine took a slot or was stopped: hold the connections until stopped.
  if (!stop.signal.aborted) {
    await new Promise((resolve) =>
      stop.signal.addEventListener("abort", resolve)
    );
  }
  await Promise.all(stores.map((s) => s.close().catch(() => {})));
  Deno.exit(0);
}
