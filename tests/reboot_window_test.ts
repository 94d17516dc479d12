import assert from "node:assert/strict";
import { UsageError } from "../lib/common/errors.ts";
import {
  canonicalTimeZone,
  formatRebootWindow,
  nextWindow,
  parseRebootWindow,
  type RebootWindow,
  RebootWindowError,
  windowContaining,
  type WindowOccurrence,
} from "../lib/schedule/reboot_window.ts";

const HOUR = 3_600_000;
const MINUTE = 60_000;

function at(iso: string): Date {
  return new Date(iso);
}

/** Asserts an occurrence's start and end as ISO instants. */
function assertOccurrence(
  actual: WindowOccurrence | undefined,
  start: string,
  end: string,
): void {
  assert.ok(actual !== undefined, "expected an occurrence, got undefined");
  assert.equal(actual.start.toISOString(), new Date(start).toISOString());
  assert.equal(actual.end.toISOString(), new Date(end).toISOString());
}

function rejects(
  start: string,
  length: string,
  timeZone: string | undefined,
  field: string,
  pattern: RegExp,
): void {
  assert.throws(
    () => parseRebootWindow(start, length, timeZone),
    (error: unknown) => {
      assert.ok(error instanceof RebootWindowError);
      assert.ok(error instanceof UsageError);
      assert.equal(error.exitCode, 2);
      assert.equal(error.field, field);
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes("\n"), "message is one line");
      return true;
    },
  );
}

// ---------------------------------------------------------------- parsing

Deno.test("parseRebootWindow() parses a weekly start with a day name", () => {
  assert.deepEqual(parseRebootWindow("Thu 04:00", "1h30m", "Europe/Berlin"), {
    day: 4,
    hour: 4,
    minute: 0,
    lengthMs: 90 * MINUTE,
    timeZone: "Europe/Berlin",
  });
});

Deno.test("parseRebootWindow() numbers days 0 = Sunday to 6 = Saturday", () => {
  const names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  names.forEach((name, index) => {
    assert.equal(parseRebootWindow(`${name} 01:00`, "1h", "UTC").day, index);
  });
});

Deno.test("parseRebootWindow() accepts day names in any case and one-digit hours", () => {
  for (const start of ["thu 4:00", "THU 04:00", "tHu   4:00", " Thu 04:00 "]) {
    const w = parseRebootWindow(start, "1h", "UTC");
    assert.equal(w.day, 4, start);
    assert.equal(w.hour, 4, start);
    assert.equal(w.minute, 0, start);
  }
});

Deno.test("parseRebootWindow() parses a daily start without a day", () => {
  const w = parseRebootWindow("04:00", "30m", "UTC");
  assert.deepEqual(w, {
    hour: 4,
    minute: 0,
    lengthMs: 30 * MINUTE,
    timeZone: "UTC",
  });
  assert.equal(w.day, undefined);
  assert.equal(parseRebootWindow("0:00", "1h", "UTC").hour, 0);
  const late = parseRebootWindow("23:59", "1h", "UTC");
  assert.equal(late.hour, 23);
  assert.equal(late.minute, 59);
});

Deno.test("parseRebootWindow() accepts lengths just below the daily and weekly limits", () => {
  assert.equal(
    parseRebootWindow("04:00", "23h59m", "UTC").lengthMs,
    24 * HOUR - MINUTE,
  );
  assert.equal(
    parseRebootWindow("Mon 04:00", "6d23h59m", "UTC").lengthMs,
    7 * 24 * HOUR - MINUTE,
  );
  assert.equal(parseRebootWindow("Mon 04:00", "1d", "UTC").lengthMs, 24 * HOUR);
  assert.equal(parseRebootWindow("04:00", "1ms", "UTC").lengthMs, 1);
});

Deno.test("parseRebootWindow() canonicalises the time zone name", () => {
  assert.equal(
    parseRebootWindow("04:00", "1h", "europe/berlin").timeZone,
    "Europe/Berlin",
  );
  assert.equal(parseRebootWindow("04:00", "1h", "utc").timeZone, "UTC");
  assert.equal(canonicalTimeZone("america/new_york"), "America/New_York");
});

