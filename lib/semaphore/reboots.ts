/**
 * Reboots from the slot history: each `taken` paired with the event that
 * ended that slot, as one line (machine, took at, back at, time away,
 * outcome). Machines that took a slot and never gave it back come first.
 * Pure.
 *
 * @module
 */

import type { HistoryEvent, HistoryKind } from "./history.ts";

/**
 * How a reboot ended: `holding` (no end yet), `back` (released after its
 * boot), `returned` (given back unused), `reclaimed` (never came back: its
 * slot TTL ran out), `unlocked` (by an operator), `lost` (the history has
 * no end, but the id holds no slot: e.g. the document was reset).
 */
export type RebootOutcome =
  | "holding"
  | "back"
  | "lost"
  | Exclude<
    HistoryKind,
    "taken" | "released"
  >;

/** One reboot: a slot from taking to its end. */
export interface RebootLine {
  /** The group (`""`: the default semaphore). */
  readonly group: string;
  /** The holder id. */
  readonly id: string;
  /** When the slot was taken (ISO 8601), if known. */
  readonly took?: string | undefined;
  /** When it ended, if it did. */
  readonly back?: string | undefined;
  /** Time from taking to the end, in ms, when both are known. */
  readonly awayMs?: number | undefined;
  /** How it ended. */
  readonly outcome: RebootOutcome;
  /** What took the slot, if known. */
  readonly by?: string | undefined;
}

/** Whether a line is a machine that never came back: still holding, lost, or reclaimed. */
export function neverCameBack(line: RebootLine): boolean {
  return line.outcome === "holding" || line.outcome === "lost" ||
    line.outcome === "reclaimed";
}

const OUTCOME: Record<Exclude<HistoryKind, "taken">, RebootOutcome> = {
  released: "back",
  returned: "returned",
  reclaimed: "reclaimed",
  unlocked: "unlocked",
};

function timeOf(text: string | undefined): number {
  const t = text === undefined ? NaN : Date.parse(text);
  return Number.isNaN(t) ? 0 : t;
}

/**
 * The reboots of one group from its `events` (oldest first). With
 * `holders` (the current document's), a slot without end whose id no
 * longer holds is `lost`. Order: open slots first (oldest taken first),
 * then the ended ones, the latest end first.
 */
export function rebootLines(
  group: string,
  events: readonly HistoryEvent[],
  holders?: readonly string[],
): RebootLine[] {
  const open = new Map<string, HistoryEvent>();
  const ended: RebootLine[] = [];
  for (const event of events) {
    if (event.kind === "taken") {
      open.set(event.id, event);
      continue;
    }
    const taken = open.get(event.id);
    open.delete(event.id);
    const took = taken?.at ?? event.since;
    ended.push({
      group,
      id: event.id,
      took,
      back: event.at,
      awayMs: took === undefined
        ? undefined
        : Math.max(0, timeOf(event.at) - timeOf(took)),
      outcome: OUTCOME[event.kind],
      by: taken?.by,
    });
  }
  const still = holders === undefined ? undefined : new Set(holders);
  const opened: RebootLine[] = [...open.values()].map((t) => ({
    group,
    id: t.id,
    took: t.at,
    outcome: still === undefined || still.has(t.id) ? "holding" : "lost",
    by: t.by,
  }));
  opened.sort((a, b) => timeOf(a.took) - timeOf(b.took));
  ended.sort((a, b) => timeOf(b.back) - timeOf(a.back));
  return [...opened, ...ended];
}

/**
 * The lines of `lines` that matter since `sinceMs` (epoch ms): every open
 * slot, and the ended ones that ended at or after it.
 */
export function linesSince(
  lines: readonly RebootLine[],
  sinceMs: number,
): RebootLine[] {
  return lines.filter((l) => l.back === undefined || timeOf(l.back) >= sinceMs);
}

/** Orders the lines of several groups: open slots first (oldest first), then the latest end first. */
export function mergeLines(groups: readonly RebootLine[][]): RebootLine[] {
  const all = groups.flat();
  const open = all.filter((l) => l.back === undefined)
    .sort((a, b) => timeOf(a.took) - timeOf(b.took));
  const ended = all.filter((l) => l.back !== undefined)
    .sort((a, b) => timeOf(b.back) - timeOf(a.back));
  return [...open, ...ended];
}
