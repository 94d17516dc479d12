/** Checks the semaphore's invariants over every revision of its key. */

import {
  parseSemaphore,
  type Semaphore,
} from "../../lib/semaphore/document.ts";
import type { KeyVersion } from "./history.ts";

/** A successful operation as a client saw it. */
export interface SeenOperation {
  /** What succeeded. */
  readonly op: "lock" | "unlock";
  /** The holder id. */
  readonly id: string;
}

/** What {@link checkHistory} found. */
export interface HistoryReport {
  /** Versions checked. */
  readonly versions: number;
  /** Every broken promise, one line each (must be empty). */
  readonly violations: string[];
  /** The largest number of holders at any revision. */
  readonly maxHolders: number;
  /** Lock and unlock transitions per id found in the history. */
  readonly transitions: Map<string, { lock: number; unlock: number }>;
}

/**
 * Checks at every revision: the document parses (holders unique and sorted,
 * `semaphore == max - holders.length`) and `holders.length <= max` unless a
 * set-max lowered `max` below the holders (then no holder may be added until
 * they drop below it). Between consecutive versions with the same `max`,
 * exactly one holder is added or removed. When `seen` is given, the lock and
 * unlock transitions per id must match what the clients saw succeed: every
 * success is in the history and every failure left no trace.
 *
 * `uncertain` lists operations whose outcome the client could not know (etcd
 * timed out or failed after the request may have been sent, so the write may
 * or may not have committed). Each may be present or absent: per id and per
 * operation, the history count must lie between the successes seen and the
 * successes plus the uncertain ones. Successes must all be present and
 * refusals (not listed in either) must all be absent.
 */
export function checkHistory(
  key: string,
  history: readonly KeyVersion[],
  seen?: readonly SeenOperation[],
  uncertain: readonly SeenOperation[] = [],
): HistoryReport {
  const violations: string[] = [];
  const transitions = new Map<string, { lock: number; unlock: number }>();
  const count = (id: string) => {
    let c = transitions.get(id);
    if (!c) transitions.set(id, c = { lock: 0, unlock: 0 });
    return c;
  };
  let previous: Semaphore | undefined;
  let maxHolders = 0;
  for (const version of history) {
    if (version.value === undefined) {
      previous = undefined;
      continue;
    }
    let doc: Semaphore;
    try {
      doc = parseSemaphore(version.value, key);
    } catch (error) {
      violations.push(`rev ${version.revision}: ${(error as Error).message}`);
      previous = undefined;
      continue;
    }
    maxHolders = Math.max(maxHolders, doc.holders.length);
    if (previous && previous.max === doc.max) {
      const added = doc.holders.filter((h) => !previous!.holders.includes(h));
      const removed = previous.holders.filter((h) => !doc.holders.includes(h));
      if (added.length + removed.length !== 1) {
        violations.push(
          `rev ${version.revision}: ${added.length} added and ${removed.length} removed in one write`,
        );
      }
      for (const id of added) count(id).lock++;
      for (const id of removed) count(id).unlock++;
      if (added.length > 0 && doc.holders.length > doc.max) {
        violations.push(
          `rev ${version.revision}: ${doc.holders.length} holders exceed max ${doc.max}`,
        );
      }
    } else if (!previous) {
      for (const id of doc.holders) count(id).lock++;
      if (doc.holders.length > doc.max) {
        violations.push(
          `rev ${version.revision}: ${doc.holders.length} holders exceed max ${doc.max}`,
        );
      }
    }
    previous = doc;
  }
  if (seen) {
    const tally = (ops: readonly SeenOperation[]) => {
      const counts = new Map<string, { lock: number; unlock: number }>();
      for (const { op, id } of ops) {
        let c = counts.get(id);
        if (!c) counts.set(id, c = { lock: 0, unlock: 0 });
        c[op]++;
      }
      return counts;
    };
    const expected = tally(seen);
    const maybe = tally(uncertain);
    const none = { lock: 0, unlock: 0 };
    const ids = new Set([
      ...expected.keys(),
      ...maybe.keys(),
      ...transitions.keys(),
    ]);
    for (const id of ids) {
      const e = expected.get(id) ?? none;
      const u = maybe.get(id) ?? none;
      const h = transitions.get(id) ?? none;
      const fits = (op: "lock" | "unlock") =>
        e[op] <= h[op] && h[op] <= e[op] + u[op];
      if (!fits("lock") || !fits("unlock")) {
        violations.push(
          u.lock + u.unlock === 0
            ? `${id}: clients saw ${e.lock} lock(s) and ${e.unlock} unlock(s) succeed, history has ${h.lock} and ${h.unlock}`
            : `${id}: clients saw ${e.lock} lock(s) and ${e.unlock} unlock(s) succeed and ${u.lock} and ${u.unlock} with unknown outcome, history has ${h.lock} and ${h.unlock}`,
        );
      }
    }
  }
  return { versions: history.length, violations, maxHolders, transitions };
}