Deno.test("parseRebootWindow() uses the system's zone when none is given", () => {
  assert.equal(
    parseRebootWindow("04:00", "1h").timeZone,
    Temporal.Now.timeZoneId(),
  );
});

Deno.test("parseRebootWindow() rejects malformed starts, naming the value and the syntax", () => {
  for (
    const start of [
      "",
      "4",
      "04",
      "4h",
      "04:00:00",
      "04:00 Thu",
      "Thu04:00",
      "Thursday 04:00",
      "Xyz 04:00",
      "Th 04:00",
      "-1:00",
      "04.00",
      "004:00",
    ]
  ) {
    rejects(
      start,
      "1h",
      "UTC",
      "start",
      new RegExp(
        `^window start ${
          JSON.stringify(start).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
        } is not \\[Day \\]H:M with Day one of Sun, Mon, Tue, Wed, Thu, Fri, Sat, H 0-23 and M 0-59`,
      ),
    );
  }
});

Deno.test("parseRebootWindow() rejects hours above 23 and minutes above 59", () => {
  for (const start of ["24:00", "25:00", "12:60", "Thu 99:99"]) {
    rejects(start, "1h", "UTC", "start", /H 0-23 and M 0-59/);
  }
});

Deno.test("parseRebootWindow() rejects a length that is not a duration", () => {
  for (const length of ["", "abc", "1x", "-1h", "1 h", "h"]) {
    rejects(
      "04:00",
      length,
      "UTC",
      "length",
      /^window length ".*" is not a duration like 1h30m/,
    );
  }
});

Deno.test("parseRebootWindow() rejects a zero length", () => {
  for (const length of ["0", "0s", "0h0m"]) {
    rejects(
      "04:00",
      length,
      "UTC",
      "length",
      /^window length ".*" is zero; give a duration longer than 0/,
    );
  }
});

Deno.test("parseRebootWindow() rejects a daily window of 24h or more", () => {
  for (const length of ["24h", "25h", "1d", "23h60m"]) {
    rejects(
      "04:00",
      length,
      "UTC",
      "length",
      /is not shorter than 24h, the limit for a daily window/,
    );
  }
});

Deno.test("parseRebootWindow() rejects a weekly window of 7d or more", () => {
  for (const length of ["7d", "168h", "8d"]) {
    rejects(
      "Thu 04:00",
      length,
      "UTC",
      "length",
      /is not shorter than 7d, the limit for a weekly window/,
    );
  }
});

Deno.test("parseRebootWindow() rejects an unknown time zone", () => {
  for (const zone of ["Nope/Zone", "", "Mars/Olympus", "CEST+2"]) {
    rejects(
      "04:00",
      "1h",
      zone,
      "timeZone",
      /^window time zone ".*" is not a known IANA time zone, e.g. Europe\/Berlin/,
    );
  }
});

Deno.test("RebootWindowError exposes the field, the raw value and the defect", () => {
  try {
    parseRebootWindow("Thu 04:00", "8d", "UTC");
    assert.fail("expected an error");
  } catch (error) {
    assert.ok(error instanceof RebootWindowError);
    assert.equal(error.field, "length");
    assert.equal(error.value, "8d");
    assert.match(error.defect, /^is not shorter than 7d/);
    assert.equal(error.message, `window length "8d" ${error.defect}`);
    assert.equal(error.name, "RebootWindowError");
  }
});

// ---------------------------------------------------------------- formatting

Deno.test("formatRebootWindow() shows day, time, length and zone", () => {
  assert.equal(
    formatRebootWindow(
      parseRebootWindow("thu 4:00", "1h30m", "Europe/Berlin"),
    ),
    "Thu 04:00 for 1h30m (Europe/Berlin)",
  );
  assert.equal(
    formatRebootWindow(parseRebootWindow("22:05", "45m", "UTC")),
    "daily 22:05 for 45m (UTC)",
  );
});

// ---------------------------------------------------------------- daily windows

const daily4 = parseRebootWindow("04:00", "1h", "UTC");

