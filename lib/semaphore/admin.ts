/**
 * What an operator does with a semaphore beyond lock and unlock: view its
 * whole state (once, or on every change), pause and resume it, store its
 * slot TTL, reclaim stale slots, and list every group. The port that
 * locksmithctl uses; `EtcdSemaphoreAdmin` implements it.
 *
 * @module
 */

import type { HolderState, SemaphoreView } from "./semaphore_view.ts";
import type { StoredSettings } from "./settings.ts";
import type { GroupHistory } from "./history.ts";

/** One semaphore of the fleet, for the table of every group. */
export type GroupSummary =
  | {
    /** The group (`""` for the default semaphore). */
    readonly group: string;
    /** Its state. */
    readonly view: SemaphoreView;
  }
  | {
    /** The group (`""` for the default semaphore). */
    readonly group: string;
    /** The semaphore key. */
    readonly key: string;
    /** Why it cannot be shown (a corrupt document), one line. */
    readonly error: string;
  };

/** How a watch is going, for the operator's terminal. */
export interface WatchHandlers {
  /** The state after a change (and once at the start). */
  onView(view: SemaphoreView): void;
  /** The watch or a read failed and is retried; one line. */
  onTrouble(message: string): void;
}

/** The operator's commands on one semaphore; see the module documentation. */
export interface SemaphoreAdmin {
  /** The semaphore key. */
  readonly key: string;
  /** Reads the whole state in one request. */
  view(): Promise<SemaphoreView>;
  /**
   * Pauses (no new slot is taken; holders keep theirs) or resumes; `by`
   * is recorded with the pause. Returns whether anything changed.
   */
  setPaused(paused: boolean, by: string): Promise<boolean>;
  /**
   * Stores the slot TTL in seconds (`0`: none), or removes it
   * (`undefined`: each daemon's own default). Returns the settings before
   * and after.
   */
  setSlotTtl(
    seconds: number | undefined,
  ): Promise<{ before: StoredSettings; after: StoredSettings }>;
  /** Reclaims every stale slot (see `staleHolders`) in one guarded write; returns those reclaimed. */
  reclaimStale(): Promise<readonly HolderState[]>;
  /** Calls `handlers.onView` now and after every change, until `signal` aborts. */
  watch(handlers: WatchHandlers, signal: AbortSignal): Promise<void>;
  /** Every semaphore of the fleet: the default one and every group's. */
  groups(): Promise<GroupSummary[]>;
  /** The reboot history of this semaphore, or of every group's with `allGroups`. */
  history(allGroups: boolean): Promise<GroupHistory[]>;
  /** Releases the connection. */
  close(): Promise<void>;
}
