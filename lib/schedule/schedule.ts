/**
 * Reboot schedules: several reboot windows, each daily or on a list of days,
 * in one time zone, e.g. `Mon-Fri 02:00 2h, Sat 04:00 4h`.
 *
 * A schedule is open while any of its windows is; overlapping and adjacent
 * occurrences form one open period, so {@link scheduleState} reports the true
 * end of the period that is open. Every window follows the rules of
 * `reboot_window.ts`: the start is wall-clock time in the zone (a start in a
 * spring-forward gap moves later by the gap, a repeated one takes the earlier
 * instant) and the length is elapsed time.
 *
 * Everything here is pure: "now" is a parameter, and the only thing read from
 * the environment is the system's time zone when none is given.
 *
 * @module
 */

import { formatDuration, parseDuration } from "../common/duration.ts";
import { quote } from "../common/errors.ts";
import {
  canonicalTimeZone,
  DAY_NAMES,
  MAX_DAILY_LENGTH_MS,
  MAX_WEEKLY_LENGTH_MS,
  nextWindow,
  type RebootWindow,
  RebootWindowError,
  toInstant,
  windowContaining,
} from "./reboot_window.ts";

/**
 * How far ahead {@link scheduleState} follows an open period (14 days): a
 * schedule whose windows join up for longer reports `closesAt: null`.
 */
export const SCHEDULE_HORIZON_MS = 14 * 86_400_000;

/** One entry of a schedule: a start time and length, daily or on some days. */
export interface ScheduleEntry {
  /** Days the window starts on (0 = Sunday ... 6 = Saturday), ascending; `undefined` for daily. */
  readonly days?: readonly number[] | undefined;
  /** The day list as written, with day names capitalised (`Mon-Fri`, `Sun,Wed`); `undefined` for daily. */
  readonly daysText?: string | undefined;
  /** Hour of the wall-clock start, 0-23. */
  readonly hour: number;
  /** Minute of the wall-clock start, 0-59. */
  readonly minute: number;
  /** Elapsed length of each occurrence in milliseconds. */
  readonly lengthMs: number;
}

/** A reboot schedule: entries in one time zone, and the windows they stand for. */
export interface RebootSchedule {
  /** Time zone of every window, as canonicalised by Temporal (e.g. `Europe/Berlin`). */
  readonly timeZone: string;
  /** The entries, in the order written. */
  readonly entries: readonly ScheduleEntry[];
  /** One window per entry and day (a daily entry gives one daily window). */
  readonly windows: readonly RebootWindow[];
}

/**
 * Whether a schedule is open at some instant. Open: `closesAt` is the end of
 * the open period (all overlapping and adjacent occurrences merged), or `null`
 * when it does not close within {@link SCHEDULE_HORIZON_MS}. Closed: `opensAt`
 * is when the next period opens and `closesAt` when that one ends (or `null`).
 */
export type ScheduleState =
  | { readonly open: true; readonly closesAt: Date | null }
  | {
    readonly open: false;
    readonly opensAt: Date;
    readonly closesAt: Date | null;
  };

/**
 * A rejected reboot schedule: a {@link RebootWindowError} with field
 * `schedule`, whose `value` is the whole schedule text and whose `defect`
 * reads `is invalid: "Mon-Fry" is not a day or day range; ...`. `part` is the
 * faulty piece and `problem` what is wrong with it, so that configuration
 * resolution can name its key, e.g.
 * `LOCKSMITHD_REBOOT_SCHEDULE="Mon-Fry 02:00 2h" (from ...) is invalid: "Mon-Fry" is not ...`.
 */
export class ScheduleError extends RebootWindowError {
  /** The faulty piece of the schedule text, e.g. `Mon-Fry`. */
  readonly part: string;
  /** What is wrong with `part` and what is accepted. */
  readonly problem: string;
  /**
   * Creates a `ScheduleError`.
   *
   * @param value the whole schedule text
   * @param part the faulty piece of it
   * @param problem what is wrong with the piece and what is accepted
   */
  constructor(value: string, part: string, problem: string) {
    super("schedule", value, `is invalid: ${quote(part)} ${problem}`);
    this.name = "ScheduleError";
    this.part = part;
    this.problem = problem;
  }
}