Deno.test("windowContaining() includes the start and excludes the end", () => {
  assert.equal(
    windowContaining(daily4, at("2024-05-10T03:59:59.999Z")),
    undefined,
  );
  assertOccurrence(
    windowContaining(daily4, at("2024-05-10T04:00:00Z")),
    "2024-05-10T04:00:00Z",
    "2024-05-10T05:00:00Z",
  );
  assertOccurrence(
    windowContaining(daily4, at("2024-05-10T04:59:59.999Z")),
    "2024-05-10T04:00:00Z",
    "2024-05-10T05:00:00Z",
  );
  assert.equal(windowContaining(daily4, at("2024-05-10T05:00:00Z")), undefined);
});

Deno.test("nextWindow() returns today's window when it has not started yet", () => {
  assertOccurrence(
    nextWindow(daily4, at("2024-05-10T00:00:00Z")),
    "2024-05-10T04:00:00Z",
    "2024-05-10T05:00:00Z",
  );
  assertOccurrence(
    nextWindow(daily4, at("2024-05-10T03:59:59.999Z")),
    "2024-05-10T04:00:00Z",
    "2024-05-10T05:00:00Z",
  );
});

Deno.test("nextWindow() returns the running window when now is inside it", () => {
  assertOccurrence(
    nextWindow(daily4, at("2024-05-10T04:00:00Z")),
    "2024-05-10T04:00:00Z",
    "2024-05-10T05:00:00Z",
  );
  assertOccurrence(
    nextWindow(daily4, at("2024-05-10T04:30:00Z")),
    "2024-05-10T04:00:00Z",
    "2024-05-10T05:00:00Z",
  );
});

Deno.test("nextWindow() returns tomorrow's window once today's has ended", () => {
  assertOccurrence(
    nextWindow(daily4, at("2024-05-10T05:00:00Z")),
    "2024-05-11T04:00:00Z",
    "2024-05-11T05:00:00Z",
  );
  assertOccurrence(
    nextWindow(daily4, at("2024-05-10T23:59:59Z")),
    "2024-05-11T04:00:00Z",
    "2024-05-11T05:00:00Z",
  );
});

Deno.test("nextWindow() accepts a Temporal.Instant as now", () => {
  assertOccurrence(
    nextWindow(daily4, Temporal.Instant.from("2024-05-10T05:00:00Z")),
    "2024-05-11T04:00:00Z",
    "2024-05-11T05:00:00Z",
  );
  assertOccurrence(
    windowContaining(daily4, Temporal.Instant.from("2024-05-10T04:10:00Z")),
    "2024-05-10T04:00:00Z",
    "2024-05-10T05:00:00Z",
  );
});

Deno.test("nextWindow() throws a RangeError for an invalid Date", () => {
  assert.throws(() => nextWindow(daily4, new Date(NaN)), RangeError);
});

Deno.test("windowContaining() finds a window that started yesterday and runs across midnight", () => {
  const w = parseRebootWindow("22:00", "3h", "UTC");
  assertOccurrence(
    windowContaining(w, at("2024-05-11T00:30:00Z")),
    "2024-05-10T22:00:00Z",
    "2024-05-11T01:00:00Z",
  );
  assertOccurrence(
    windowContaining(w, at("2024-05-10T23:59:59Z")),
    "2024-05-10T22:00:00Z",
    "2024-05-11T01:00:00Z",
  );
  assert.equal(windowContaining(w, at("2024-05-11T01:00:00Z")), undefined);
});

Deno.test("nextWindow() crosses midnight for a 22:00 window", () => {
  const w = parseRebootWindow("22:00", "3h", "UTC");
  assertOccurrence(
    nextWindow(w, at("2024-05-11T00:30:00Z")),
    "2024-05-10T22:00:00Z",
    "2024-05-11T01:00:00Z",
  );
  assertOccurrence(
    nextWindow(w, at("2024-05-11T01:00:00Z")),
    "2024-05-11T22:00:00Z",
    "2024-05-12T01:00:00Z",
  );
  assertOccurrence(
    nextWindow(w, at("2024-05-11T21:00:00Z")),
    "2024-05-11T22:00:00Z",
    "2024-05-12T01:00:00Z",
  );
});

