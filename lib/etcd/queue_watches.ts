/**
 * The watches of one waiter in the wait queue, kept apart: the document's
 * range (for the head and the second) and the entries ahead (for the second,
 * the head's entry; for the others, the two just ahead), each its own
 * {@link HedgedWatch}. So a waiter that moves up from third to second keeps
 * the watch on the entry that is now the head's and only adds the
 * document's: one watch create fewer per waiter than opening both again.
 *
 * @module
 */

import { HedgedWatch } from "./hedged_watch.ts";
import type { EtcdPort, WatchEvent } from "./port.ts";
import type { Placement } from "./queue_place.ts";

/** What {@link QueueWatches} reports. */
export interface QueueWatchHandlers {
  /** Events of the document's range (the document, its companion keys). */
  onDocEvents(events: readonly WatchEvent[]): void;
  /** Events of the watched entries ahead (each event's key says whose). */
  onEntryEvents(events: readonly WatchEvent[]): void;
  /** A watch was lost (every member failed, or compaction): read again. */
  onLost(reason: string): void;
}

/** What a waiter in a place watches: the document's range or not, and which entries ahead (by their create revision). */
function watchNeeds(
  placement: Placement,
): {
  doc: boolean;
  entries: readonly { key: Uint8Array; createRevision: number }[];
} {
  switch (placement.place) {
    case "head":
      return { doc: true, entries: [] };
    case "second":
      return { doc: true, entries: [placement.head] };
    case "behind":
      return { doc: false, entries: placement.ahead };
    default:
      return { doc: false, entries: [] };
  }
}

/** The document's watch and the entries' watch of one waiter; see the module documentation. */
export class QueueWatches {
  readonly #port: EtcdPort;
  readonly #docRange: { key: Uint8Array; rangeEnd: Uint8Array };
  readonly #handlers: QueueWatchHandlers;
  #doc: HedgedWatch | undefined;
  #entries:
    | {
      watch: HedgedWatch;
      covers: ReadonlySet<number>;
      /** The revision of the last event it delivered. */
      seen: number;
    }
    | undefined;

  /**
   * Creates the pair; nothing is watched before {@link QueueWatches.ensure}.
   *
   * @param port the etcd port
   * @param docRange the document's range `[doc, waiters prefix)`
   * @param handlers where events and losses go
   */
  constructor(
    port: EtcdPort,
    docRange: { key: Uint8Array; rangeEnd: Uint8Array },
    handlers: QueueWatchHandlers,
  ) {
    this.#port = port;
    this.#docRange = docRange;
    this.#handlers = handlers;
  }

  /**
   * Sets up what `placement` needs, new watches starting right after
   * `revision` (the read that placed the waiter). A running document watch
   * is kept unless `docMoved` (the read showed a document it had not
   * delivered); a running entries watch is kept when it covers every entry
   * needed now and has delivered nothing after `revision` (an event after
   * the read was handled for the place before, so a new watch from the read
   * on delivers it again for this one). What is not needed any more is
   * cancelled.
   */
  ensure(placement: Placement, revision: number, docMoved: boolean): void {
    const needs = watchNeeds(placement);
    if (!needs.doc || !this.#doc?.live || docMoved) {
      this.#doc?.cancel();
      this.#doc = needs.doc
        ? this.#open(
          [this.#docRange],
          revision,
          (events) => this.#handlers.onDocEvents(events),
          (lost) => this.#doc === lost && (this.#doc = undefined),
        )
        : undefined;
    }
    const running = this.#entries;
    const covered = running?.watch.live && running.seen <= revision &&
      needs.entries.every((e) => running.covers.has(e.createRevision));
    if (needs.entries.length === 0 || !covered) {
      running?.watch.cancel();
      this.#entries = undefined;
      if (needs.entries.length > 0) {
        const covers = new Set(needs.entries.map((e) => e.createRevision));
        const watch: HedgedWatch = this.#open(
          needs.entries.map((e) => ({ key: e.key })),
          revision,
          (events) => {
            const entries = this.#entries;
            if (entries?.watch === watch) {
              for (const e of events) {
                entries.seen = Math.max(entries.seen, e.kv.modRevision);
              }
            }
            this.#handlers.onEntryEvents(events);
          },
          (lost) =>
            this.#entries?.watch === lost && (this.#entries = undefined),
        );
        this.#entries = { watch, covers, seen: revision };
      }
    }
  }

  /** Stops watching the entries ahead (the head needs only the document). */
  dropEntries(): void {
    this.#entries?.watch.cancel();
    this.#entries = undefined;
  }

  /** Stops both watches. */
  cancel(): void {
    this.#doc?.cancel();
    this.#doc = undefined;
    this.dropEntries();
  }

  #open(
    requests: readonly { key: Uint8Array; rangeEnd?: Uint8Array }[],
    revision: number,
    onEvents: (events: readonly WatchEvent[]) => void,
    forget: (lost: HedgedWatch) => void,
  ): HedgedWatch {
    const watch: HedgedWatch = new HedgedWatch(
      this.#port,
      requests.map((r) => ({ ...r, startRevision: revision + 1 })),
      {
        onEvents: (_index, events) => onEvents(events),
        onLost: (reason) => {
          forget(watch);
          this.#handlers.onLost(reason);
        },
      },
    );
    return watch;
  }
}
