/**
 * The exact text of every variant of `locksmithctl status` (pure), the
 * settings and slot TTL rules, holder records with a lease, liveness, and
 * the keys of groups.
 */

import assert from "node:assert/strict";
import {
  formatGroups,
  formatStatusView,
  groupsJson,
  statusJson,
} from "../lib/ctl/status_text.ts";
import { formatAge } from "../lib/common/duration.ts";
import type {
  HolderState,
  SemaphoreView,
} from "../lib/semaphore/semaphore_view.ts";
import { livenessOf, staleHolders } from "../lib/semaphore/semaphore_view.ts";
import {
  effectiveSlotTtl,
  parseSettings,
  parseSlotTtl,
  withSlotTtl,
} from "../lib/semaphore/settings.ts";
import {
  formatHolderRecord,
  parseHolderRecord,
} from "../lib/semaphore/holder_record.ts";
import { groupOfKey, semaphoreKey } from "../lib/semaphore/keys.ts";
import { ValueDefect } from "../lib/common/value_parsers.ts";

const NOW = new Date("2026-03-05T10:00:00Z");
const A = "69d27b356a94476da859461d3a3bc6fd";
const B = "0123456789abcdef0123456789abcdef";

function view(overrides: Partial<SemaphoreView> = {}): SemaphoreView {
  const holders = overrides.holders ?? [];
  const max = overrides.doc?.max ?? 1;
  return {
    key: semaphoreKey(),
    raw: undefined,
    docRevision: 5,
    docVersion: 2,
    revision: 9,
    paused: false,
    settings: { kind: "absent" },
    waiters: [],
    waiting: 0,
    ...overrides,
    holders,
    doc: {
      semaphore: max - holders.length,
      max,
      holders: holders.map((h) => h.id),
    },
  };
}

const bare = (id: string): HolderState => ({
  id,
  recordRevision: 0,
  alive: false,
});

const daemonHolder: HolderState = {
  id: A,
  record: {
    id: A,
    since: "2026-03-05T09:47:57Z",
    by: "locksmithd",
    boot: "2b5e0b8a-5b0e-4c54-9cbb-2d6c2bc3f1a7",
    lease: "7587879854321",
    ttl: 600,
  },
  recordRevision: 12,
  alive: true,
};

Deno.test("status without holders is the original's text, byte for byte", () => {
  assert.equal(formatStatusView(view(), NOW), "Available: 1\nMax: 1\n");
});

Deno.test("status with holders but no records, queue, pause or settings is the original's text, byte for byte", () => {
  assert.equal(
    formatStatusView(
      view({
        holders: [bare(B), bare(A)],
        doc: { semaphore: 0, max: 2, holders: [] },
      }),
      NOW,
    ),
    `Available: 0\nMax: 2\n\nMACHINE ID\n${B}\n${A}\n`,
  );
});

Deno.test("status with holder records shows each holder's age, taker, boot and lease", () => {
  const dead: HolderState = {
    ...daemonHolder,
    id: B,
    record: {
      ...daemonHolder.record!,
      id: B,
      since: "2026-03-04T07:30:00Z",
      boot: "e2f1",
    },
    alive: false,
  };
  const text = formatStatusView(
    view({
      holders: [dead, daemonHolder, bare("fleetlock-zincati-1")],
      doc: { semaphore: 0, max: 3, holders: [] },
    }),
    NOW,
  );
  assert.equal(
    text,
    `Available: 0
Max: 3

MACHINE ID                        HELD FOR  BY          BOOT                                  LEASE
${B}  1d2h      locksmithd  e2f1                                  expired
${A}  12m3s     locksmithd  2b5e0b8a-5b0e-4c54-9cbb-2d6c2bc3f1a7  alive
fleetlock-zincati-1               -         -           -                                     -
`,
  );
});

Deno.test("status of a paused semaphore says PAUSED and since when, even without holders", () => {
  assert.equal(
    formatStatusView(
      view({ paused: true, pausedSince: "2026-03-05T09:00:00.000Z" }),
      NOW,
    ),
    `Available: 1\nMax: 1\nPAUSED since 2026-03-05T09:00:00.000Z: no new slot is given until 'locksmithctl resume'\n`,
  );
  assert.equal(
    formatStatusView(view({ paused: true }), NOW),
    `Available: 1\nMax: 1\nPAUSED: no new slot is given until 'locksmithctl resume'\n`,
  );
});

