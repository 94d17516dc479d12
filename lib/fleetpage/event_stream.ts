/**
 * One viewer's server-sent-events stream: `access` (what the viewer's
 * token may do) first, then `fleet` with the page's data at once and after
 * every change, and a comment every 15 s so that the page notices a dead
 * connection. A viewer that reads slowly holds at most the data not yet
 * read and the newest: older data is dropped, never queued.
 *
 * @module
 */

import type { FleetFeed } from "./feed.ts";

/** Time between keep-alive comments, in ms. */
export const PING_MS = 15_000;

/** The `text/event-stream` response of one viewer of `feed`. */
export function eventStream(feed: FleetFeed, access: unknown): Response {
  const encoder = new TextEncoder();
  let cleanup = () => {};
  let pullWaiting = () => {};
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      let waiting: string | undefined;
      let open = true;
      const push = (text: string) => {
        if (!open) return;
        if ((controller.desiredSize ?? 1) <= 0) {
          waiting = text; // the viewer reads slowly: keep the newest only
          return;
        }
        controller.enqueue(encoder.encode(text));
      };
      const ping = setInterval(() => push(": ping\n\n"), PING_MS);
      const unsubscribe = feed.subscribe({
        send: (data) => push(`event: fleet\ndata: ${data}\n\n`),
        close: () => {
          cleanup();
          try {
            controller.close();
          } catch { /* already closed */ }
        },
      });
      // A viewer that goes away cancels the stream (`cancel` below).
      cleanup = () => {
        open = false;
        clearInterval(ping);
        unsubscribe();
      };
      controller.enqueue(encoder.encode(
        `retry: 1000\nevent: access\ndata: ${JSON.stringify(access)}\n\n`,
      ));
      // Data that did not fit is sent when the viewer asks for more.
      pullWaiting = () => {
        if (waiting === undefined || !open) return;
        controller.enqueue(encoder.encode(waiting));
        waiting = undefined;
      };
    },
    pull() {
      pullWaiting();
    },
    cancel() {
      cleanup();
    },
  });
  return new Response(stream, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
      "x-content-type-options": "nosniff",
    },
  });
}
