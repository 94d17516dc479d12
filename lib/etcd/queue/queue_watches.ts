/**
 * The watches of one waiter in the wait queue: the waiters at the front
 * (the first `FRONT` (4)) watch the document's whole range, its companion
 * keys and the queue included, with one watcher (a take, which writes the
 * document and deletes the taker's entry in one revision, is one message);
 * every other waiter watches only the `FRONT` (4) owned entries just
 * ahead of it. Each is its own {@link HedgedWatch}.
 *
 * @module
 */

import { HedgedWatch } from "../client/hedged_watch.ts";
import type { EtcdPort, WatchEvent } from "../client/port.ts";
import type { Placement } from "./queue_place.ts";

/** What {@link QueueWatches} reports. */
export interface QueueWatchHandlers {
  /** Events of the document's range (the document, its companion keys, the queue). */
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
  if (placement.place === "out" || placement.place === "junk") {
    return { doc: false, entries: [] };
  }
  return placement.front
    ? { doc: true, entries: [] }
    : { doc: false, entries: placement.ahead };
}

/** The document's watch and the entries' watch of one waiter; see the module documentation. */
export class QueueWatches {
  readonly #port: EtcdPort;
  readonly #docRange: { key: Uint8Array; rangeEnd: Uint8Array };
  readonly #handlers: QueueWatchHandlers;
  #doc: { watch: HedgedWatch; seen: number } | undefined;
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
   * delivered) or it delivered something after `revision` (the read is
   * older than what the waiter knows from it: a watch from the read on
   * delivers it again for the new place); a running entries watch is kept when it covers every entry
   * needed now and has delivered nothing after `revision` (an event after
   * the read was handled for the place before, so a new watch from the read
   * on delivers it again for this one). What is not needed any more is
   * cancelled.
   */
  ensure(placement: Placement, revision: number, docMoved: boolean): void {
    const needs = watchNeeds(placement);
    const doc = this.#doc;
    if (
      !needs.doc || !doc?.watch.live || docMoved || doc.seen > revision
    ) {
      doc?.watch.cancel();
      this.#doc = undefined;
      if (needs.doc) {
        const watch: HedgedWatch = this.#open(
          [this.#docRange],
          revision,
          (events) => {
            const current = this.#doc;
            if (current?.watch === watch) {
              for (const e of events) {
                current.seen = Math.max(current.seen, e.kv.modRevision);
              }
            }
            this.#handlers.onDocEvents(events);
          },
          (lost) => this.#doc?.watch === lost && (this.#doc = undefined),
        );
        this.#doc = { watch, seen: revision };
      }
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
    this.#doc?.watch.cancel();
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
