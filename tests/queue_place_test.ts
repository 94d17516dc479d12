/** Where a waiter stands, from one reading of the queue (pure). */

import assert from "node:assert/strict";
import { placeOf } from "../lib/etcd/queue/queue_place.ts";
import { waiterEntryFrom } from "../lib/etcd/store/waiter_entry.ts";
import { bytes, type KeyValue } from "../lib/etcd/client/port.ts";

const PREFIX = "k/waiters/";
const kv = (key: string, value: string, createRevision: number): KeyValue => ({
  key: bytes(`${PREFIX}${key}`),
  value: bytes(value),
  createRevision,
  modRevision: createRevision,
  version: 1,
  lease: "7",
});
const entry = (id: string, rev: number) =>
  kv(id, JSON.stringify({ id, since: "2026-01-01T00:00:00Z" }), rev);

Deno.test("placeOf() puts the oldest entry first, the next second, the rest behind the two ahead", () => {
  const [a, b, c, d] = [
    entry("a", 10),
    entry("b", 11),
    entry("c", 12),
    entry("d", 13),
  ];
  const reading = (mine: KeyValue, predecessors: KeyValue[]) => ({
    first: [a, b],
    predecessors,
    mine,
    count: 4,
  });
  assert.equal(placeOf(PREFIX, reading(a, []), 10).place, "head");
  const second = placeOf(PREFIX, reading(b, [a]), 11);
  assert.equal(second.place, "second");
  assert.equal(second.place === "second" && second.head.id, "a");
  const behind = placeOf(PREFIX, reading(d, [c, b]), 13);
  assert.deepEqual(
    behind.place === "behind" && behind.ahead.map((e) => e.id),
    ["c", "b"],
  );
});

Deno.test("placeOf() says out when this machine's entry is gone or was created again", () => {
  const a = entry("a", 10);
  const reading = { first: [a], predecessors: [], count: 1 };
  assert.equal(
    placeOf(PREFIX, { ...reading, mine: undefined }, 10).place,
    "out",
  );
  assert.equal(
    placeOf(PREFIX, { ...reading, mine: entry("a", 99) }, 10).place,
    "out",
  );
});

Deno.test("placeOf() reports entries that cannot be waiters, by their own key", () => {
  const junk = [
    kv("%zz", "x", 5),
    kv("foo", "machine-2", 6),
    kv("bar", '{"id":"x"}', 7),
  ];
  const me = entry("me", 8);
  const p = placeOf(PREFIX, {
    first: junk.slice(0, 2),
    predecessors: [junk[2]!],
    mine: me,
    count: 4,
  }, 8);
  assert.equal(p.place, "junk");
  assert.equal(p.place === "junk" && p.junk.length, 3);
});

Deno.test("waiterEntryFrom() accepts the bare id of older versions and JSON naming the key's id", () => {
  assert.equal(waiterEntryFrom(PREFIX, kv("m1", "m1", 3))?.id, "m1");
  assert.equal(waiterEntryFrom(PREFIX, entry("prod%2Fdb", 3)), undefined);
  assert.equal(
    waiterEntryFrom(
      PREFIX,
      kv("prod%2Fdb", JSON.stringify({ id: "prod/db" }), 3),
    )?.id,
    "prod/db",
  );
  assert.equal(waiterEntryFrom(PREFIX, kv("m1", "m2", 3)), undefined);
});