Deno.test("status shows the stored slot TTL, 'off', or why the stored settings are unusable", () => {
  const ttl = (settings: SemaphoreView["settings"]) =>
    formatStatusView(view({ settings }), NOW);
  assert.equal(
    ttl({ kind: "ok", settings: { slotTtlSeconds: 900 } }),
    "Available: 1\nMax: 1\nSlot TTL: 15m\n",
  );
  assert.equal(
    ttl({ kind: "ok", settings: { slotTtlSeconds: 0 } }),
    "Available: 1\nMax: 1\nSlot TTL: off\n",
  );
  assert.equal(
    ttl({ kind: "corrupt", defect: "not valid JSON" }),
    "Available: 1\nMax: 1\nSlot TTL: none (the stored settings do not parse: not valid JSON)\n",
  );
});

Deno.test("status lists the wait queue in order below the holders, with how long each has waited", () => {
  const text = formatStatusView(
    view({
      holders: [daemonHolder],
      waiters: [
        { id: B, since: "2026-03-05T09:55:00Z" },
        { id: "web-2", since: undefined },
      ],
      waiting: 2,
    }),
    NOW,
  );
  assert.equal(
    text,
    `Available: 0
Max: 1

MACHINE ID                        HELD FOR  BY          BOOT                                  LEASE
${A}  12m3s     locksmithd  2b5e0b8a-5b0e-4c54-9cbb-2d6c2bc3f1a7  alive

WAITING                           SINCE
${B}  5m ago
web-2                             -
`,
  );
});

Deno.test("status with a queue but no holders keeps the original's first lines and says how many more wait than are listed", () => {
  assert.equal(
    formatStatusView(
      view({
        waiters: [{ id: B, since: "2026-03-05T09:59:58Z" }],
        waiting: 1001,
      }),
      NOW,
    ),
    `Available: 1\nMax: 1\n\nWAITING                           SINCE\n${B}  2s ago\n... and 1000 more\n`,
  );
});

Deno.test("status never prints a hostile id or boot raw", () => {
  const text = formatStatusView(
    view({
      holders: [{
        id: "evil\u001b[2J",
        record: { id: "evil\u001b[2J", since: "x", by: "a b", boot: "\u202e" },
        recordRevision: 1,
        alive: false,
      }],
    }),
    NOW,
  );
  assert.ok(!text.includes("\u001b") && !text.includes("\u202e"), text);
  assert.ok(
    text.includes(`"evil\\u001b[2J"  -         "a b"  "\\u202e"  -\n`),
    text,
  );
});

Deno.test("status --json carries the original fields, the pause, the TTL, each holder's details and the queue", () => {
  assert.deepEqual(
    statusJson(
      view({
        holders: [daemonHolder],
        paused: true,
        pausedSince: "2026-03-05T09:00:00.000Z",
        settings: { kind: "ok", settings: { slotTtlSeconds: 600 } },
        waiters: [{ id: B, since: "2026-03-05T09:55:00Z" }],
        waiting: 1,
      }),
      NOW,
    ),
    {
      key: semaphoreKey(),
      available: 0,
      max: 1,
      holders: [A],
      paused: true,
      pausedSince: "2026-03-05T09:00:00.000Z",
      slotTtlSeconds: 600,
      settingsDefect: null,
      holderDetails: [{
        id: A,
        since: "2026-03-05T09:47:57Z",
        heldSeconds: 723,
        by: "locksmithd",
        boot: "2b5e0b8a-5b0e-4c54-9cbb-2d6c2bc3f1a7",
        lease: "7587879854321",
        liveness: "alive",
      }],
      waiting: [{ id: B, since: "2026-03-05T09:55:00Z" }],
      waitingCount: 1,
    },
  );
});

Deno.test("status --all-groups is one table of every group, a corrupt one included", () => {
  const prod = view({
    key: semaphoreKey("prod/db"),
    holders: [{ ...daemonHolder, alive: false }],
    doc: { semaphore: 1, max: 2, holders: [] },
    paused: true,
    settings: { kind: "ok", settings: { slotTtlSeconds: 600 } },
    waiting: 4,
  });
  const groups = [
    { group: "", view: view() },
    { group: "prod/db", view: prod },
    {
      group: "web",
      key: semaphoreKey("web"),
      error: `semaphore document at ${
        semaphoreKey("web")
      } is corrupt: not valid JSON`,
    },
  ];
  assert.equal(
    formatGroups(groups),
    `GROUP      AVAILABLE  MAX  HOLDERS  STALE  WAITING  SLOT TTL  STATE
(default)  1          1    0        0      0        -
prod/db    1          2    1        1      4        10m       PAUSED
web        -          -    -        -      -        -         semaphore document at coreos.com/updateengine/rebootlock/groups/web/semaphore is corrupt: not valid JSON
`,
  );
  assert.deepEqual((groupsJson(groups).groups as unknown[])[1], {
    group: "prod/db",
    key: semaphoreKey("prod/db"),
    available: 1,
    max: 2,
    holders: [A],
    stale: [A],
    waitingCount: 4,
    slotTtlSeconds: 600,
    paused: true,
  });
});