Deno.test("nextWindow() crosses a month and a year boundary", () => {
  const w = parseRebootWindow("04:00", "1h", "UTC");
  assertOccurrence(
    nextWindow(w, at("2024-12-31T12:00:00Z")),
    "2025-01-01T04:00:00Z",
    "2025-01-01T05:00:00Z",
  );
  assertOccurrence(
    nextWindow(w, at("2024-02-28T12:00:00Z")),
    "2024-02-29T04:00:00Z",
    "2024-02-29T05:00:00Z",
  );
});

// ---------------------------------------------------------------- weekly windows

Deno.test("nextWindow() returns this week's window when its day is still ahead", () => {
  const w = parseRebootWindow("Thu 04:00", "1h", "UTC");
  // 2024-05-06 is a Monday, 2024-05-09 a Thursday.
  assertOccurrence(
    nextWindow(w, at("2024-05-06T12:00:00Z")),
    "2024-05-09T04:00:00Z",
    "2024-05-09T05:00:00Z",
  );
  assertOccurrence(
    nextWindow(w, at("2024-05-09T03:00:00Z")),
    "2024-05-09T04:00:00Z",
    "2024-05-09T05:00:00Z",
  );
});

Deno.test("nextWindow() returns next week's window once this week's has ended", () => {
  const w = parseRebootWindow("Thu 04:00", "1h", "UTC");
  assertOccurrence(
    nextWindow(w, at("2024-05-09T05:00:00Z")),
    "2024-05-16T04:00:00Z",
    "2024-05-16T05:00:00Z",
  );
  assertOccurrence(
    nextWindow(w, at("2024-05-10T12:00:00Z")),
    "2024-05-16T04:00:00Z",
    "2024-05-16T05:00:00Z",
  );
});

Deno.test("windowContaining() is undefined on the other days of a weekly window", () => {
  const w = parseRebootWindow("Thu 04:00", "1h", "UTC");
  for (const day of ["06", "07", "08", "10", "11", "12"]) {
    assert.equal(
      windowContaining(w, at(`2024-05-${day}T04:30:00Z`)),
      undefined,
    );
  }
  assert.ok(windowContaining(w, at("2024-05-09T04:30:00Z")) !== undefined);
});

Deno.test("windowContaining() follows a weekly window across the Saturday-to-Sunday wrap", () => {
  const w = parseRebootWindow("Sat 23:00", "2h", "UTC");
  // 2024-05-11 is a Saturday.
  assertOccurrence(
    windowContaining(w, at("2024-05-12T00:30:00Z")),
    "2024-05-11T23:00:00Z",
    "2024-05-12T01:00:00Z",
  );
  assert.equal(windowContaining(w, at("2024-05-12T01:00:00Z")), undefined);
  assertOccurrence(
    nextWindow(w, at("2024-05-12T01:00:00Z")),
    "2024-05-18T23:00:00Z",
    "2024-05-19T01:00:00Z",
  );
});

Deno.test("windowContaining() finds a multi-day weekly window that started days ago", () => {
  const w = parseRebootWindow("Fri 18:00", "3d", "UTC");
  // Friday 2024-05-10 18:00 until Monday 2024-05-13 18:00.
  for (
    const now of [
      "2024-05-10T18:00:00Z",
      "2024-05-11T12:00:00Z",
      "2024-05-12T23:00:00Z",
      "2024-05-13T17:59:59Z",
    ]
  ) {
    assertOccurrence(
      windowContaining(w, at(now)),
      "2024-05-10T18:00:00Z",
      "2024-05-13T18:00:00Z",
    );
  }
  assert.equal(windowContaining(w, at("2024-05-13T18:00:00Z")), undefined);
});

