import assert from "node:assert/strict";
import { UsageError } from "../lib/common/errors.ts";
import {
  parseRebootWindow,
  RebootWindowError,
} from "../lib/schedule/reboot_window.ts";
import {
  formatInstantIn,
  formatSchedule,
  formatScheduleState,
  parseSchedule,
  type RebootSchedule,
  SCHEDULE_HORIZON_MS,
  ScheduleError,
  scheduleFromWindow,
  type ScheduleState,
  scheduleState,
} from "../lib/schedule/schedule.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function state(s: RebootSchedule, iso: string): ScheduleState {
  return scheduleState(s, new Date(iso));
}

function assertOpen(actual: ScheduleState, closesAt: string | null): void {
  assert.equal(
    actual.open,
    true,
    `expected open, got ${JSON.stringify(actual)}`,
  );
  assert.equal(
    actual.closesAt?.toISOString() ?? null,
    closesAt === null ? null : new Date(closesAt).toISOString(),
  );
}

function assertClosed(
  actual: ScheduleState,
  opensAt: string,
  closesAt: string,
): void {
  assert.ok(!actual.open, `expected closed, got ${JSON.stringify(actual)}`);
  assert.equal(actual.opensAt.toISOString(), new Date(opensAt).toISOString());
  assert.equal(
    actual.closesAt?.toISOString(),
    new Date(closesAt).toISOString(),
  );
}

function rejects(text: string, part: string, pattern: RegExp): void {
  assert.throws(() => parseSchedule(text, "UTC"), (error: unknown) => {
    assert.ok(error instanceof ScheduleError, String(error));
    assert.ok(error instanceof RebootWindowError);
    assert.ok(error instanceof UsageError);
    assert.equal(error.exitCode, 2);
    assert.equal(error.field, "schedule");
    assert.equal(error.value, text);
    assert.equal(error.part, part);
    assert.match(error.message, pattern);
    assert.ok(error.defect.startsWith("is invalid: "), error.defect);
    assert.ok(!error.message.includes("\n"), "message is one line");
    return true;
  });
}

// ---------------------------------------------------------------- parsing

Deno.test("parseSchedule() reads day ranges, single days and a daily entry", () => {
  const s = parseSchedule(
    "Mon-Fri 02:00 2h, Sat 04:00 4h, 23:30 1h30m",
    "Europe/Berlin",
  );
  assert.equal(s.timeZone, "Europe/Berlin");
  assert.deepEqual(s.entries, [
    {
      days: [1, 2, 3, 4, 5],
      daysText: "Mon-Fri",
      hour: 2,
      minute: 0,
      lengthMs: 2 * HOUR,
    },
    { days: [6], daysText: "Sat", hour: 4, minute: 0, lengthMs: 4 * HOUR },
    { hour: 23, minute: 30, lengthMs: 90 * MINUTE },
  ]);
  assert.equal(s.windows.length, 7);
  assert.deepEqual(s.windows.map((w) => w.day), [1, 2, 3, 4, 5, 6, undefined]);
});

Deno.test("parseSchedule() reads a comma-separated day list as one entry", () => {
  for (const text of ["Sun,Wed 03:00 1h", "sun, WED 03:00 1h"]) {
    const s = parseSchedule(text, "UTC");
    assert.equal(s.entries.length, 1, text);
    assert.deepEqual(s.entries[0]?.days, [0, 3], text);
    assert.equal(s.entries[0]?.daysText, "Sun,Wed", text);
  }
  const mixed = parseSchedule("Mon-Tue, Fri 01:00 1h, Sat 02:00 1h", "UTC");
  assert.deepEqual(mixed.entries.map((e) => e.days), [[1, 2, 5], [6]]);
});

Deno.test("parseSchedule() reads a range that wraps over the week end", () => {
  const s = parseSchedule("Fri-Mon 22:00 4h", "UTC");
  assert.deepEqual(s.entries[0]?.days, [0, 1, 5, 6]);
  assert.equal(s.entries[0]?.daysText, "Fri-Mon");
  assert.deepEqual(parseSchedule("Sat-Sat 01:00 1h", "UTC").entries[0]?.days, [
    6,
  ]);
});

Deno.test("parseSchedule() reads a plain H:M length as daily", () => {
  const s = parseSchedule("02:00 1h30m", "UTC");
  assert.deepEqual(s.entries, [{ hour: 2, minute: 0, lengthMs: 90 * MINUTE }]);
  assert.deepEqual(s.windows, [{
    hour: 2,
    minute: 0,
    lengthMs: 90 * MINUTE,
    timeZone: "UTC",
  }]);
});

