/**
 * A machine that joins a semaphore's wait queue and waits there, for tests
 * of what a dead or stopped waiter leaves behind: it prints `joined` on
 * stdout once queued; SIGTERM makes it leave cleanly (revoking its lease);
 * SIGKILL leaves its entry to expire with the lease.
 *
 * Usage: `deno run -A tests/harness/queue_waiter.ts ENDPOINTS GROUP ID TTL_SECONDS`
 */

import { openEtcdStore } from "../../lib/etcd/open.ts";
import { LeaseSession } from "../../lib/etcd/queue/lease_session.ts";
import { EtcdWaitQueue } from "../../lib/etcd/queue/wait_queue.ts";

if (import.meta.main) {
  const [endpoints, group, id, ttl] = Deno.args;
  if (!endpoints || group === undefined || !id || !ttl) {
    console.error("usage: queue_waiter.ts ENDPOINTS GROUP ID TTL_SECONDS");
    Deno.exit(2);
  }
  const store = await openEtcdStore({
    endpoints: endpoints.split(","),
    timeoutMs: 5_000,
  }, group);
  const queue = new EtcdWaitQueue(store, {
    id,
    session: new LeaseSession(store.port, {
      timeoutMs: 5_000,
      ttlSeconds: Number(ttl),
    }),
  });
  const state = await queue.join();
  await Deno.stdout.write(new TextEncoder().encode(`joined ${state.place}\n`));
  Deno.addSignalListener("SIGTERM", async () => {
    await queue.close();
    await store.close();
    Deno.exit(0);
  });
  setInterval(() => {}, 60_000);
}