Deno.test("windowContaining() handles a weekly window of almost 7 days", () => {
  const w = parseRebootWindow("Sun 00:00", "6d23h", "UTC");
  // Sunday 2024-05-12 00:00 until Saturday 2024-05-18 23:00.
  assertOccurrence(
    windowContaining(w, at("2024-05-18T22:59:59Z")),
    "2024-05-12T00:00:00Z",
    "2024-05-18T23:00:00Z",
  );
  assert.equal(windowContaining(w, at("2024-05-18T23:30:00Z")), undefined);
  assertOccurrence(
    nextWindow(w, at("2024-05-18T23:30:00Z")),
    "2024-05-19T00:00:00Z",
    "2024-05-25T23:00:00Z",
  );
});

// ---------------------------------------------------------------- DST: Europe/Berlin

Deno.test("nextWindow() keeps the wall-clock start across DST in Europe/Berlin", () => {
  const w = parseRebootWindow("04:00", "1h", "Europe/Berlin");
  // Winter: 04:00 CET = 03:00Z; summer: 04:00 CEST = 02:00Z.
  assertOccurrence(
    nextWindow(w, at("2024-01-15T00:00:00Z")),
    "2024-01-15T03:00:00Z",
    "2024-01-15T04:00:00Z",
  );
  assertOccurrence(
    nextWindow(w, at("2024-07-15T00:00:00Z")),
    "2024-07-15T02:00:00Z",
    "2024-07-15T03:00:00Z",
  );
});

Deno.test("nextWindow() moves a start inside the spring-forward gap later (Europe/Berlin)", () => {
  // 2024-03-31 02:00 CET jumps to 03:00 CEST: 02:30 does not exist.
  const w = parseRebootWindow("02:30", "1h", "Europe/Berlin");
  assertOccurrence(
    nextWindow(w, at("2024-03-30T12:00:00Z")),
    "2024-03-31T01:30:00Z", // 03:30 CEST
    "2024-03-31T02:30:00Z",
  );
  // The day before (02:30 CET) and the day after (02:30 CEST) are normal.
  assertOccurrence(
    nextWindow(w, at("2024-03-30T00:00:00Z")),
    "2024-03-30T01:30:00Z",
    "2024-03-30T02:30:00Z",
  );
  assertOccurrence(
    nextWindow(w, at("2024-03-31T12:00:00Z")),
    "2024-04-01T00:30:00Z",
    "2024-04-01T01:30:00Z",
  );
});

Deno.test("windowContaining() measures the length in elapsed time across spring-forward (Europe/Berlin)", () => {
  // 01:30 CET = 00:30Z; one hour later is 01:30Z = 03:30 CEST on the wall.
  const w = parseRebootWindow("01:30", "1h", "Europe/Berlin");
  const occ = windowContaining(w, at("2024-03-31T01:15:00Z"));
  assertOccurrence(occ, "2024-03-31T00:30:00Z", "2024-03-31T01:30:00Z");
  assert.equal(occ!.end.getTime() - occ!.start.getTime(), HOUR);
  assert.equal(windowContaining(w, at("2024-03-31T01:30:00Z")), undefined);
});

Deno.test("nextWindow() picks the earlier instant of an ambiguous fall-back start (Europe/Berlin)", () => {
  // 2024-10-27 03:00 CEST falls back to 02:00 CET: 02:30 happens twice.
  const w = parseRebootWindow("02:30", "1h", "Europe/Berlin");
  assertOccurrence(
    nextWindow(w, at("2024-10-26T12:00:00Z")),
    "2024-10-27T00:30:00Z", // 02:30 CEST, not 02:30 CET (01:30Z)
    "2024-10-27T01:30:00Z",
  );
  // The second 02:20 (CET) is still inside the hour-long window...
  assertOccurrence(
    windowContaining(w, at("2024-10-27T01:20:00Z")),
    "2024-10-27T00:30:00Z",
    "2024-10-27T01:30:00Z",
  );
  // ...but the second 02:30 is not a new start: the next one is tomorrow.
  assert.equal(windowContaining(w, at("2024-10-27T01:30:00Z")), undefined);
  assertOccurrence(
    nextWindow(w, at("2024-10-27T01:30:00Z")),
    "2024-10-28T01:30:00Z",
    "2024-10-28T02:30:00Z",
  );
});

