/** The history's pure parts: entries, pairing events into reboots, and the figures for the metrics. */

import assert from "node:assert/strict";
import {
  formatHistoryEntry,
  type HistoryEvent,
  historySlotKey,
  holderChanges,
  parseHistoryEntry,
} from "../lib/semaphore/history.ts";
import {
  linesSince,
  mergeLines,
  rebootLines,
} from "../lib/semaphore/reboots.ts";
import { formatHistory } from "../lib/ctl/history_text.ts";

const at = (minute: number) =>
  new Date(Date.UTC(2024, 5, 3, 2, minute)).toISOString();

Deno.test("a history entry round-trips, and anything else is junk", () => {
  const events: HistoryEvent[] = [
    { kind: "taken", id: "a", at: at(0), by: "locksmithd", boot: "b1" },
    { kind: "released", id: "a", at: at(5), since: at(0) },
  ];
  assert.deepEqual(parseHistoryEntry(formatHistoryEntry(events)), events);
  for (
    const junk of [
      "",
      "null",
      "[]",
      '{"events":{}}',
      '{"events":[{"kind":"eaten","id":"a","at":"2024-06-03T02:00:00Z"}]}',
      '{"events":[{"kind":"taken","id":"","at":"2024-06-03T02:00:00Z"}]}',
      '{"events":[{"kind":"taken","id":"a","at":"yesterday"}]}',
      '{"events":[{"kind":"taken","id":"a","at":"2024-06-03T02:00:00Z","by":7}]}',
    ]
  ) assert.equal(parseHistoryEntry(junk), undefined, junk);
  assert.equal(historySlotKey("k", 1_234), "k/history/234");
  assert.deepEqual(holderChanges(["a", "b"], ["b", "c"]), {
    taken: ["c"],
    ended: ["a"],
  });
});

Deno.test("rebootLines pairs each take with its end; open slots come first, then the latest end", () => {
  const lines = rebootLines("web", [
    { kind: "taken", id: "a", at: at(0), by: "locksmithd" },
    { kind: "taken", id: "b", at: at(1) },
    { kind: "released", id: "a", at: at(7) },
    { kind: "taken", id: "c", at: at(2) },
    { kind: "reclaimed", id: "b", at: at(20), since: at(1) },
    { kind: "taken", id: "d", at: at(3) },
    // An end whose take rotated out of the history: its own `since` counts.
    { kind: "returned", id: "e", at: at(30), since: at(29) },
  ], ["c"]);
  assert.deepEqual(
    lines.map((l) => [l.id, l.outcome, l.awayMs]),
    [
      ["c", "holding", undefined],
      ["d", "lost", undefined],
      ["e", "returned", 60_000],
      ["b", "reclaimed", 19 * 60_000],
      ["a", "back", 7 * 60_000],
    ],
  );
  assert.equal(lines[4]?.by, "locksmithd");
  // Since 02:10: open slots always, ended ones from then on.
  assert.deepEqual(
    linesSince(lines, Date.parse(at(10))).map((l) => l.id),
    ["c", "d", "e", "b"],
  );
  const merged = mergeLines([
    lines,
    rebootLines("db", [{ kind: "taken", id: "x", at: at(-5) }]),
  ]);
  assert.deepEqual(merged.map((l) => l.id), ["x", "c", "d", "e", "b", "a"]);
});

Deno.test("history text marks the machines that never came back and says when there is nothing", () => {
  const now = new Date(at(40));
  const lines = rebootLines("", [
    { kind: "taken", id: "a", at: at(0) },
    { kind: "taken", id: "b", at: at(1) },
    { kind: "released", id: "b", at: at(6) },
  ]);
  assert.equal(
    formatHistory(lines, now, "24h", false),
    [
      "  MACHINE  TOOK AT               BACK AT               AWAY  OUTCOME",
      "* a        2024-06-03 02:00:00Z  -                     40m+  holding: never released",
      "  b        2024-06-03 02:01:00Z  2024-06-03 02:06:00Z  5m    back",
      "",
    ].join("\n"),
  );
  assert.equal(
    formatHistory([], now, "1h", true),
    "No reboot in the last 1h\n",
  );
});
