import assert from "node:assert/strict";
import {
  documentBytes,
  formatSemaphore,
  INITIAL_SEMAPHORE,
  lock,
  MAX_DOCUMENT_BYTES,
  MAX_HOLDERS,
  parseSemaphore,
  type Semaphore,
  setMax,
  storedText,
  unlock,
  utf8Bytes,
} from "../lib/semaphore/document.ts";
import {
  CorruptDocumentError,
  DocumentLimitError,
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

// ------------------------------------------------- limits of every write

/** Ids of exactly 256 bytes whose JSON escaping doubles: 252 backslashes. */
const escapedId = (i: number) =>
  `${String(i).padStart(4, "0")}${"\\".repeat(252)}`;

Deno.test("utf8Bytes() counts what TextEncoder writes, without encoding", () => {
  const encoder = new TextEncoder();
  for (
    const text of [
      "",
      "ascii",
      "é",
      "€uro",
      "𝄞 clef",
      "\ud800 lone high",
      "lone low \udc00",
      "\ud83d\ude00\ud83d",
      JSON.stringify('a\\"b\u00e9\ud83d\ude00'),
    ]
  ) {
    assert.equal(utf8Bytes(text), encoder.encode(text).length, text);
  }
});

Deno.test("documentBytes() after any mix of lock and unlock is the stored size", () => {
  let random = 7;
  const next = () => (random = (random * 48271) % 2147483647) / 2147483647;
  const pieces = ["a", "é", "€", "𝄞", "\\", '"', "z"];
  let current: Semaphore = doc(40, 40, []);
  const ids: string[] = [];
  for (let step = 0; step < 400; step++) {
    if (ids.length > 0 && next() < 0.4) {
      const id = ids.splice(Math.floor(next() * ids.length), 1)[0]!;
      current = unlock(current, id);
    } else if (current.semaphore > 0) {
      const id = Array.from(
        { length: 1 + Math.floor(next() * 12) },
        () => pieces[Math.floor(next() * pieces.length)],
      ).join("") + step;
      current = lock(current, id);
      ids.push(id);
    }
    assert.equal(
      documentBytes(current),
      new TextEncoder().encode(formatSemaphore(current)).length,
      `step ${step}`,
    );
  }
});

Deno.test("lock() refuses, naming the limit, a holder that would make the document too large to read", () => {
  let full: Semaphore = doc(600, 600, []);
  let listed = 0;
  for (;; listed++) {
    try {
      full = lock(full, escapedId(listed));
    } catch (error) {
      assert.ok(error instanceof DocumentLimitError, String(error));
      assert.equal(error.reason, "semaphore_full");
      assert.match(
        error.message,
        /no room for "0512\\\\.*: with it, document is 262\d{3} bytes, more than 262144 \(the limit every reader enforces\)/,
      );
      break;
    }
  }
  assert.equal(listed, 512, "510 bytes each: 512 fit in 262,144 bytes");
  const raw = formatSemaphore(full);
  assert.ok(new TextEncoder().encode(raw).length <= MAX_DOCUMENT_BYTES);
  assert.equal(parseSemaphore(raw, KEY).holders.length, 512);
  // A holder releases: there is room again.
  const freed = unlock(full, escapedId(0));
  assert.equal(lock(freed, escapedId(999)).holders.length, 512);
});

Deno.test("lock() refuses an id that no reader would accept", () => {
  for (const id of ["", "a\nb", "x".repeat(257), "\ud800"]) {
    assert.throws(
      () => lock(doc(1, 1, []), id),
      UsageError,
      JSON.stringify(id),
    );
  }
});

Deno.test("storedText() refuses every document that parseSemaphore() would reject", () => {
  const many = Array.from(
    { length: MAX_HOLDERS + 1 },
    (_, i) => `m${String(i).padStart(5, "0")}`,
  );
  const big = Array.from({ length: 520 }, (_, i) => escapedId(i));
  // deno-lint-ignore no-explicit-any
  const cases: [Semaphore, RegExp, new (...args: any[]) => Error][] = [
    [
      doc(-1, 4096, many),
      /"holders" has 4097 entries, more than 4096/,
      DocumentLimitError,
    ],
    [
      doc(80, 600, big),
      /document is \d+ bytes, more than 262144/,
      DocumentLimitError,
    ],
    [
      doc(0, 1, ["x".repeat(257)]),
      /holder #1 is longer than 256 bytes/,
      UsageError,
    ],
    [doc(1, 2, ["b", "a"]), /"holders" is not sorted/, UsageError],
    [doc(0, 2, ["a", "a"]), /holder "a" appears twice/, UsageError],
    [doc(1, 1, ["a"]), /"semaphore" is 1 but max 1 minus 1/, UsageError],
    [doc(0, 2_000_000, []), /"max" is 2000000, outside/, UsageError],
    [doc(0.5, 1, []), /"semaphore" is not an integer/, UsageError],
  ];
  for (const [bad, defect, kind] of cases) {
    const raw = formatSemaphore(bad);
    assert.throws(
      () => parseSemaphore(raw, KEY),
      defect,
      "the reader rejects it",
    );
    assert.throws(
      () => storedText(bad, KEY),
      (e: unknown) => e instanceof kind && defect.test((e as Error).message),
      `the writer refuses it: ${defect}`,
    );
  }
  assert.equal(
    storedText(doc(0, 1, ["a"]), KEY),
    '{"semaphore":0,"max":1,"holders":["a"]}',
  );
});
