/**
 * A machine that takes a slot with a slot TTL, as locksmithd does (a lease
 * of TTL_SECONDS, the record naming it, the alive key attached to it), and
 * renews the lease every RENEW_MS until it is killed: it prints `locked`
 * once it holds the slot. Tests kill it with SIGKILL to play a machine that
 * dies holding its slot (its last renewal was at most RENEW_MS before).
 *
 * Usage: `deno run -A tests/harness/lease_holder.ts ENDPOINTS GROUP ID TTL_SECONDS RENEW_MS`
 */

import { openEtcdLockStore } from "../../lib/etcd/open.ts";
import { EtcdSlotLease } from "../../lib/etcd/slot_lease.ts";
import { lockSlot } from "../../lib/semaphore/lock_store.ts";

if (import.meta.main) {
  const [endpoints, group, id, ttl, renewMs] = Deno.args;
  if (!endpoints || group === undefined || !id || !ttl || !renewMs) {
    console.error(
      "usage: lease_holder.ts ENDPOINTS GROUP ID TTL_SECONDS RENEW_MS",
    );
    Deno.exit(2);
  }
  const store = await openEtcdLockStore({
    endpoints: endpoints.split(","),
    timeoutMs: 5_000,
  }, group);
  const encoder = new TextEncoder();
  const say = (line: string) =>
    Deno.stdout.writeSync(encoder.encode(`${line}\n`));
  const lease = new EtcdSlotLease(store, {
    id,
    keepAliveMs: Number(renewMs),
    log: (line) => say(`log ${line}`),
  });
  const seconds = Number(ttl);
  const leaseId = await lease.prepare(seconds);
  const record = {
    id,
    since: new Date().toISOString(),
    by: "lease_holder",
    boot: "boot-of-the-holder",
    lease: leaseId,
    ttl: seconds,
  };
  const { revision } = await lockSlot(store, id, { record });
  lease.attach(record, revision);
  say("locked");
  // Hold the slot; the lease keeper renews on its own (unref'd) timer.
  setInterval(() => {}, 60_000);
}
