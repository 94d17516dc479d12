/**
 * The fleet page's hub: the server's one view of the fleet, sent to every
 * connected viewer; while nobody looks, nothing is built. Changes that come close together are sent as one
 * (after {@link FleetFeedOptions.coalesceMs}, well within a second), the
 * same text to every viewer, so a viewer costs etcd nothing: only the
 * server's one read and watch do.
 *
 * @module
 */

import type { FleetGroupState } from "../etcd/store/fleet_state.ts";
import { pageSnapshot } from "./snapshot.ts";

/** One connected viewer. */
export interface FleetViewer {
  /** Sends the page's data (JSON text). */
  send(data: string): void;
  /** Ends the viewer's stream (the server stops). */
  close(): void;
}

/** Options of {@link FleetFeed}. */
export interface FleetFeedOptions {
  /** Wait this long after a change for more before sending (default 50 ms). */
  readonly coalesceMs?: number;
  /** The server's clock (default `new Date()`). */
  readonly clock?: () => Date;
}

/** See the module documentation. */
export class FleetFeed {
  readonly #viewers = new Set<FleetViewer>();
  readonly #coalesceMs: number;
  readonly #clock: () => Date;
  #fleet: (() => readonly FleetGroupState[]) | undefined;
  #revision = 0;
  #trouble: string | undefined;
  #latest: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #sent = 0;

  /** Creates an empty feed: viewers get the fleet once it has been read. */
  constructor(options: FleetFeedOptions = {}) {
    this.#coalesceMs = options.coalesceMs ?? 50;
    this.#clock = options.clock ?? (() => new Date());
  }

  /** Viewers connected now. */
  get viewers(): number {
    return this.#viewers.size;
  }

  /** Messages sent to viewers so far (for the benchmark). */
  get sent(): number {
    return this.#sent;
  }

  /**
   * The fleet as now known (after a read or a batch of watch events);
   * `fleet` is called only when the data is sent.
   */
  update(fleet: () => readonly FleetGroupState[], revision: number): void {
    this.#fleet = fleet;
    this.#revision = Math.max(this.#revision, revision);
    this.#trouble = undefined;
    this.#schedule();
  }

  /** etcd trouble: shown on the page with the last known fleet until the next update. */
  trouble(message: string): void {
    this.#trouble = message;
    if (this.#fleet !== undefined) this.#schedule();
  }

  #schedule(): void {
    this.#latest = undefined; // stale: built again when someone looks
    if (this.#timer !== undefined || this.#viewers.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const latest = this.#build();
      if (latest === undefined) return;
      for (const viewer of this.#viewers) this.#send(viewer, latest);
    }, this.#coalesceMs);
  }

  /** The data to send, built once per change (never while nobody looks). */
  #build(): string | undefined {
    if (this.#latest !== undefined || this.#fleet === undefined) {
      return this.#latest;
    }
    this.#latest = JSON.stringify(
      pageSnapshot(
        this.#fleet(),
        this.#clock(),
        this.#revision,
        this.#trouble,
      ),
    );
    return this.#latest;
  }

  #send(viewer: FleetViewer, data: string): void {
    this.#sent++;
    viewer.send(data);
  }

  /** Adds a viewer, who gets the latest data at once; returns its removal. */
  subscribe(viewer: FleetViewer): () => void {
    this.#viewers.add(viewer);
    const latest = this.#build();
    if (latest !== undefined) this.#send(viewer, latest);
    return () => this.#viewers.delete(viewer);
  }

  /** Ends every viewer's stream and sends nothing more. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#fleet = undefined;
    for (const viewer of [...this.#viewers]) viewer.close();
    this.#viewers.clear();
  }
}