Deno.test("formatAge() gives two units at most", () => {
  assert.deepEqual(
    [
      0,
      59_999,
      60_000,
      61_000,
      3_600_000,
      3_661_000,
      86_400_000,
      90_061_000,
      -5,
    ]
      .map(formatAge),
    ["0s", "59s", "1m", "1m1s", "1h", "1h1m", "1d", "1d1h", "0s"],
  );
});

Deno.test("a slot TTL is at least a minute (it must cover a reboot), 0 or off for none, in whole seconds", () => {
  assert.equal(parseSlotTtl("10m"), 600);
  assert.equal(parseSlotTtl("1m"), 60);
  assert.equal(parseSlotTtl("90.5s"), 91);
  assert.equal(parseSlotTtl("0"), 0);
  assert.equal(parseSlotTtl("off"), 0);
  assert.throws(
    () => parseSlotTtl("59s"),
    new ValueDefect(
      "is shorter than the minimum slot TTL 1m (it must cover a machine that is down for its reboot)",
    ),
  );
  assert.throws(
    () => parseSlotTtl("25d"),
    new ValueDefect("is longer than 24d"),
  );
  assert.throws(() => parseSlotTtl("soon"), ValueDefect);
});

Deno.test("stored settings: the TTL stored wins over the daemon's, off is stored, unreadable means none", () => {
  const stored = (raw: string | undefined) =>
    effectiveSlotTtl(parseSettings(raw), 300);
  assert.deepEqual(stored(undefined), { seconds: 300, source: "default" });
  assert.deepEqual(stored("{}"), { seconds: 300, source: "default" });
  assert.deepEqual(stored('{"slotTtlSeconds":900}'), {
    seconds: 900,
    source: "stored",
  });
  assert.deepEqual(stored('{"slotTtlSeconds":0}'), {
    seconds: 0,
    source: "stored",
  });
  assert.deepEqual(stored("{"), { seconds: 0, source: "corrupt" });
  assert.deepEqual(stored('{"slotTtlSeconds":5}'), {
    seconds: 0,
    source: "corrupt",
  });
  assert.deepEqual(stored('{"slotTtlSeconds":"10m"}'), {
    seconds: 0,
    source: "corrupt",
  });
  assert.equal(
    withSlotTtl('{"other":1,"slotTtlSeconds":60}', 600),
    '{"other":1,"slotTtlSeconds":600}',
  );
  assert.equal(
    withSlotTtl('{"other":1,"slotTtlSeconds":60}', undefined),
    '{"other":1}',
  );
  assert.equal(withSlotTtl(undefined, 0), '{"slotTtlSeconds":0}');
});

Deno.test("a holder record names its lease and TTL; a record with a malformed lease is not one", () => {
  const record = {
    id: A,
    since: "2026-03-05T09:00:00Z",
    by: "locksmithd",
    boot: "b",
    lease: "7587879854321",
    ttl: 600,
  };
  assert.deepEqual(parseHolderRecord(formatHolderRecord(record)), record);
  assert.equal(
    parseHolderRecord(JSON.stringify({ ...record, lease: 12 })),
    undefined,
  );
  assert.equal(
    parseHolderRecord(JSON.stringify({ ...record, lease: "-1" })),
    undefined,
  );
  assert.equal(
    parseHolderRecord(JSON.stringify({ ...record, ttl: 0 })),
    undefined,
  );
});

Deno.test("a holder is stale only when its record names a lease and its alive key is gone", () => {
  const expired = { ...daemonHolder, alive: false };
  assert.equal(livenessOf(daemonHolder), "alive");
  assert.equal(livenessOf(expired), "expired");
  assert.equal(livenessOf(bare(A)), "untracked");
  assert.deepEqual(
    staleHolders(view({ holders: [daemonHolder, expired, bare(B)] })).map((h) =>
      h.alive
    ),
    [false],
  );
});

Deno.test("groupOfKey() names the group of a semaphore key and nothing else", () => {
  assert.equal(groupOfKey(semaphoreKey()), "");
  assert.equal(groupOfKey(semaphoreKey("prod/database")), "prod/database");
  assert.equal(groupOfKey(semaphoreKey("web servers")), "web servers");
  assert.equal(groupOfKey(`${semaphoreKey("web")}/holders/x`), undefined);
  assert.equal(
    groupOfKey("coreos.com/updateengine/rebootlock/groups/a/b/semaphore"),
    undefined,
  );
});