Deno.test("parseSchedule() canonicalises the zone and defaults to the system's", () => {
  assert.equal(
    parseSchedule("02:00 1h", "europe/berlin").timeZone,
    "Europe/Berlin",
  );
  assert.equal(parseSchedule("02:00 1h").timeZone, Temporal.Now.timeZoneId());
});

Deno.test("parseSchedule() accepts lengths up to the daily and weekly limits", () => {
  assert.equal(
    parseSchedule("02:00 23h59m", "UTC").entries[0]?.lengthMs,
    24 * HOUR - MINUTE,
  );
  assert.equal(
    parseSchedule("Sat 02:00 6d23h", "UTC").entries[0]?.lengthMs,
    167 * HOUR,
  );
});

Deno.test('parseSchedule() names "Mon-Fry" as not a day or day range', () => {
  rejects("Mon-Fry 02:00 2h", "Mon-Fry", /"Mon-Fry" is not a day or day range/);
  rejects("Mon-Fri-Sat 02:00 2h", "Mon-Fri-Sat", /not a day or day range/);
  rejects("Monday 02:00 2h", "Monday", /not a day or day range/);
  rejects("Sun,Wdd 03:00 1h", "Wdd", /"Wdd" is not a day/);
});

Deno.test("parseSchedule() names a bad time, a bad length and the limits", () => {
  rejects("Mon 25:00 1h", "25:00", /"25:00" is not a time H:M/);
  rejects("02:60 1h", "02:60", /is not a time/);
  rejects("02:00 1x", "1x", /"1x" is not a duration like 1h30m/);
  rejects("02:00 0", "0", /"0" is zero/);
  rejects(
    "02:00 24h",
    "24h",
    /not shorter than 24h, the limit for a daily window/,
  );
  rejects("Sat 02:00 7d", "7d", /not shorter than 7d/);
});

Deno.test("parseSchedule() refuses an empty schedule, empty entries and dangling days", () => {
  rejects("", "", /is empty/);
  rejects("  ", "  ", /is empty/);
  rejects("Mon 01:00 1h,", "Mon 01:00 1h,", /empty entry between commas/);
  rejects("Sun", "Sun", /"Sun" has no time and length/);
  rejects("Sun, 03:00 1h", "Sun", /"Sun" is not followed by a day and a time/);
  rejects("Mon 02:00", "Mon 02:00", /has no time or no length/);
  rejects("Mon 02:00 1h extra", "Mon 02:00 1h extra", /is not an entry/);
});

Deno.test("parseSchedule() refuses an unknown time zone as a timeZone error", () => {
  assert.throws(
    () => parseSchedule("02:00 1h", "Mars/Olympus"),
    (e: unknown) => {
      assert.ok(e instanceof RebootWindowError);
      assert.equal(e.field, "timeZone");
      return true;
    },
  );
});

Deno.test("a ScheduleError reads well after a config key", () => {
  try {
    parseSchedule("Mon-Fry 02:00 2h", "UTC");
    assert.fail("accepted");
  } catch (e) {
    assert.ok(e instanceof ScheduleError);
    assert.equal(
      `LOCKSMITHD_REBOOT_SCHEDULE=${JSON.stringify(e.value)} ${e.defect}`,
      'LOCKSMITHD_REBOOT_SCHEDULE="Mon-Fry 02:00 2h" is invalid: "Mon-Fry" is not a day or day range; days are Sun, Mon, Tue, Wed, Thu, Fri, Sat, e.g. Mon-Fri, Fri-Mon or Sun,Wed',
    );
  }
});

// ---------------------------------------------------------------- state

// 2024-06-03 is a Monday; Europe/Berlin is UTC+2 in June.
const WEEKDAYS = parseSchedule(
  "Mon-Fri 02:00 2h, Sat 04:00 4h",
  "Europe/Berlin",
);

Deno.test("scheduleState() is closed on Sunday for Mon-Fri 02:00 2h", () => {
  assertClosed(
    state(WEEKDAYS, "2024-06-02T12:00:00Z"),
    "2024-06-03T00:00:00Z",
    "2024-06-03T02:00:00Z",
  );
});

