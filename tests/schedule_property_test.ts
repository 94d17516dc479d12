/**
 * Property tests of reboot schedules: scheduleState() against membership
 * computed minute by minute, by a separate, naive enumeration of occurrences,
 * for random schedules in zones with DST changes, half-hour offsets and
 * half-hour DST shifts. The seed is printed; rerun with SCHEDULE_SEED=<seed>.
 */
import assert from "node:assert/strict";
import { DAY_NAMES } from "../lib/schedule/reboot_window.ts";
import {
  formatSchedule,
  parseSchedule,
  type RebootSchedule,
  SCHEDULE_HORIZON_MS,
  scheduleState,
} from "../lib/schedule/schedule.ts";

const MINUTE = 60_000;
const DAY = 1440 * MINUTE;

/** mulberry32: a small seeded generator, so that a failure can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(
  Deno.env.get("SCHEDULE_SEED") ?? Math.floor(Math.random() * 2 ** 32),
);
console.log(
  `schedule property seed: ${SEED} (rerun with SCHEDULE_SEED=${SEED})`,
);

/** Zones with DST (both hemispheres), half-hour offsets and a half-hour DST shift. */
const ZONES = [
  "Europe/Berlin",
  "America/New_York",
  "Asia/Kolkata",
  "Australia/Lord_Howe",
  "America/St_Johns",
  "Asia/Kathmandu",
  "UTC",
];

/** DST changes of 2024 in those zones (and a plain day), near which the scans start. */
const AROUND = [
  "2024-03-31T01:00:00Z", // Europe/Berlin spring forward
  "2024-10-27T01:00:00Z", // Europe/Berlin fall back
  "2024-03-10T07:00:00Z", // America/New_York spring forward
  "2024-11-03T06:00:00Z", // America/New_York fall back
  "2024-04-06T15:00:00Z", // Australia/Lord_Howe back 30 minutes
  "2024-10-05T15:30:00Z", // Australia/Lord_Howe forward 30 minutes
  "2024-03-10T05:30:00Z", // America/St_Johns spring forward
  "2024-06-15T12:00:00Z", // no change
];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/** A random schedule text: 1-4 entries, daily or on day lists and ranges (some wrapping). */
function randomScheduleText(random: () => number): string {
  const entries: string[] = [];
  const count = 1 + Math.floor(random() * 4);
  for (let i = 0; i < count; i++) {
    const hour = Math.floor(random() * 24);
    const minute = pick(random, [0, 15, 30, 45, Math.floor(random() * 60)]);
    const time = `${hour}:${String(minute).padStart(2, "0")}`;
    const kind = random();
    if (kind < 0.3) {
      const length = 1 + Math.floor(random() * (1440 - 1));
      entries.push(`${time} ${length}m`);
      continue;
    }
    let days: string;
    if (kind < 0.65) {
      const from = Math.floor(random() * 7);
      const to = Math.floor(random() * 7);
      days = `${DAY_NAMES[from]}-${DAY_NAMES[to]}`;
    } else {
      const chosen = DAY_NAMES.filter(() => random() < 0.4);
      days = (chosen.length > 0 ? chosen : ["Wed"]).join(",");
    }
    const length = 1 + Math.floor(random() * (random() < 0.7 ? 360 : 4320));
    entries.push(`${days} ${time} ${length}m`);
  }
  return entries.join(", ");
}

/**
 * Occurrence intervals [start, end) of every entry that start between `fromMs`
 * and `toMs`, enumerated date by date in the zone: independent of
 * reboot_window.ts's search.
 */
function occurrences(
  s: RebootSchedule,
  fromMs: number,
  toMs: number,
): [number, number][] {
  const out: [number, number][] = [];
  const first = Temporal.Instant.fromEpochMilliseconds(fromMs)
    .toZonedDateTimeISO(s.timeZone).toPlainDate().subtract({ days: 1 });
  for (let date = first;; date = date.add({ days: 1 })) {
    const midnight = date.toZonedDateTime({ timeZone: s.timeZone });
    if (midnight.epochMilliseconds > toMs + DAY) break;
    for (const e of s.entries) {
      if (e.days !== undefined && !e.days.includes(date.dayOfWeek % 7)) {
        continue;
      }
      const start = date.toPlainDateTime({ hour: e.hour, minute: e.minute })
        .toZonedDateTime(s.timeZone, { disambiguation: "compatible" })
        .epochMilliseconds;
      out.push([start, start + e.lengthMs]);
    }
  }
  return out;
}

