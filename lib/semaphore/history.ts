/**
 * The reboot history of a semaphore: every slot event (taken, released
 * after boot, given back unused, reclaimed after its slot TTL, unlocked by
 * an operator), stored beside the document in a ring of
 * {@link HISTORY_SLOTS} keys, `<key>/history/<n>`.
 *
 * A change of the document that writes version `v` writes its events to
 * slot `v mod HISTORY_SLOTS` in the same transaction (and clears that slot
 * when it has none, e.g. `set-max`), so an event is stored exactly when its
 * change is, a grant still costs one compare-and-swap, and the history
 * holds the events of the last {@link HISTORY_SLOTS} changes at most
 * whatever happens. Writing never reads the history: a missing or corrupt
 * entry can never block a change. Readers skip an entry that does not
 * parse. Pure.
 *
 * @module
 */

import { idDefect } from "../common/machine_id.ts";

/** Changes of the document whose events are kept (one key each). */
export const HISTORY_SLOTS = 1_000;

/** The kinds of slot event. */
export const HISTORY_KINDS = [
  "taken",
  "released",
  "returned",
  "reclaimed",
  "unlocked",
] as const;

/**
 * `taken`; `released` (after the machine's boot: it is back); `returned`
 * (given back unused: the window closed, logind refused, a check said no);
 * `reclaimed` (its slot TTL ran out: it never came back); `unlocked` (an
 * operator's `locksmithctl unlock`).
 */
export type HistoryKind = typeof HISTORY_KINDS[number];

/** One slot event. */
export interface HistoryEvent {
  /** What happened. */
  readonly kind: HistoryKind;
  /** The holder id. */
  readonly id: string;
  /** When, ISO 8601 (the writer's clock). */
  readonly at: string;
  /** What took the slot (`locksmithd`, `locksmithctl`, `fleetlock`), for `taken`. */
  readonly by?: string | undefined;
  /** When the slot was taken, if the writer knew, for the events that end a slot. */
  readonly since?: string | undefined;
  /** The holder's boot id when it took the slot, if known. */
  readonly boot?: string | undefined;
}

/** The events written with one change, as stored. */
export interface HistoryEntry {
  /** The events, in the order they were applied. */
  readonly events: readonly HistoryEvent[];
  /** The entry's `mod_revision`: the order of entries. */
  readonly revision: number;
}

/** Prefix of the history under the semaphore at `key`. */
export function historyPrefix(key: string): string {
  return `${key}/history/`;
}

/** The history key written with the change that stores `version` of the document at `key`. */
export function historySlotKey(key: string, version: number): string {
  return `${historyPrefix(key)}${version % HISTORY_SLOTS}`;
}

/** The stored text of one change's events. */
export function formatHistoryEntry(events: readonly HistoryEvent[]): string {
  return JSON.stringify({
    events: events.map((e) => ({
      kind: e.kind,
      id: e.id,
      at: e.at,
      ...(e.by === undefined ? {} : { by: e.by }),
      ...(e.since === undefined ? {} : { since: e.since }),
      ...(e.boot === undefined ? {} : { boot: e.boot }),
    })),
  });
}

function isTime(value: unknown): value is string {
  return typeof value === "string" && !Number.isNaN(Date.parse(value));
}

function eventOf(value: unknown): HistoryEvent | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const e = value as Record<string, unknown>;
  if (!(HISTORY_KINDS as readonly unknown[]).includes(e.kind)) return undefined;
  if (idDefect(e.id) !== undefined || !isTime(e.at)) return undefined;
  if (e.by !== undefined && typeof e.by !== "string") return undefined;
  if (e.since !== undefined && !isTime(e.since)) return undefined;
  if (e.boot !== undefined && typeof e.boot !== "string") return undefined;
  return {
    kind: e.kind as HistoryKind,
    id: e.id as string,
    at: e.at,
    ...(typeof e.by === "string" ? { by: e.by } : {}),
    ...(typeof e.since === "string" ? { since: e.since } : {}),
    ...(typeof e.boot === "string" ? { boot: e.boot } : {}),
  };
}

/**
 * Parses a stored entry: its events, or `undefined` when it is not one
 * (junk: the reader skips it; history is advisory, never an error).
 */
export function parseHistoryEntry(raw: string): HistoryEvent[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const list = (value as Record<string, unknown>).events;
  if (!Array.isArray(list)) return undefined;
  const events: HistoryEvent[] = [];
  for (const item of list) {
    const event = eventOf(item);
    if (event === undefined) return undefined;
    events.push(event);
  }
  return events;
}

/** The events of `entries`, oldest first (entries in revision order). */
export function eventsInOrder(
  entries: readonly HistoryEntry[],
): HistoryEvent[] {
  return [...entries].sort((a, b) => a.revision - b.revision)
    .flatMap((e) => e.events);
}

/** The events that a change from `before` to `after` holders makes, by id. */
export function holderChanges(
  before: readonly string[],
  after: readonly string[],
): { taken: string[]; ended: string[] } {
  const had = new Set(before);
  const has = new Set(after);
  return {
    taken: after.filter((id) => !had.has(id)),
    ended: before.filter((id) => !has.has(id)),
  };
}

/** The history of one semaphore as read. */
export interface GroupHistory {
  /** The group (`""` for the default semaphore). */
  readonly group: string;
  /** The semaphore key. */
  readonly key: string;
  /** The events, oldest first. */
  readonly events: readonly HistoryEvent[];
  /**
   * The current holders (a `taken` without end whose id no longer holds was
   * lost: e.g. a reset); `undefined` when the document does not parse.
   */
  readonly holders: readonly string[] | undefined;
  /** Keys of entries that do not parse (skipped). */
  readonly skipped: readonly string[];
}