Deno.test("windowContaining() measures the length in elapsed time across fall-back (Europe/Berlin)", () => {
  // Sun 01:00 CEST = 23:00Z Sat; 3 hours later is 02:00Z = 03:00 CET on the wall.
  const w = parseRebootWindow("Sun 01:00", "3h", "Europe/Berlin");
  const occ = nextWindow(w, at("2024-10-26T12:00:00Z"));
  assertOccurrence(occ, "2024-10-26T23:00:00Z", "2024-10-27T02:00:00Z");
  assert.equal(
    Temporal.Instant.fromEpochMilliseconds(occ.end.getTime())
      .toZonedDateTimeISO("Europe/Berlin").toPlainTime().toString(),
    "03:00:00",
  );
});

Deno.test("windowContaining() returns the later occurrence when a long daily window overlaps the next on a 23-hour day", () => {
  // 04:00 CET on 2024-03-30 (03:00Z) + 23h30m = 02:30Z on 2024-03-31, which is
  // after 04:00 CEST on 2024-03-31 (02:00Z).
  const w = parseRebootWindow("04:00", "23h30m", "Europe/Berlin");
  assertOccurrence(
    windowContaining(w, at("2024-03-31T01:59:00Z")),
    "2024-03-30T03:00:00Z",
    "2024-03-31T02:30:00Z",
  );
  assertOccurrence(
    windowContaining(w, at("2024-03-31T02:15:00Z")),
    "2024-03-31T02:00:00Z",
    "2024-04-01T01:30:00Z",
  );
});

// ---------------------------------------------------------------- DST: America/New_York

Deno.test("nextWindow() moves a start inside the spring-forward gap later (America/New_York)", () => {
  // 2024-03-10 02:00 EST jumps to 03:00 EDT: 02:15 does not exist.
  const w = parseRebootWindow("Sun 02:15", "30m", "America/New_York");
  assertOccurrence(
    nextWindow(w, at("2024-03-09T12:00:00Z")),
    "2024-03-10T07:15:00Z", // 03:15 EDT
    "2024-03-10T07:45:00Z",
  );
  assertOccurrence(
    nextWindow(w, at("2024-03-10T07:45:00Z")),
    "2024-03-17T06:15:00Z", // 02:15 EDT
    "2024-03-17T06:45:00Z",
  );
});

Deno.test("nextWindow() picks the earlier instant of an ambiguous fall-back start (America/New_York)", () => {
  // 2024-11-03 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
  const w = parseRebootWindow("01:30", "1h", "America/New_York");
  assertOccurrence(
    nextWindow(w, at("2024-11-02T12:00:00Z")),
    "2024-11-03T05:30:00Z", // 01:30 EDT
    "2024-11-03T06:30:00Z",
  );
  assert.equal(windowContaining(w, at("2024-11-03T06:30:00Z")), undefined);
  assertOccurrence(
    nextWindow(w, at("2024-11-03T06:30:00Z")),
    "2024-11-04T06:30:00Z", // 01:30 EST
    "2024-11-04T07:30:00Z",
  );
});

Deno.test("windowContaining() measures the length in elapsed time across fall-back (America/New_York)", () => {
  // 00:30 EDT = 04:30Z; 3 hours later is 07:30Z = 02:30 EST on the wall.
  const w = parseRebootWindow("00:30", "3h", "America/New_York");
  const occ = windowContaining(w, at("2024-11-03T07:00:00Z"));
  assertOccurrence(occ, "2024-11-03T04:30:00Z", "2024-11-03T07:30:00Z");
  assert.equal(windowContaining(w, at("2024-11-03T07:30:00Z")), undefined);
});

// ---------------------------------------------------------------- zones far from UTC

Deno.test("nextWindow() uses the local date in Pacific/Kiritimati (UTC+14)", () => {
  const w = parseRebootWindow("04:00", "1h", "Pacific/Kiritimati");
  // 04:00 local on 2024-05-11 is 14:00Z on 2024-05-10.
  assertOccurrence(
    windowContaining(w, at("2024-05-10T14:30:00Z")),
    "2024-05-10T14:00:00Z",
    "2024-05-10T15:00:00Z",
  );
  assertOccurrence(
    nextWindow(w, at("2024-05-10T15:00:00Z")),
    "2024-05-11T14:00:00Z",
    "2024-05-11T15:00:00Z",
  );
});

