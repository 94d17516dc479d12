/**
 * locksmithd as a subprocess with a slot TTL, against a real etcd and a
 * private system bus: the slot it takes is renewed by a lease (its record
 * names the lease, its alive key exists), the lease outlives the daemon's
 * stop for the reboot, the daemon after the reboot resumes it and releases
 * the slot, revoking it. An invalid TTL stops the daemon at start.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { startMachine } from "./harness/machine.ts";
import {
  aliveKey,
  holderRecordKey,
  semaphoreKey,
} from "../lib/semaphore/keys.ts";
import { parseHolderRecord } from "../lib/semaphore/holder_record.ts";
import { openEtcdPort } from "../lib/etcd/open.ts";

Deno.test("locksmithd renews its slot with a lease of the slot TTL through a reboot", async () => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  const group = "ttl-daemon";
  const key = semaphoreKey(group);
  const m = await startMachine({
    id: "ttl-machine",
    endpoint: etcd.endpoint,
    config: { LOCKSMITHD_GROUP: group, LOCKSMITHD_SLOT_TTL: "2m" },
  });
  try {
    m.startDaemon();
    await m.waitForLine(/waiting for a reboot to be needed/);
    await m.needReboot();
    await m.waitForLine(/reboot requested$/);
    assert.match(
      m.lines.join("\n"),
      /the slot is renewed with lease \d+ \(slot TTL 2m\) until it is released after the reboot/,
    );
    const record = parseHolderRecord(
      (await client.get(holderRecordKey(key, m.id)).string()) ?? "",
    );
    assert.equal(record?.ttl, 120);
    assert.equal(record?.by, "locksmithd");
    const alive = (await client.get(aliveKey(key, m.id)).exec()).kvs[0];
    assert.equal(alive?.lease, record?.lease);

    // The reboot: the daemon stops and its lease stays (the TTL covers the
    // reboot), so the slot is not stale; a new boot starts the daemon again.
    assert.equal(await m.stopDaemon(), 0);
    const kept = (await client.get(aliveKey(key, m.id)).exec()).kvs[0];
    assert.equal(kept?.lease, record?.lease);
    await m.reboot();
    await m.waitForLine(/released the slot held by ttl-machine/);
    assert.match(
      m.lines.join("\n"),
      /renewing the lease on this machine's slot until it is released/,
    );
    assert.doesNotMatch(m.lines.join("\n"), /had expired|was reclaimed/);
    assert.equal(
      await client.get(key).string(),
      '{"semaphore":1,"max":1,"holders":[]}',
    );
    assert.equal(await client.get(holderRecordKey(key, m.id)).string(), null);
    assert.equal(await client.get(aliveKey(key, m.id)).string(), null);
    const port = await openEtcdPort({
      endpoints: etcd.endpoints,
      timeoutMs: 5_000,
    });
    try {
      const ttl = await port.leaseKeepAlive(record!.lease!, {
        deadline: Date.now() + 5_000,
      });
      assert.equal(ttl, 0, "the lease was revoked after the release");
    } finally {
      await port.close();
    }
  } finally {
    await m.close();
    client.close();
    await etcd.close();
  }
});

Deno.test("locksmithd refuses a slot TTL shorter than a minute at start, naming the key", async () => {
  const m = await startMachine({
    id: "short-ttl",
    endpoint: "http://127.0.0.1:1",
    config: { LOCKSMITHD_SLOT_TTL: "30s" },
  });
  try {
    m.startDaemon();
    assert.equal(await m.exited(), 2);
    assert.match(
      m.lines.join("\n"),
      /LOCKSMITHD_SLOT_TTL="30s" \(from [^)]+\) is shorter than the minimum slot TTL 1m \(it must cover a machine that is down for its reboot\)/,
    );
  } finally {
    await m.close();
  }
});
