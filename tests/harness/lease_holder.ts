/**
 * A machine that takes a slot with a slot TTL, as locksmithd does (a lease
 * of TTL_SECONDS, the record naming it, the alive key attached to it), and
 * renews the lease every RENEW_MS until it is killed: it prints `locked`
 * once it holds the slot, and `renewed` after each renewal etcd accepted. Tests kill it with SIGKILL to play a machine that
 * dies holding its slot (its last renewal was at most RENEW_MS before).
 *
 * Usage: `deno run -A tests/harness/lease_holder.ts ENDPOINTS GROUP ID TTL_SECONDS RENEW_MS`
 */

import { openEtcdStore } from "../../lib/etcd/open.ts";
import type { EtcdPort } from "../../lib/etcd/client/port.ts";
import type { EtcdLockStore } from "../../lib/etcd/store/etcd_lock_store.ts";
import { EtcdSlotLease } from "../../lib/etcd/store/etcd_slot_lease.ts";
import { lockSlot } from "../../lib/semaphore/lock_store.ts";

/**
 * Takes `id`'s slot as locksmithd does with a slot TTL: a lease of
 * `ttlSeconds` from `lease`, a record naming it written with the slot, and
 * the lease attached to that record (its keeper renews from then on).
 */
export async function lockWithLease(
  store: EtcdLockStore,
  lease: EtcdSlotLease,
  id: string,
  ttlSeconds: number,
  by = "locksmithd",
  boot?: string,
): Promise<void> {
  const leaseId = await lease.prepare(ttlSeconds);
  const record = {
    id,
    since: new Date().toISOString(),
    by,
    ...(boot === undefined ? {} : { boot }),
    lease: leaseId,
    ttl: ttlSeconds,
  };
  const { revision } = await lockSlot(store, id, { record });
  lease.attach(record, revision);
}

/** The holder's process, and how many renewals etcd has accepted from it so far. */
export type LeaseHolder = Deno.ChildProcess & { renewals(): number };

/**
 * Starts this script as a child (with `-A`) and resolves once it holds the
 * slot; its output is read from then on, counting its renewals.
 */
export async function startLeaseHolder(
  endpoint: string,
  group: string,
  id: string,
  ttlSeconds: number,
  renewMs: number,
): Promise<LeaseHolder> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      endpoint,
      group,
      id,
      String(ttlSeconds),
      String(renewMs),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("locked\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the holder ended before locking: ${text}`);
    text += value;
  }
  // Keep reading its output (so that it never blocks), counting renewals.
  let renewals = 0;
  let rest = text.slice(text.indexOf("locked\n") + "locked\n".length);
  const count = () => {
    const lines = rest.split("\n");
    rest = lines.pop()!;
    renewals += lines.filter((l) => l === "renewed").length;
  };
  count();
  void (async () => {
    while (true) {
      const { value, done } = await reader.read().catch(() => ({
        value: undefined,
        done: true,
      }));
      if (done) return;
      rest += value;
      count();
    }
  })();
  return Object.assign(child, { renewals: () => renewals });
}

if (import.meta.main) {
  const [endpoints, group, id, ttl, renewMs] = Deno.args;
  if (!endpoints || group === undefined || !id || !ttl || !renewMs) {
    console.error(
      "usage: lease_holder.ts ENDPOINTS GROUP ID TTL_SECONDS RENEW_MS",
    );
    Deno.exit(2);
  }
  const store = await openEtcdStore({
    endpoints: endpoints.split(","),
    timeoutMs: 5_000,
  }, group);
  const encoder = new TextEncoder();
  const say = (line: string) =>
    Deno.stdout.writeSync(encoder.encode(`${line}\n`));
  const port = store.port;
  (store as { port: EtcdPort }).port = new Proxy(port, {
    get(target, name) {
      const value = Reflect.get(target, name);
      if (typeof value !== "function") return value;
      if (name !== "leaseKeepAlive") return value.bind(target);
      return async (...args: unknown[]) => {
        const answer = await value.apply(target, args);
        if (answer > 0) say("renewed");
        return answer;
      };
    },
  });
  const lease = new EtcdSlotLease(store, {
    id,
    keepAliveMs: Number(renewMs),
    log: (line) => say(`log ${line}`),
  });
  await lockWithLease(
    store,
    lease,
    id,
    Number(ttl),
    "lease_holder",
    "boot-of-the-holder",
  );
  say("locked");
  // Hold the slot; the lease keeper renews on its own (unref'd) timer.
  setInterval(() => {}, 60_000);
}