const DAY_LIST_ACCEPTED = `is not a day or day range; days are ${
  DAY_NAMES.join(", ")
}, e.g. Mon-Fri, Fri-Mon or Sun,Wed`;
const TIME_RE = /^(\d{1,2}):(\d{1,2})$/;
const EXAMPLE = '"Mon-Fri 02:00 2h, Sat 04:00 4h" or "02:00 1h30m"';

function dayIndex(name: string): number {
  return name.length === 3
    ? DAY_NAMES.findIndex((d) => d.toLowerCase() === name.toLowerCase())
    : -1;
}

/** Parses `Mon`, `Mon-Fri` or `Fri-Mon` (wrapping); `undefined` when it is none. */
function parseDayItem(item: string): number[] | undefined {
  const bounds = item.split("-");
  if (bounds.length > 2) return undefined;
  const [first, last] = bounds.map(dayIndex) as [number, number | undefined];
  if (first < 0 || (last !== undefined && last < 0)) return undefined;
  const days = [first];
  for (let d = first; last !== undefined && d !== last;) {
    d = (d + 1) % 7;
    days.push(d);
  }
  return days;
}

function capitalise(item: string): string {
  return item.split("-").map((d) =>
    d.charAt(0).toUpperCase() + d.slice(1).toLowerCase()
  ).join("-");
}

/** Throws a {@link ScheduleError} for the schedule being parsed. */
type Fail = (part: string, problem: string) => never;

/** Days collected for the next entry: `Sun,Wed 03:00 1h` is read as `Sun` then `Wed 03:00 1h`. */
class PendingDays {
  items: string[] = [];
  days = new Set<number>();
  add(item: string, fail: Fail): void {
    const days = parseDayItem(item) ?? fail(item, DAY_LIST_ACCEPTED);
    this.items.push(capitalise(item));
    for (const d of days) this.days.add(d);
  }
}

function parseEntry(
  pending: PendingDays,
  timeText: string,
  lengthText: string,
  fail: Fail,
): ScheduleEntry {
  const time = TIME_RE.exec(timeText);
  const hour = Number(time?.[1]);
  const minute = Number(time?.[2]);
  if (time === null || hour > 23 || minute > 59) {
    fail(timeText, "is not a time H:M with H 0-23 and M 0-59, e.g. 02:00");
  }
  const lengthMs = parseDuration(lengthText) ??
    fail(lengthText, "is not a duration like 1h30m (units ms, s, m, h, d)");
  if (lengthMs <= 0) fail(lengthText, "is zero; a window needs a length");
  const daily = pending.items.length === 0;
  if (daily && lengthMs >= MAX_DAILY_LENGTH_MS) {
    fail(
      lengthText,
      'is not shorter than 24h, the limit for a daily window (a window on days, e.g. "Sat 04:00 2d", allows up to 7d)',
    );
  }
  if (lengthMs >= MAX_WEEKLY_LENGTH_MS) {
    fail(lengthText, "is not shorter than 7d, the limit for a window on days");
  }
  return daily ? { hour, minute, lengthMs } : {
    days: [...pending.days].sort((a, b) => a - b),
    daysText: pending.items.join(","),
    hour,
    minute,
    lengthMs,
  };
}