Deno.test("scheduleState() is open inside a weekday window and closes at its end", () => {
  assertOpen(state(WEEKDAYS, "2024-06-03T00:00:00Z"), "2024-06-03T02:00:00Z");
  assertOpen(state(WEEKDAYS, "2024-06-07T01:59:59Z"), "2024-06-07T02:00:00Z");
  assertClosed(
    state(WEEKDAYS, "2024-06-03T02:00:00Z"),
    "2024-06-04T00:00:00Z",
    "2024-06-04T02:00:00Z",
  );
});

Deno.test("scheduleState() goes from Friday to the Saturday window", () => {
  assertClosed(
    state(WEEKDAYS, "2024-06-07T03:00:00Z"),
    "2024-06-08T02:00:00Z",
    "2024-06-08T06:00:00Z",
  );
  assertOpen(state(WEEKDAYS, "2024-06-08T05:00:00Z"), "2024-06-08T06:00:00Z");
});

Deno.test("scheduleState() merges overlapping windows into one open period", () => {
  const s = parseSchedule("Mon-Fri 02:00 2h, 03:00 2h", "UTC");
  assertOpen(state(s, "2024-06-03T02:30:00Z"), "2024-06-03T05:00:00Z");
  // A window inside another does not shorten it.
  const inner = parseSchedule("Mon 01:00 5h, Mon 02:00 1h", "UTC");
  assertOpen(state(inner, "2024-06-03T02:30:00Z"), "2024-06-03T06:00:00Z");
});

Deno.test("scheduleState() merges adjacent windows, also across midnight", () => {
  const s = parseSchedule("Mon 22:00 2h, Tue 00:00 1h, Tue 01:00 30m", "UTC");
  assertOpen(state(s, "2024-06-03T23:00:00Z"), "2024-06-04T01:30:00Z");
  assertClosed(
    state(s, "2024-06-03T12:00:00Z"),
    "2024-06-03T22:00:00Z",
    "2024-06-04T01:30:00Z",
  );
});

Deno.test("scheduleState() wraps over the week end", () => {
  const s = parseSchedule("Sat 22:00 1d12h", "UTC");
  // Sunday noon is inside Saturday's occurrence; it closes Monday 10:00.
  assertOpen(state(s, "2024-06-09T12:00:00Z"), "2024-06-10T10:00:00Z");
  const range = parseSchedule("Fri-Mon 23:00 2h", "UTC");
  // Tuesday 00:30 is in Monday's occurrence.
  assertOpen(state(range, "2024-06-04T00:30:00Z"), "2024-06-04T01:00:00Z");
  assertClosed(
    state(range, "2024-06-04T01:00:00Z"),
    "2024-06-07T23:00:00Z",
    "2024-06-08T01:00:00Z",
  );
});

Deno.test("scheduleState() reports no end for windows that cover every day", () => {
  const s = parseSchedule("Sun-Sat 00:00 1d", "UTC");
  assertOpen(state(s, "2024-06-03T12:00:00Z"), null);
  const st = state(s, "2024-06-03T12:00:00Z");
  assert.equal(
    formatScheduleState(s, st),
    "open with no end within 14 days (UTC)",
  );
  assert.equal(SCHEDULE_HORIZON_MS, 14 * 24 * HOUR);
});

Deno.test("scheduleState() follows Europe/Berlin's spring-forward day", () => {
  // 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00Z).
  const s = parseSchedule("Sun 02:30 1h", "Europe/Berlin");
  // 02:30 does not exist: the window starts at 03:30 CEST (01:30Z), lasting 1h.
  assertClosed(
    state(s, "2024-03-31T00:00:00Z"),
    "2024-03-31T01:30:00Z",
    "2024-03-31T02:30:00Z",
  );
  const daily = parseSchedule("01:00 3h", "Europe/Berlin");
  // 01:00 CET (00:00Z) + 3h elapsed = 03:00Z = 05:00 CEST.
  assertOpen(state(daily, "2024-03-31T00:30:00Z"), "2024-03-31T03:00:00Z");
});

Deno.test("scheduleState() follows Europe/Berlin's fall-back day", () => {
  // 2024-10-27: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:30 happens twice.
  const s = parseSchedule("02:30 1h", "Europe/Berlin");
  // The earlier 02:30 (CEST, 00:30Z) is taken; 1h later is 01:30Z (02:30 CET).
  assertClosed(
    state(s, "2024-10-26T23:00:00Z"),
    "2024-10-27T00:30:00Z",
    "2024-10-27T01:30:00Z",
  );
  assertOpen(state(s, "2024-10-27T01:15:00Z"), "2024-10-27T01:30:00Z");
});