Deno.test("nextWindow() uses the local weekday in Pacific/Kiritimati (UTC+14)", () => {
  // Monday 04:00 local on 2024-05-13 is Sunday 14:00Z on 2024-05-12.
  const w = parseRebootWindow("Mon 04:00", "1h", "Pacific/Kiritimati");
  assertOccurrence(
    nextWindow(w, at("2024-05-12T00:00:00Z")),
    "2024-05-12T14:00:00Z",
    "2024-05-12T15:00:00Z",
  );
  assert.equal(windowContaining(w, at("2024-05-13T14:30:00Z")), undefined);
});

Deno.test("nextWindow() handles the half-hour offset of Asia/Kolkata (UTC+5:30)", () => {
  const daily = parseRebootWindow("04:00", "1h", "Asia/Kolkata");
  assertOccurrence(
    nextWindow(daily, at("2024-05-10T12:00:00Z")),
    "2024-05-10T22:30:00Z",
    "2024-05-10T23:30:00Z",
  );
  // Thursday 00:15 IST on 2024-05-09 is Wednesday 18:45Z on 2024-05-08.
  const weekly = parseRebootWindow("Thu 00:15", "45m", "Asia/Kolkata");
  assertOccurrence(
    nextWindow(weekly, at("2024-05-06T00:00:00Z")),
    "2024-05-08T18:45:00Z",
    "2024-05-08T19:30:00Z",
  );
  assertOccurrence(
    windowContaining(weekly, at("2024-05-08T19:29:59Z")),
    "2024-05-08T18:45:00Z",
    "2024-05-08T19:30:00Z",
  );
});

// ---------------------------------------------------------------- invariants

function wallClock(date: Date, zone: string): string {
  return Temporal.Instant.fromEpochMilliseconds(date.getTime())
    .toZonedDateTimeISO(zone).toPlainTime().toString({
      smallestUnit: "minute",
    });
}

Deno.test("nextWindow() and windowContaining() agree every 37 minutes through a DST year", () => {
  const windows: RebootWindow[] = [
    parseRebootWindow("02:30", "1h", "Europe/Berlin"),
    parseRebootWindow("23:30", "2h", "America/New_York"),
    parseRebootWindow("Sun 01:45", "30h", "America/New_York"),
    parseRebootWindow("Sat 22:00", "5h", "Australia/Lord_Howe"),
  ];
  const begin = Date.parse("2024-01-01T00:00:00Z");
  const finish = Date.parse("2025-01-01T00:00:00Z");
  for (const w of windows) {
    for (let t = begin; t < finish; t += 37 * MINUTE) {
      const now = new Date(t);
      const next = nextWindow(w, now);
      const containing = windowContaining(w, now);
      assert.equal(next.end.getTime() - next.start.getTime(), w.lengthMs);
      if (containing === undefined) {
        assert.ok(next.start.getTime() > t, `${now.toISOString()}`);
        assert.ok(
          next.start.getTime() - t <= (w.day === undefined ? 1 : 7) * 25 * HOUR,
        );
      } else {
        assert.deepEqual(next, containing);
        assert.ok(
          containing.start.getTime() <= t && t < containing.end.getTime(),
        );
      }
      // The start is at the wall-clock time, except on the one day a year it
      // falls into a gap (Berlin 02:30) and moves later.
      const wall = wallClock(next.start, w.timeZone);
      const expected = `${String(w.hour).padStart(2, "0")}:${
        String(w.minute).padStart(2, "0")
      }`;
      if (wall !== expected) {
        assert.equal(w.timeZone, "Europe/Berlin");
        assert.equal(wall, "03:30");
        assert.equal(next.start.toISOString(), "2024-03-31T01:30:00.000Z");
      }
    }
  }
});
