/**
 * The reboots that new history entries report, for the server's metrics:
 * each machine back after its boot with its time away, and each slot
 * reclaimed. The time a slot was taken comes from the ending event when
 * it says (locksmithd's do), else from the `taken` events seen before,
 * kept in a {@link TakenIndex}, so each event costs O(1) however long the
 * history. Pure (the index is passed in).
 *
 * @module
 */

import {
  type HistoryEvent,
  historyPrefix,
  parseHistoryEntry,
} from "../semaphore/history.ts";
import { groupOfKey, semaphoreKeyOf } from "../semaphore/keys.ts";
import { type KeyValue, textOf } from "../etcd/client/port.ts";

/** One reboot that ended, as the metrics count it. */
export interface RebootFigure {
  /** The group (`""`: the default semaphore). */
  readonly group: string;
  /** `back` (released after its boot) or `reclaimed`. */
  readonly outcome: "back" | "reclaimed";
  /** Time away in seconds, when known. */
  readonly awaySeconds?: number | undefined;
}

/** When each open slot was taken, by group and id (epoch ms). */
export type TakenIndex = Map<string, number>;

/** Records `events` of `group` in `taken` and returns the reboots they end. */
export function figuresOf(
  group: string,
  events: readonly HistoryEvent[],
  taken: TakenIndex,
): RebootFigure[] {
  const out: RebootFigure[] = [];
  for (const event of events) {
    const slot = `${group}\0${event.id}`;
    const at = Date.parse(event.at);
    if (event.kind === "taken") {
      taken.set(slot, at);
      continue;
    }
    const since = event.since === undefined
      ? taken.get(slot)
      : Date.parse(event.since);
    taken.delete(slot);
    if (event.kind !== "released" && event.kind !== "reclaimed") continue;
    out.push({
      group,
      outcome: event.kind === "released" ? "back" : "reclaimed",
      awaySeconds: since === undefined
        ? undefined
        : Math.max(0, at - since) / 1_000,
    });
  }
  return out;
}

/**
 * The reboots that the history entries among `puts` (keys written by one
 * batch of watch events, in revision order) end; other keys are ignored,
 * and so is an entry that does not parse.
 */
export function rebootFigures(
  puts: readonly KeyValue[],
  taken: TakenIndex,
): RebootFigure[] {
  const out: RebootFigure[] = [];
  for (const kv of puts) {
    const name = textOf(kv.key);
    const key = name === undefined ? undefined : semaphoreKeyOf(name);
    const group = key === undefined ? undefined : groupOfKey(key);
    if (group === undefined || !name!.startsWith(historyPrefix(key!))) {
      continue;
    }
    const text = textOf(kv.value);
    const events = text === undefined ? undefined : parseHistoryEntry(text);
    if (events !== undefined) out.push(...figuresOf(group, events, taken));
  }
  return out;
}