/**
 * Parses a reboot schedule: comma-separated entries `[DAYS ]H:M LENGTH`.
 *
 * - `DAYS` is a day (`Sat`), a range (`Mon-Fri`; ranges may wrap, `Fri-Mon`
 *   is Friday to Monday) or a comma-separated list of them (`Sun,Wed`,
 *   `Mon-Wed, Fri`), with three-letter English day names (case-insensitive).
 *   Without days, the entry is daily.
 * - `H:M` is the wall-clock start on a 24-hour clock.
 * - `LENGTH` is a duration such as `2h` or `1h30m`: shorter than 24h for a
 *   daily entry, shorter than 7d for one on days. An occurrence that starts
 *   on a listed day may run into the next day.
 *
 * Examples: `Mon-Fri 02:00 2h, Sat 04:00 4h`; `02:00 1h30m`; `Sun,Wed 03:00 1h`.
 * `timeZone` is an IANA zone name (default: the system's).
 *
 * Throws a {@link ScheduleError} naming the faulty part, or a
 * {@link RebootWindowError} with field `timeZone` for an unknown zone.
 */
export function parseSchedule(text: string, timeZone?: string): RebootSchedule {
  const zone = timeZone === undefined
    ? Temporal.Now.timeZoneId()
    : canonicalTimeZone(timeZone);
  const fail: Fail = (part, problem) => {
    throw new ScheduleError(text, part, problem);
  };
  if (text.trim() === "") fail(text, `is empty; write e.g. ${EXAMPLE}`);
  const entries: ScheduleEntry[] = [];
  let pending = new PendingDays();
  for (const rawPiece of text.split(",")) {
    const piece = rawPiece.trim();
    if (piece === "") {
      fail(text, `has an empty entry between commas; write e.g. ${EXAMPLE}`);
    }
    const tokens = piece.split(/\s+/);
    if (tokens.length === 1 && !piece.includes(":")) {
      pending.add(piece, fail);
      continue;
    }
    if (tokens.length === 3) {
      pending.add(tokens[0] as string, fail);
    } else if (tokens.length !== 2) {
      fail(piece, `is not an entry [DAYS ]H:M LENGTH, e.g. ${EXAMPLE}`);
    } else if (!(tokens[0] as string).includes(":")) {
      fail(piece, 'has no time or no length; write e.g. "Mon-Fri 02:00 2h"');
    } else if (pending.items.length > 0) {
      fail(
        pending.items.join(","),
        'is not followed by a day and a time; write e.g. "Sun,Wed 03:00 1h"',
      );
    }
    const [timeText, lengthText] = tokens.slice(-2) as [string, string];
    entries.push(parseEntry(pending, timeText, lengthText, fail));
    pending = new PendingDays();
  }
  if (pending.items.length > 0) {
    fail(
      pending.items.join(","),
      'has no time and length after it; write e.g. "Sun,Wed 03:00 1h"',
    );
  }
  return scheduleOf(entries, zone);
}

function scheduleOf(
  entries: readonly ScheduleEntry[],
  timeZone: string,
): RebootSchedule {
  const windows: RebootWindow[] = [];
  for (const e of entries) {
    const base = { hour: e.hour, minute: e.minute, lengthMs: e.lengthMs };
    if (e.days === undefined) windows.push({ ...base, timeZone });
    else for (const day of e.days) windows.push({ day, ...base, timeZone });
  }
  return { timeZone, entries, windows };
}

/**
 * A schedule of one reboot window (as `LOCKSMITHD_REBOOT_WINDOW_START` and
 * `_LENGTH` give), so that a daemon can handle both kinds of configuration
 * as schedules.
 */
export function scheduleFromWindow(window: RebootWindow): RebootSchedule {
  const entry: ScheduleEntry = {
    ...(window.day === undefined
      ? {}
      : { days: [window.day], daysText: DAY_NAMES[window.day] }),
    hour: window.hour,
    minute: window.minute,
    lengthMs: window.lengthMs,
  };
  return scheduleOf([entry], window.timeZone);
}

/** Latest end of the occurrences that contain `ms`, or `undefined` when none does. */
function latestEndAt(s: RebootSchedule, ms: number): number | undefined {
  const at = Temporal.Instant.fromEpochMilliseconds(ms);
  let end: number | undefined;
  for (const w of s.windows) {
    const occ = windowContaining(w, at);
    if (occ !== undefined && (end === undefined || occ.end.getTime() > end)) {
      end = occ.end.getTime();
    }
  }
  return end;
}

