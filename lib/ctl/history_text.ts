/**
 * The text and JSON of `locksmithctl history`: one line per reboot
 * (machine, took at, back at, time away, outcome), machines that took a
 * slot and never gave it back first, marked `*`. Pure.
 *
 * @module
 */

import { formatAge } from "../common/duration.ts";
import type { GroupHistory } from "../semaphore/history.ts";
import {
  linesSince,
  mergeLines,
  neverCameBack,
  type RebootLine,
  rebootLines,
} from "../semaphore/reboots.ts";
import { idCell, table } from "./status_text.ts";

/** The reboots of `histories` to show since `sinceMs` (epoch ms). */
export function historyLines(
  histories: readonly GroupHistory[],
  sinceMs: number,
): RebootLine[] {
  return mergeLines(
    histories.map((h) =>
      linesSince(rebootLines(h.group, h.events, h.holders), sinceMs)
    ),
  );
}

/** A stored time as listed: `2024-06-03 02:00:04Z`, `-` when absent. */
function timeCell(text: string | undefined): string {
  if (text === undefined) return "-";
  const t = Date.parse(text);
  if (Number.isNaN(t)) return "-";
  return new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

const OUTCOME_TEXT: Record<RebootLine["outcome"], string> = {
  holding: "holding: never released",
  lost: "no end recorded (the slot is gone)",
  back: "back",
  returned: "returned unused",
  reclaimed: "reclaimed: never came back",
  unlocked: "unlocked by an operator",
};

function awayCell(line: RebootLine, now: Date): string {
  if (line.awayMs !== undefined) return formatAge(line.awayMs);
  const took = Date.parse(line.took ?? "");
  if (line.back === undefined && !Number.isNaN(took)) {
    return `${formatAge(now.getTime() - took)}+`;
  }
  return "-";
}

/**
 * The text of `history`: a table, or a sentence when there is nothing to
 * show; the group column only when several groups are shown.
 */
export function formatHistory(
  lines: readonly RebootLine[],
  now: Date,
  sinceText: string,
  withGroup: boolean,
): string {
  if (lines.length === 0) return `No reboot in the last ${sinceText}\n`;
  const header = [
    ...(withGroup ? ["GROUP"] : []),
    "  MACHINE",
    "TOOK AT",
    "BACK AT",
    "AWAY",
    "OUTCOME",
  ];
  const rows = lines.map((l) => [
    ...(withGroup ? [l.group === "" ? "(default)" : idCell(l.group)] : []),
    `${neverCameBack(l) ? "*" : " "} ${idCell(l.id)}`,
    timeCell(l.took),
    timeCell(l.back),
    awayCell(l, now),
    OUTCOME_TEXT[l.outcome],
  ]);
  return table([header, ...rows]);
}

/** The JSON fields of `history`. */
export function historyJson(
  histories: readonly GroupHistory[],
  lines: readonly RebootLine[],
  sinceMs: number,
): Record<string, unknown> {
  return {
    since: new Date(sinceMs).toISOString(),
    groups: histories.map((h) => h.group),
    reboots: lines.map((l) => ({
      group: l.group,
      id: l.id,
      took: l.took ?? null,
      back: l.back ?? null,
      away_seconds: l.awayMs === undefined ? null : l.awayMs / 1_000,
      outcome: l.outcome,
      never_came_back: neverCameBack(l),
      by: l.by ?? null,
    })),
    skipped: histories.flatMap((h) => h.skipped),
  };
}

/** The one warning about history entries that do not parse, or `undefined`. */
export function skippedWarning(
  histories: readonly GroupHistory[],
): string | undefined {
  const skipped = histories.flatMap((h) => h.skipped);
  if (skipped.length === 0) return undefined;
  return `skipped ${skipped.length} history entr${
    skipped.length === 1 ? "y" : "ies"
  } that do${skipped.length === 1 ? "es" : ""} not parse (${
    idCell(skipped[0] as string)
  }${skipped.length > 1 ? ", ..." : ""})`;
}