/** Membership of each minute from `fromMs` (a whole minute) for `minutes` minutes. */
function membership(
  s: RebootSchedule,
  fromMs: number,
  minutes: number,
): boolean[] {
  const toMs = fromMs + minutes * MINUTE;
  const member: boolean[] = new Array(minutes).fill(false);
  for (const [start, end] of occurrences(s, fromMs - 8 * DAY, toMs)) {
    const a = Math.max(0, Math.ceil((start - fromMs) / MINUTE));
    const b = Math.min(minutes, Math.ceil((end - fromMs) / MINUTE));
    for (let i = a; i < b; i++) member[i] = true;
  }
  return member;
}

/** First index ≥ `from` whose membership is `value`, or `undefined`. */
function firstFrom(
  member: boolean[],
  from: number,
  value: boolean,
): number | undefined {
  for (let i = from; i < member.length; i++) if (member[i] === value) return i;
  return undefined;
}

const SCHEDULES = 40;
const CHECKED_MINUTES = 2 * 1440; // the stretch whose minutes are checked
const LOOKAHEAD_MINUTES = 9 * 1440;
const SAMPLES = 60;

/**
 * The minutes to check in `member[0, CHECKED_MINUTES)`: each side of every
 * change of membership, and `SAMPLES` random ones.
 */
function minutesToCheck(member: boolean[], random: () => number): number[] {
  const chosen = new Set<number>([0]);
  for (let i = 1; i < CHECKED_MINUTES; i++) {
    if (member[i] !== member[i - 1]) chosen.add(i - 1).add(i).add(i + 1);
  }
  for (let k = 0; k < SAMPLES; k++) {
    chosen.add(Math.floor(random() * CHECKED_MINUTES));
  }
  return [...chosen].sort((a, b) => a - b);
}

Deno.test("scheduleState() matches minute-by-minute membership at every change and at random minutes, for random schedules across DST", () => {
  const random = seeded(SEED);
  for (let n = 0; n < SCHEDULES; n++) {
    const text = randomScheduleText(random);
    const zone = pick(random, ZONES);
    const s = parseSchedule(text, zone);
    const around = new Date(pick(random, AROUND)).getTime();
    const offset = Math.floor((random() - 0.75) * 2 * DAY / MINUTE) * MINUTE;
    const t0 = Math.floor((around + offset) / MINUTE) * MINUTE;
    const total = CHECKED_MINUTES + LOOKAHEAD_MINUTES;
    const member = membership(s, t0, total);
    const context = () =>
      `seed ${SEED}, schedule "${text}" in ${zone} (${formatSchedule(s)})`;
    for (const i of minutesToCheck(member, random)) {
      const at = t0 + i * MINUTE;
      const st = scheduleState(s, new Date(at));
      const where = () => `${context()} at ${new Date(at).toISOString()}`;
      assert.equal(st.open, member[i], `open ${where()}`);
      const periodStart = st.open ? i : firstFrom(member, i, true);
      if (!st.open) {
        assert.ok(periodStart !== undefined, `no opening found ${where()}`);
        assert.equal(
          st.opensAt.getTime(),
          t0 + periodStart * MINUTE,
          `opensAt ${where()}`,
        );
      }
      const closes = firstFrom(member, periodStart as number, false);
      if (closes === undefined) {
        // Open past the scanned range: either no end within the horizon, or one after the range.
        assert.ok(
          st.closesAt === null || st.closesAt.getTime() >= t0 + total * MINUTE,
          `closesAt ${where()}`,
        );
      } else {
        assert.ok(st.closesAt !== null, `closesAt null ${where()}`);
        assert.ok(closes * MINUTE - (at - t0) <= SCHEDULE_HORIZON_MS);
        assert.equal(
          st.closesAt.getTime(),
          t0 + closes * MINUTE,
          `closesAt ${where()}`,
        );
      }
    }
  }
});
