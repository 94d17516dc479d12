/**
 * Reboot windows: a daily or weekly wall-clock start in a time zone, and a length.
 *
 * Everything here is pure: "now" is always a parameter, and the only thing read
 * from the environment is the system's time zone when none is given.
 *
 * Time zones and daylight saving time:
 *
 * - The start is wall-clock time in the window's zone, so a `04:00` window
 *   starts at 04:00 local time in winter and in summer.
 * - When the wall-clock start does not exist on a day (it falls into a
 *   spring-forward gap, e.g. 02:30 in Europe/Berlin on the last Sunday of
 *   March), the occurrence starts the length of the gap later (03:30 CEST):
 *   Temporal's `disambiguation: "compatible"`.
 * - When the wall-clock start happens twice (it falls into the repeated hour
 *   of a fall-back, e.g. 02:30 in Europe/Berlin on the last Sunday of
 *   October), the occurrence starts at the earlier of the two instants.
 * - The length is elapsed time: a `1h` window lasts 3600 s even when a DST
 *   change happens inside it, so its wall-clock end moves by the change.
 *
 * @module
 */

import { UsageError } from "../common/errors.ts";
import { formatDuration, parseDuration } from "../common/duration.ts";

/** Milliseconds in 24 hours: daily windows must be shorter. */
export const MAX_DAILY_LENGTH_MS = 24 * 3_600_000;

/** Milliseconds in 7 days: weekly windows must be shorter. */
export const MAX_WEEKLY_LENGTH_MS = 7 * MAX_DAILY_LENGTH_MS;

/** Three-letter day names, indexed by {@link RebootWindow.day} (0 = Sunday). */
export const DAY_NAMES: readonly string[] = Object.freeze([
  "Sun",
  "Mon",
  "Tue",
  "Wed",
  "Thu",
  "Fri",
  "Sat",
]);

/** A reboot window that recurs every day, or every week on one day. */
export interface RebootWindow {
  /**
   * Day of the week of a weekly window, 0 = Sunday ... 6 = Saturday (as Go's
   * `time.Weekday` and JavaScript's `Date.getDay()`); `undefined` for a daily window.
   */
  readonly day?: number | undefined;
  /** Hour of the wall-clock start, 0-23. */
  readonly hour: number;
  /** Minute of the wall-clock start, 0-59. */
  readonly minute: number;
  /** Elapsed length of each occurrence in milliseconds; > 0, < 24h (daily) or < 7d (weekly). */
  readonly lengthMs: number;
  /** Time zone of the wall-clock start, as canonicalised by Temporal (e.g. `Europe/Berlin`, `UTC`). */
  readonly timeZone: string;
}

/** One occurrence of a reboot window: `start` inclusive, `end` exclusive. */
export interface WindowOccurrence {
  /** First instant inside the occurrence. */
  readonly start: Date;
  /** First instant after the occurrence. */
  readonly end: Date;
}

/**
 * Which part of a reboot window's definition was rejected; `schedule` is a
 * whole reboot schedule (see `parseSchedule` in `schedule.ts`).
 */
export type RebootWindowField = "start" | "length" | "timeZone" | "schedule";

const FIELD_NAMES: Record<RebootWindowField, string> = {
  start: "window start",
  length: "window length",
  timeZone: "window time zone",
  schedule: "reboot schedule",
};

/**
 * A rejected reboot window value. A {@link UsageError} (exit status 2) whose
 * message reads `window start "Thu 25:00" is not ...`; `field`, `value` and
 * `defect` let a caller rephrase it, e.g. with a config key and its source.
 */
export class RebootWindowError extends UsageError {
  /** Which part of the window was rejected. */
  readonly field: RebootWindowField;
  /** The rejected text, exactly as given. */
  readonly value: string;
  /** What is wrong and what is accepted, e.g. `is not a duration like 1h30m`. */
  readonly defect: string;
  /**
   * Creates a `RebootWindowError`.
   *
   * @param field which part of the window was rejected
   * @param value the rejected text
   * @param defect what is wrong with it and what is accepted
   */
  constructor(field: RebootWindowField, value: string, defect: string) {
    super(`${FIELD_NAMES[field]} ${JSON.stringify(value)} ${defect}`);
    this.name = "RebootWindowError";
    this.field = field;
    this.value = value;
    this.defect = defect;
  }
}

