/**
 * A fleet of 5 real locksmithd processes, each with its own private bus,
 * sharing one semaphore with max = 2 in a real etcd.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { fleetIds, rollFleet } from "./harness/fleet.ts";
import { keyHistory } from "./harness/history.ts";
import { checkHistory } from "./harness/invariants.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";

Deno.test("a fleet of 5 daemons with max = 2 reboots each machine exactly once, never more than 2 at a time", async () => {
  const etcd = await startEtcd();
  const group = "fleet";
  const key = semaphoreKey(group);
  try {
    const setMax = await runCtlProcess([
      "set-max",
      "2",
      "--group",
      group,
      "--endpoint",
      etcd.endpoint,
    ]);
    assert.equal(setMax.code, 0, setMax.stderr);
    const result = await rollFleet({
      machines: 5,
      endpoint: etcd.endpoint,
      group,
      rebootMs: 300,
    });
    assert.deepEqual(
      result.reboots,
      Object.fromEntries(fleetIds(5).map((id) => [id, 1])),
    );

    const client = new Etcd3({ hosts: etcd.endpoints });
    try {
      assert.equal(
        await client.get(key).string(),
        '{"semaphore":2,"max":2,"holders":[]}',
      );
    } finally {
      client.close();
    }
    const history = await keyHistory(etcd.endpoints, key);
    const report = checkHistory(key, history);
    assert.deepEqual(report.violations, []);
    assert.equal(
      report.maxHolders,
      2,
      "two machines should have rebooted at once at some point",
    );
    for (const id of fleetIds(5)) {
      assert.deepEqual(report.transitions.get(id), { lock: 1, unlock: 1 }, id);
    }
  } finally {
    await etcd.close();
  }
});
