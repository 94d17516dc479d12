/**
 * What the fleet page shows, as the server sends it to every viewer: each
 * group's slots, holders, queue and recent reboots, with the server's
 * time (the page measures ages against it, not against the viewer's
 * clock). Built from the fleet's state; pure.
 *
 * @module
 */

import type { FleetGroupState } from "../etcd/store/fleet_state.ts";
import { livenessOf } from "../semaphore/semaphore_view.ts";
import { neverCameBack, rebootLines } from "../semaphore/reboots.ts";

/** Ended reboots sent per group (open slots are always sent). */
export const RECENT_REBOOTS = 50;

/** One reboot as the page lists it. */
export interface PageReboot {
  /** The machine. */
  readonly id: string;
  /** When it took its slot (ISO 8601), if known. */
  readonly took?: string | undefined;
  /** When the slot ended, if it did. */
  readonly back?: string | undefined;
  /** Time away in ms, when known. */
  readonly awayMs?: number | undefined;
  /** How it ended (see `RebootOutcome`). */
  readonly outcome: string;
  /** A machine that never came back (still holding, lost, or reclaimed). */
  readonly never: boolean;
}

/** One group as the page shows it. */
export interface PageGroup {
  /** The group (`""`: the default semaphore). */
  readonly group: string;
  /** Why the group cannot be shown (a corrupt document), when it cannot. */
  readonly error?: string | undefined;
  /** Slots. */
  readonly max: number;
  /** Free slots (negative after set-max below the holders). */
  readonly available: number;
  /** Whether new slots are refused. */
  readonly paused: boolean;
  /** Since when, if it says. */
  readonly pausedSince?: string | undefined;
  /** Holders, in the document's order. */
  readonly holders: readonly {
    readonly id: string;
    readonly since?: string | undefined;
    readonly by?: string | undefined;
    readonly boot?: string | undefined;
    readonly liveness: string;
  }[];
  /** The queue in order (the first thousand). */
  readonly queue: readonly {
    readonly id: string;
    readonly since?: string | undefined;
  }[];
  /** How many wait in all. */
  readonly waiting: number;
  /** Open slots first, then the latest reboots. */
  readonly reboots: readonly PageReboot[];
  /** History entries that do not parse (skipped). */
  readonly skipped: number;
}

/** The whole page's data. */
export interface PageSnapshot {
  /** The server's time when built (ISO 8601). */
  readonly now: string;
  /** The etcd revision shown. */
  readonly revision: number;
  /** Why the data may be old (etcd trouble), if it may. */
  readonly trouble?: string | undefined;
  /** Every group, the default one first. */
  readonly groups: readonly PageGroup[];
}

function pageGroup(state: FleetGroupState): PageGroup {
  const lines = rebootLines(
    state.group,
    state.history.events,
    state.history.holders,
  );
  const open = lines.filter((l) => l.back === undefined);
  const ended = lines.filter((l) => l.back !== undefined)
    .slice(0, RECENT_REBOOTS);
  const reboots = [...open, ...ended].map((l): PageReboot => ({
    id: l.id,
    took: l.took,
    back: l.back,
    awayMs: l.awayMs,
    outcome: l.outcome,
    never: neverCameBack(l),
  }));
  const base = {
    group: state.group,
    reboots,
    skipped: state.history.skipped.length,
  };
  const view = state.view;
  if ("error" in view) {
    return {
      ...base,
      error: view.error,
      max: 0,
      available: 0,
      paused: false,
      holders: [],
      queue: [],
      waiting: 0,
    };
  }
  return {
    ...base,
    max: view.doc.max,
    available: view.doc.semaphore,
    paused: view.paused,
    pausedSince: view.pausedSince,
    holders: view.holders.map((h) => ({
      id: h.id,
      since: h.record?.since,
      by: h.record?.by,
      boot: h.record?.boot,
      liveness: livenessOf(h),
    })),
    queue: view.waiters.map((w) => ({ id: w.id, since: w.since })),
    waiting: view.waiting,
  };
}

/** The page's data for `fleet` at `now`. */
export function pageSnapshot(
  fleet: readonly FleetGroupState[],
  now: Date,
  revision: number,
  trouble?: string,
): PageSnapshot {
  return {
    now: now.toISOString(),
    revision,
    ...(trouble === undefined ? {} : { trouble }),
    groups: fleet.map(pageGroup),
  };
}