const START_RE = /^(?:([A-Za-z]{3})\s+)?(\d{1,2}):(\d{1,2})$/;
const START_ACCEPTED = `is not [Day ]H:M with Day one of ${
  DAY_NAMES.join(", ")
}, H 0-23 and M 0-59, e.g. "Thu 04:00" or "04:00"`;

/**
 * Parses a reboot window.
 *
 * - `start` is `[Day ]H:M`: an optional three-letter English day name
 *   (case-insensitive) for a weekly window, then a 24-hour clock time, e.g.
 *   `Thu 04:00`, `thu 4:00` or `04:00` (daily).
 * - `length` is a duration such as `1h30m` (see `parseDuration`), more than
 *   zero and shorter than 24h for a daily window, shorter than 7d for a weekly one.
 * - `timeZone` is an IANA zone name such as `Europe/Berlin` (also `UTC` or a
 *   fixed offset such as `+05:30`); `undefined` means the system's local zone.
 *
 * Throws a {@link RebootWindowError} (a {@link UsageError}) naming the value
 * and what is accepted.
 *
 * @example
 * ```ts
 * import { parseRebootWindow } from "./reboot_window.ts";
 * parseRebootWindow("Thu 04:00", "1h30m", "Europe/Berlin");
 * // { day: 4, hour: 4, minute: 0, lengthMs: 5_400_000, timeZone: "Europe/Berlin" }
 * ```
 */
export function parseRebootWindow(
  start: string,
  length: string,
  timeZone?: string,
): RebootWindow {
  const match = START_RE.exec(start.trim());
  if (match === null) {
    throw new RebootWindowError("start", start, START_ACCEPTED);
  }
  const [, dayName, hourText, minuteText] = match;
  let day: number | undefined;
  if (dayName !== undefined) {
    day = DAY_NAMES.findIndex((name) =>
      name.toLowerCase() === dayName.toLowerCase()
    );
    if (day < 0) throw new RebootWindowError("start", start, START_ACCEPTED);
  }
  const hour = Number(hourText);
  const minute = Number(minuteText);
  if (hour > 23 || minute > 59) {
    throw new RebootWindowError("start", start, START_ACCEPTED);
  }

  const lengthMs = parseDuration(length);
  if (lengthMs === undefined) {
    throw new RebootWindowError(
      "length",
      length,
      "is not a duration like 1h30m (units ms, s, m, h, d)",
    );
  }
  if (lengthMs <= 0) {
    throw new RebootWindowError(
      "length",
      length,
      "is zero; give a duration longer than 0, like 1h30m",
    );
  }
  if (day === undefined && lengthMs >= MAX_DAILY_LENGTH_MS) {
    throw new RebootWindowError(
      "length",
      length,
      'is not shorter than 24h, the limit for a daily window (a start with a day, e.g. "Thu 04:00", allows up to 7d)',
    );
  }
  if (day !== undefined && lengthMs >= MAX_WEEKLY_LENGTH_MS) {
    throw new RebootWindowError(
      "length",
      length,
      "is not shorter than 7d, the limit for a weekly window",
    );
  }

  return {
    ...(day === undefined ? {} : { day }),
    hour,
    minute,
    lengthMs,
    timeZone: timeZone === undefined
      ? Temporal.Now.timeZoneId()
      : canonicalTimeZone(timeZone),
  };
}

/**
 * Returns the canonical spelling of a time zone (`europe/berlin` becomes
 * `Europe/Berlin`). Throws a {@link RebootWindowError} for an unknown zone.
 */
export function canonicalTimeZone(timeZone: string): string {
  try {
    return new Temporal.ZonedDateTime(0n, timeZone.trim()).timeZoneId;
  } catch {
    throw new RebootWindowError(
      "timeZone",
      timeZone,
      "is not a known IANA time zone, e.g. Europe/Berlin, America/New_York or UTC",
    );
  }
}

