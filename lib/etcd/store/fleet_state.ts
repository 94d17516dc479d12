/**
 * The state of every semaphore of the fleet from the key-values under the
 * semaphores' prefix (as one range read and a watch keep them): for each
 * semaphore its view (as `readSemaphoreView` would read it) and its
 * history. Pure: no request is made.
 *
 * @module
 */

import { oneLine } from "../../common/errors.ts";
import {
  alivePrefix,
  DEFAULT_SEMAPHORE_KEY,
  groupOfKey,
  holdersPrefix,
  pausedKey,
  semaphoreKeyOf,
  settingsKey,
  waitersPrefix,
} from "../../semaphore/keys.ts";
import { type GroupHistory, historyPrefix } from "../../semaphore/history.ts";
import type { SemaphoreView } from "../../semaphore/semaphore_view.ts";
import { type KeyValue, textOf, type TxnOpResult } from "../client/port.ts";
import { viewFrom } from "./etcd_semaphore_view.ts";
import { groupHistoryFrom } from "./history_read.ts";

/** One semaphore of the fleet. */
export interface FleetGroupState {
  /** The group (`""`: the default semaphore). */
  readonly group: string;
  /** The semaphore key. */
  readonly key: string;
  /** Its state, or why it cannot be shown (a corrupt document). */
  readonly view: SemaphoreView | { readonly error: string };
  /** Its history. */
  readonly history: GroupHistory;
}

function rangeResult(kvs: KeyValue[], revision: number): TxnOpResult {
  return { range: { kvs, count: kvs.length, revision } };
}

/**
 * The semaphores among `kvs` (key-values under the semaphores' prefix at
 * `revision`), sorted by group; the default semaphore always.
 */
export function fleetFrom(
  kvs: Iterable<KeyValue>,
  revision: number,
): FleetGroupState[] {
  const byKey = new Map<string, Map<string, KeyValue>>();
  byKey.set(DEFAULT_SEMAPHORE_KEY, new Map());
  for (const kv of kvs) {
    const name = textOf(kv.key);
    const key = name === undefined ? undefined : semaphoreKeyOf(name);
    if (key === undefined || groupOfKey(key) === undefined) continue;
    let own = byKey.get(key);
    if (own === undefined) byKey.set(key, own = new Map());
    own.set(name as string, kv);
  }
  const out: FleetGroupState[] = [];
  for (const [key, own] of byKey) {
    const under = (prefix: string) =>
      [...own].filter(([name]) => name.startsWith(prefix)).map(([, kv]) => kv);
    const doc = own.get(key);
    const one = (name: string) => {
      const kv = own.get(name);
      return kv === undefined ? [] : [kv];
    };
    let view: FleetGroupState["view"];
    try {
      view = viewFrom(key, [
        rangeResult(doc === undefined ? [] : [doc], revision),
        rangeResult(under(holdersPrefix(key)), revision),
        rangeResult(under(alivePrefix(key)), revision),
        rangeResult(one(pausedKey(key)), revision),
        rangeResult(one(settingsKey(key)), revision),
        rangeResult(
          under(waitersPrefix(key)).sort((a, b) =>
            a.createRevision - b.createRevision
          ),
          revision,
        ),
      ], revision);
    } catch (error) {
      view = { error: oneLine(error) };
    }
    out.push({
      group: groupOfKey(key) as string,
      key,
      view,
      history: groupHistoryFrom(key, doc, under(historyPrefix(key))),
    });
  }
  return out.sort((a, b) => a.group < b.group ? -1 : a.group > b.group ? 1 : 0);
}
