/**
 * What the two watch streams (`gateway_watch.ts`, `grpc_watch.ts`) do with a
 * decoded message, whatever the wire: count the watches created (the
 * stream is set up when all are, within the create timeout), hand events to
 * the index of their watch, and end the stream when etcd cancels a watch.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import type { WatchMemberOptions } from "./port_core.ts";
import type { WatchEnd, WatchEvent, WatchRequest } from "./port.ts";

/** The messages of a watch stream that {@link WatchDispatch} handles; `Id` is how the wire spells a watch id. */
export type DispatchedMessage<Id> =
  | {
    readonly kind: "created";
    readonly watchId: Id;
    readonly revision: number;
  }
  | {
    readonly kind: "events";
    readonly watchId: Id;
    readonly events: readonly WatchEvent[];
  }
  | {
    readonly kind: "canceled";
    readonly compactRevision: number;
    readonly reason: string;
  }
  | { readonly kind: "progress" };

/** What a {@link WatchDispatch} needs: the member and the watches of its stream. */
export interface WatchDispatchOptions extends WatchMemberOptions {
  /** The watches of the stream, in order. */
  readonly requests: readonly WatchRequest[];
}

/** The state of one watch stream's messages; see the module documentation. */
export class WatchDispatch<Id> {
  readonly #options: WatchDispatchOptions;
  readonly #end: (end: WatchEnd) => void;
  readonly #ids: Id[] = [];
  readonly #createTimer: ReturnType<typeof setTimeout>;

  /**
   * Starts the create timeout: when it passes first, the member is marked
   * bad and the stream ends as disconnected.
   *
   * @param options member, watches, handlers
   * @param end ends the stream (once)
   */
  constructor(options: WatchDispatchOptions, end: (end: WatchEnd) => void) {
    this.#options = options;
    this.#end = end;
    this.#createTimer = setTimeout(() => {
      options.markBad();
      end({
        kind: "disconnected",
        reason: `${options.endpoint} set up no watch within ${
          formatDuration(options.createTimeoutMs)
        }`,
      });
    }, options.createTimeoutMs);
  }

  /** Stops the create timeout (the stream ends). */
  stop(): void {
    clearTimeout(this.#createTimer);
  }

  /** Handles one message: creation, events, cancellation or progress. */
  dispatch(message: DispatchedMessage<Id>): void {
    const { handlers, requests } = this.#options;
    switch (message.kind) {
      case "created":
        this.#ids.push(message.watchId);
        if (this.#ids.length === requests.length) {
          clearTimeout(this.#createTimer);
          handlers.onCreated?.(message.revision);
        }
        return;
      case "events": {
        const index = this.#ids.indexOf(message.watchId);
        if (index >= 0) handlers.onEvents(index, message.events);
        return;
      }
      case "canceled":
        this.#end(
          message.compactRevision > 0
            ? { kind: "compacted", compactRevision: message.compactRevision }
            : {
              kind: "canceled",
              reason: message.reason || "cancelled by the server",
            },
        );
        return;
      case "progress":
        return;
    }
  }
}
