/**
 * The reboots that new history entries report, for the server's metrics:
 * each machine back after its boot with its time away, and each slot
 * reclaimed. Pure.
 *
 * @module
 */

import type { FleetGroupState } from "../etcd/fleet_state.ts";
import { parseHistoryEntry } from "../semaphore/history.ts";
import { rebootLines } from "../semaphore/reboots.ts";
import { type KeyValue, textOf } from "../etcd/port.ts";
import { semaphoreKeyOf } from "../semaphore/keys.ts";

/** One reboot that ended, as the metrics count it. */
export interface RebootFigure {
  /** The group (`""`: the default semaphore). */
  readonly group: string;
  /** `back` (released after its boot) or `reclaimed`. */
  readonly outcome: "back" | "reclaimed";
  /** Time away in seconds, when known. */
  readonly awaySeconds?: number | undefined;
}

/**
 * The reboots that the history entries among `puts` (keys written by one
 * batch of watch events) ended, with their time away from `fleet` (the
 * state after those events).
 */
export function rebootFigures(
  fleet: readonly FleetGroupState[],
  puts: readonly KeyValue[],
): RebootFigure[] {
  const out: RebootFigure[] = [];
  for (const kv of puts) {
    const name = textOf(kv.key);
    const key = name === undefined ? undefined : semaphoreKeyOf(name);
    const state = fleet.find((s) => s.key === key);
    if (state === undefined || !name?.startsWith(`${key}/history/`)) continue;
    const text = textOf(kv.value);
    const events = text === undefined ? undefined : parseHistoryEntry(text);
    if (events === undefined) continue;
    const lines = rebootLines(state.group, state.history.events);
    for (const event of events) {
      if (event.kind !== "released" && event.kind !== "reclaimed") continue;
      const line = lines.find((l) => l.id === event.id && l.back === event.at);
      out.push({
        group: state.group,
        outcome: event.kind === "released" ? "back" : "reclaimed",
        awaySeconds: line?.awayMs === undefined
          ? undefined
          : line.awayMs / 1_000,
      });
    }
  }
  return out;
}