Deno.test("scheduleState() follows America/New_York across both DST changes", () => {
  const s = parseSchedule("02:30 1h, Sun 01:30 1h", "America/New_York");
  // 2024-03-10: 02:00 EST jumps to 03:00 EDT; the daily 02:30 becomes 03:30
  // EDT (07:30Z), exactly when Sunday's 01:30 EST (06:30Z) + 1h ends: one period.
  assertClosed(
    state(s, "2024-03-10T05:00:00Z"),
    "2024-03-10T06:30:00Z",
    "2024-03-10T08:30:00Z",
  );
  assertOpen(state(s, "2024-03-10T06:35:00Z"), "2024-03-10T08:30:00Z");
  // 2024-11-03: 01:30 happens twice; the EDT one (05:30Z) starts the window.
  assertOpen(state(s, "2024-11-03T06:00:00Z"), "2024-11-03T06:30:00Z");
  // 02:30 EST that day is 07:30Z.
  assertClosed(
    state(s, "2024-11-03T06:30:00Z"),
    "2024-11-03T07:30:00Z",
    "2024-11-03T08:30:00Z",
  );
});

Deno.test("scheduleState() works in half-hour zones", () => {
  const kolkata = parseSchedule("Mon 02:00 1h", "Asia/Kolkata"); // UTC+05:30
  assertClosed(
    state(kolkata, "2024-06-02T12:00:00Z"),
    "2024-06-02T20:30:00Z",
    "2024-06-02T21:30:00Z",
  );
  // Lord Howe Island shifts by 30 minutes: 2024-04-07 02:00 (+11) becomes 01:30 (+10:30).
  const howe = parseSchedule("01:00 1h", "Australia/Lord_Howe");
  // 01:00 +11 is 14:00Z; 1h elapsed later is 15:00Z (01:30 +10:30, after the change).
  assertOpen(state(howe, "2024-04-06T14:10:00Z"), "2024-04-06T15:00:00Z");
});

Deno.test("scheduleState() refuses an invalid Date", () => {
  assert.throws(() => scheduleState(WEEKDAYS, new Date(NaN)), RangeError);
});

Deno.test("scheduleFromWindow() turns one reboot window into a schedule", () => {
  const s = scheduleFromWindow(parseRebootWindow("Thu 04:00", "1h", "UTC"));
  assert.equal(formatSchedule(s), "Thu 04:00 for 1h (UTC)");
  // 2024-06-06 is a Thursday.
  assertOpen(state(s, "2024-06-06T04:30:00Z"), "2024-06-06T05:00:00Z");
  const daily = scheduleFromWindow(parseRebootWindow("04:00", "30m", "UTC"));
  assert.equal(formatSchedule(daily), "daily 04:00 for 30m (UTC)");
});

// ---------------------------------------------------------------- formatting

Deno.test("formatSchedule() prints the entries and the zone", () => {
  assert.equal(
    formatSchedule(
      parseSchedule(
        "mon-fri 2:00 2h, sun,wed 03:05 1h30m, 23:00 45m",
        "europe/berlin",
      ),
    ),
    "Mon-Fri 02:00 for 2h, Sun,Wed 03:05 for 1h30m, daily 23:00 for 45m (Europe/Berlin)",
  );
});

Deno.test("formatScheduleState() prints times in the schedule's zone", () => {
  assert.equal(
    formatScheduleState(WEEKDAYS, state(WEEKDAYS, "2024-06-02T12:00:00Z")),
    "closed until Mon 2024-06-03 02:00+02:00, then open until Mon 2024-06-03 04:00+02:00 (Europe/Berlin)",
  );
  assert.equal(
    formatScheduleState(WEEKDAYS, state(WEEKDAYS, "2024-06-08T03:00:00Z")),
    "open until Sat 2024-06-08 08:00+02:00 (Europe/Berlin)",
  );
});

Deno.test("formatInstantIn() shows seconds only when there are some", () => {
  assert.equal(
    formatInstantIn(new Date("2024-01-01T00:00:00Z"), "America/New_York"),
    "Sun 2023-12-31 19:00-05:00",
  );
  assert.equal(
    formatInstantIn(new Date("2024-01-01T00:00:07Z"), "UTC"),
    "Mon 2024-01-01 00:00:07+00:00",
  );
});