/** `now` as a `Temporal.Instant`; throws a `RangeError` for an invalid `Date`. */
export function toInstant(now: Date | Temporal.Instant): Temporal.Instant {
  if (now instanceof Temporal.Instant) return now;
  const ms = now.getTime();
  if (!Number.isFinite(ms)) throw new RangeError("now is an invalid Date");
  return Temporal.Instant.fromEpochMilliseconds(ms);
}

/**
 * Start instants (epoch ms, ascending, unique) of the occurrences whose
 * wall-clock start date is near `now`'s date in the window's zone: two days
 * either side for a daily window, the two weeks either side of the latest
 * matching weekday for a weekly one. That covers the occurrence running at
 * `now` and the next one to start, with a margin for DST and skipped days.
 */
function nearbyStarts(w: RebootWindow, now: Temporal.Instant): number[] {
  const today = now.toZonedDateTimeISO(w.timeZone).toPlainDate();
  let dates: Temporal.PlainDate[];
  if (w.day === undefined) {
    dates = [-2, -1, 0, 1, 2].map((days) => today.add({ days }));
  } else {
    const latest = today.subtract({ days: (today.dayOfWeek - w.day + 7) % 7 });
    dates = [-14, -7, 0, 7, 14].map((days) => latest.add({ days }));
  }
  const starts = new Set<number>();
  for (const date of dates) {
    const start = date.toPlainDateTime({ hour: w.hour, minute: w.minute })
      .toZonedDateTime(w.timeZone, { disambiguation: "compatible" });
    starts.add(start.epochMilliseconds);
  }
  return [...starts].sort((a, b) => a - b);
}

function occurrence(w: RebootWindow, startMs: number): WindowOccurrence {
  return { start: new Date(startMs), end: new Date(startMs + w.lengthMs) };
}

/** The latest start of `starts` whose occurrence contains `nowMs`, if any. */
function containingStart(
  w: RebootWindow,
  starts: readonly number[],
  nowMs: number,
): number | undefined {
  for (let i = starts.length - 1; i >= 0; i--) {
    const start = starts[i] as number;
    if (start <= nowMs && nowMs < start + w.lengthMs) return start;
  }
  return undefined;
}

/**
 * Returns the occurrence of `w` that contains `now` (start inclusive, end
 * exclusive), including one that started the previous day or week and is still
 * running, or `undefined` when `now` is outside the window.
 *
 * In the rare case where two occurrences overlap (a daily window longer than a
 * 23-hour spring-forward day), the one that started last is returned.
 * Throws a `RangeError` for an invalid `Date`.
 */
export function windowContaining(
  w: RebootWindow,
  now: Date | Temporal.Instant,
): WindowOccurrence | undefined {
  const instant = toInstant(now);
  const nowMs = instant.epochMilliseconds;
  const start = containingStart(w, nearbyStarts(w, instant), nowMs);
  return start === undefined ? undefined : occurrence(w, start);
}

/**
 * Returns the occurrence of `w` that contains `now` (see
 * {@link windowContaining}), else the next one to start after `now`.
 * Throws a `RangeError` for an invalid `Date`.
 */
export function nextWindow(
  w: RebootWindow,
  now: Date | Temporal.Instant,
): WindowOccurrence {
  const instant = toInstant(now);
  const nowMs = instant.epochMilliseconds;
  const starts = nearbyStarts(w, instant);
  const start = containingStart(w, starts, nowMs) ??
    starts.find((s) => s > nowMs);
  if (start === undefined) {
    // Unreachable: a start within the next two weeks always exists.
    throw new RangeError(`no occurrence of ${formatRebootWindow(w)} found`);
  }
  return occurrence(w, start);
}

/**
 * Formats a window for log lines: `Thu 04:00 for 1h30m (Europe/Berlin)`, or
 * `daily 04:00 for 1h30m (UTC)` for a daily window.
 */
export function formatRebootWindow(w: RebootWindow): string {
  const day = w.day === undefined ? "daily" : DAY_NAMES[w.day];
  const time = `${String(w.hour).padStart(2, "0")}:${
    String(w.minute).padStart(2, "0")
  }`;
  return `${day} ${time} for ${formatDuration(w.lengthMs)} (${w.timeZone})`;
}