/** Follows an open period that runs at least until `endMs` to its end; `null` past the horizon. */
function periodEnd(
  s: RebootSchedule,
  endMs: number,
  fromMs: number,
): Date | null {
  let end = endMs;
  for (;;) {
    if (end - fromMs > SCHEDULE_HORIZON_MS) return null;
    const further = latestEndAt(s, end);
    if (further === undefined) return new Date(end);
    end = further;
  }
}

/**
 * Whether `schedule` is open at `now` (see {@link ScheduleState}): open
 * until the end of the merged open period, or closed until the next one
 * opens. Pure. Throws a `RangeError` for an invalid `Date`.
 *
 * @example
 * ```ts
 * import { parseSchedule, scheduleState } from "./schedule.ts";
 * const s = parseSchedule("Mon-Fri 02:00 2h, Sat 04:00 4h", "Europe/Berlin");
 * scheduleState(s, new Date("2024-06-02T12:00:00Z")); // a Sunday
 * // { open: false, opensAt: 2024-06-03T00:00:00Z (Mon 02:00 CEST), closesAt: 2024-06-03T02:00:00Z }
 * ```
 */
export function scheduleState(
  schedule: RebootSchedule,
  now: Date | Temporal.Instant,
): ScheduleState {
  const instant = toInstant(now);
  const nowMs = instant.epochMilliseconds;
  const end = latestEndAt(schedule, nowMs);
  if (end !== undefined) {
    return { open: true, closesAt: periodEnd(schedule, end, nowMs) };
  }
  let opens = Infinity;
  for (const w of schedule.windows) {
    opens = Math.min(opens, nextWindow(w, instant).start.getTime());
  }
  const firstEnd = latestEndAt(schedule, opens) as number;
  return {
    open: false,
    opensAt: new Date(opens),
    closesAt: periodEnd(schedule, firstEnd, opens),
  };
}

function twoDigits(n: number): string {
  return String(n).padStart(2, "0");
}

/**
 * Formats an instant in a time zone for log lines: `Sat 2024-03-30 04:00+01:00`
 * (seconds only when not zero).
 */
export function formatInstantIn(at: Date, timeZone: string): string {
  const z = toInstant(at).toZonedDateTimeISO(timeZone);
  const seconds = z.second === 0 ? "" : `:${twoDigits(z.second)}`;
  return `${DAY_NAMES[z.dayOfWeek % 7]} ${z.toPlainDate().toString()} ${
    twoDigits(z.hour)
  }:${twoDigits(z.minute)}${seconds}${z.offset}`;
}

/**
 * Formats a schedule for log lines: `Mon-Fri 02:00 for 2h, Sat 04:00 for 4h
 * (Europe/Berlin)`; a daily entry reads `daily 02:00 for 1h30m`.
 */
export function formatSchedule(schedule: RebootSchedule): string {
  const entries = schedule.entries.map((e) =>
    `${e.daysText ?? "daily"} ${twoDigits(e.hour)}:${twoDigits(e.minute)} for ${
      formatDuration(e.lengthMs)
    }`
  );
  return `${entries.join(", ")} (${schedule.timeZone})`;
}

/**
 * Formats a state of `schedule` for log lines, times in the schedule's zone:
 * `open until Sat 2024-03-30 08:00+01:00 (Europe/Berlin)` or `closed until
 * Mon 2024-04-01 02:00+02:00, then open until Mon 2024-04-01 04:00+02:00
 * (Europe/Berlin)`.
 */
export function formatScheduleState(
  schedule: RebootSchedule,
  state: ScheduleState,
): string {
  const at = (d: Date) => formatInstantIn(d, schedule.timeZone);
  const until = (d: Date | null) =>
    d === null ? "with no end within 14 days" : `until ${at(d)}`;
  const text = state.open
    ? `open ${until(state.closesAt)}`
    : `closed until ${at(state.opensAt)}, then open ${until(state.closesAt)}`;
  return `${text} (${schedule.timeZone})`;
}
