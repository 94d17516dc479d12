/**
 * A client that takes a slot and then never releases it: it locks `ID`
 * through the real store, prints `locked` on stdout and sleeps until it is
 * killed. Tests start it with the `ctl` permission set and kill it with
 * SIGKILL to play a machine that dies while holding a slot.
 *
 * Usage: `deno run -P=ctl tests/harness/hold_slot.ts ENDPOINTS ID [GROUP]`
 * (ENDPOINTS comma separated).
 */

import { openEtcdLockStore } from "../../lib/etcd/open.ts";
import { lockSlot } from "../../lib/semaphore/lock_store.ts";

if (import.meta.main) {
  const [endpointList, id, group = ""] = Deno.args;
  if (!endpointList || !id) {
    console.error("usage: hold_slot.ts ENDPOINTS ID [GROUP]");
    Deno.exit(2);
  }
  const endpoints = endpointList.split(",");
  const options = { endpoints, timeoutMs: 5_000 };
  const store = await openEtcdLockStore(options, group);
  await lockSlot(store, id);
  await Deno.stdout.write(new TextEncoder().encode("locked\n"));
  // Hold the slot (and the connection) until killed.
  setInterval(() => {}, 60_000);
}
