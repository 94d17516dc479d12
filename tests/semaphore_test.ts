import assert from "node:assert/strict";
import {
  formatSemaphore,
  INITIAL_SEMAPHORE,
  lock,
  MAX_HOLDERS,
  parseSemaphore,
  type Semaphore,
  setMax,
  unlock,
} from "../lib/semaphore/document.ts";
import {
  CorruptDocumentError,
  SemaphoreRefusedError,
  UsageError,
} from "../lib/common/errors.ts";
import { queryEscape, semaphoreKey } from "../lib/semaphore/keys.ts";

const KEY = "coreos.com/updateengine/rebootlock/semaphore";
const doc = (semaphore: number, max: number, holders: string[]): Semaphore => ({
  semaphore,
  max,
  holders,
});

function refusal(fn: () => unknown, reason: string): void {
  assert.throws(
    fn,
    (e) => e instanceof SemaphoreRefusedError && e.reason === reason,
  );
}

Deno.test("lock() takes a slot and keeps holders sorted", () => {
  const a = lock(doc(3, 3, []), "b");
  const b = lock(a, "a");
  assert.deepEqual(b, doc(1, 3, ["a", "b"]));
});

Deno.test("lock() refuses a second holder when max is 1", () => {
  const held = lock(INITIAL_SEMAPHORE, "m1");
  refusal(() => lock(held, "m2"), "semaphore_full");
  assert.throws(() => lock(held, "m2"), /semaphore is at 0/);
});

Deno.test("lock() reports holder_exists before semaphore_full for a holder re-locking", () => {
  const full = lock(INITIAL_SEMAPHORE, "m1");
  refusal(() => lock(full, "m1"), "holder_exists");
});

Deno.test("lock() refuses while set-max left the semaphore negative", () => {
  const over = setMax(doc(0, 2, ["a", "b"]), 1);
  assert.deepEqual(over, doc(-1, 1, ["a", "b"]));
  refusal(() => lock(over, "c"), "semaphore_full");
});

Deno.test("lock() refuses a holder past MAX_HOLDERS, which the stored document may not list", () => {
  const holders = Array.from(
    { length: MAX_HOLDERS },
    (_, i) => `m${String(i).padStart(5, "0")}`,
  );
  const crowded = doc(10, MAX_HOLDERS + 10, holders);
  refusal(() => lock(crowded, "z"), "semaphore_full");
  refusal(() => lock(crowded, "m00000"), "holder_exists");
  const one = lock(doc(1, MAX_HOLDERS, holders.slice(1)), "m00000");
  assert.equal(
    parseSemaphore(formatSemaphore(one), KEY).holders.length,
    MAX_HOLDERS,
  );
});

Deno.test("unlock() releases the slot and refuses an id that holds none", () => {
  assert.deepEqual(unlock(doc(0, 2, ["a", "b"]), "a"), doc(1, 2, ["b"]));
  refusal(() => unlock(doc(1, 1, []), "a"), "holder_not_found");
});

Deno.test("setMax() keeps holders and adjusts the available count", () => {
  assert.deepEqual(setMax(doc(0, 1, ["a"]), 4), doc(3, 4, ["a"]));
  assert.deepEqual(setMax(doc(3, 4, ["a"]), 0), doc(-1, 0, ["a"]));
  assert.throws(() => setMax(INITIAL_SEMAPHORE, -1), UsageError);
  assert.throws(() => setMax(INITIAL_SEMAPHORE, 1.5), UsageError);
});

Deno.test("operations never mutate their input", () => {
  const before = doc(2, 2, ["a"]);
  const frozen = JSON.stringify(before);
  lock(before, "b");
  unlock(before, "a");
  setMax(before, 5);
  assert.equal(JSON.stringify(before), frozen);
});

Deno.test("parseSemaphore() accepts the original's null holders and the compact form", () => {
  assert.deepEqual(
    parseSemaphore('{"semaphore":1,"max":1,"holders":null}', KEY),
    doc(1, 1, []),
  );
  assert.deepEqual(
    parseSemaphore(
      '{\n\t"semaphore": 0,\n\t"max": 1,\n\t"holders": ["x"]\n}',
      KEY,
    ),
    doc(0, 1, ["x"]),
  );
  assert.equal(
    formatSemaphore(doc(0, 1, ["x"])),
    '{"semaphore":0,"max":1,"holders":["x"]}',
  );
});

const CORRUPT: [string, string, RegExp][] = [
  ["not JSON", "{semaphore", /not valid JSON/],
  ["an array", "[1,2]", /not a JSON object/],
  ["a string", '"x"', /not a JSON object/],
  ["missing max", '{"semaphore":1,"holders":[]}', /missing field "max"/],
  [
    "string max",
    '{"semaphore":1,"max":"1","holders":[]}',
    /"max" is not an integer/,
  ],
  [
    "fractional semaphore",
    '{"semaphore":0.5,"max":1,"holders":[]}',
    /"semaphore" is not an integer/,
  ],
  ["negative max", '{"semaphore":-1,"max":-1,"holders":[]}', /"max" is -1/],
  [
    "holders object",
    '{"semaphore":1,"max":1,"holders":{}}',
    /"holders" is not a list/,
  ],
  [
    "numeric holder",
    '{"semaphore":0,"max":1,"holders":[7]}',
    /holder #1 is not a string/,
  ],
  [
    "empty holder",
    '{"semaphore":0,"max":1,"holders":[""]}',
    /holder #1 is empty/,
  ],
  [
    "duplicate holder",
    '{"semaphore":0,"max":2,"holders":["a","a"]}',
    /appears twice/,
  ],
  [
    "unsorted holders",
    '{"semaphore":0,"max":2,"holders":["b","a"]}',
    /not sorted/,
  ],
  [
    "extra field",
    '{"semaphore":1,"max":1,"holders":[],"x":1}',
    /unknown field "x"/,
  ],
  [
    "inconsistent count",
    '{"semaphore":1,"max":1,"holders":["a"]}',
    /minus 1 holder\(s\) is 0/,
  ],
  [
    "control char id",
    '{"semaphore":0,"max":1,"holders":["a\\nb"]}',
    /control character/,
  ],
];

for (const [what, raw, message] of CORRUPT) {
  Deno.test(`parseSemaphore() names the key and the defect for ${what}`, () => {
    assert.throws(
      () => parseSemaphore(raw, KEY),
      (e) =>
        e instanceof CorruptDocumentError && e.key === KEY && e.raw === raw &&
        message.test(e.message) &&
        e.message.startsWith(`semaphore document at ${KEY}`),
    );
  });
}

Deno.test("parseSemaphore() refuses a huge holders list", () => {
  const holders = Array.from(
    { length: MAX_HOLDERS + 1 },
    (_, i) => `id${String(i).padStart(6, "0")}`,
  );
  const raw = JSON.stringify({ semaphore: 0, max: holders.length, holders });
  assert.throws(() => parseSemaphore(raw, KEY), /more than|bytes/);
});

Deno.test("semaphoreKey() url-escapes groups like Go's url.QueryEscape", () => {
  assert.equal(semaphoreKey(), KEY);
  assert.equal(semaphoreKey(""), KEY);
  assert.equal(
    semaphoreKey("prod/database"),
    "coreos.com/updateengine/rebootlock/groups/prod%2Fdatabase/semaphore",
  );
  assert.equal(queryEscape("a b*~!'()"), "a+b%2A~%21%27%28%29");
});
