/**
 * A watch kept on two members at once (when there are two or more
 * endpoints), so that a member that freezes, is cut off, or restarts never
 * leaves a waiter deaf: the other copy still delivers every event. Events
 * are delivered once, in revision order, whichever copy brings them first.
 * A copy that ends is restarted on another member from the last revision
 * delivered; when no copy is left, the owner is told the watch is lost (and
 * re-reads). A start revision that was compacted away is reported as such:
 * events were lost, re-read.
 *
 * @module
 */

import { backoffDelay } from "../../common/backoff.ts";
import type {
  EtcdPort,
  WatchEnd,
  WatchEvent,
  WatchRequest,
  WatchStream,
} from "./port.ts";

/** What a {@link HedgedWatch} reports. */
export interface HedgedWatchHandlers {
  /** New events of watch number `index` (in revision order, each event once). */
  onEvents(index: number, events: readonly WatchEvent[]): void;
  /** No copy is left (every member failed), or events were compacted away: re-read and watch again. */
  onLost(reason: string): void;
}

/** Tuning of a {@link HedgedWatch}. */
export interface HedgedWatchOptions {
  /** Copies to keep on distinct members (default 2, at most the number of endpoints). */
  readonly copies?: number;
  /** Restart a failed copy after this long while another copy runs (default 1 s, doubling to 30 s). */
  readonly restartMs?: number;
}

interface Copy {
  stream: WatchStream;
  created: boolean;
  failures: number;
}

/** A watch on up to two members; see the module documentation. */
export class HedgedWatch {
  readonly #port: EtcdPort;
  readonly #requests: readonly WatchRequest[];
  readonly #handlers: HedgedWatchHandlers;
  readonly #delivered: number[];
  readonly #copies = new Set<Copy>();
  readonly #restartMs: number;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #ended = false;

  /**
   * Opens the copies.
   *
   * @param port the etcd port
   * @param requests the watches, each with its start revision
   * @param handlers where events and the loss go
   * @param options copies and restart delay
   */
  constructor(
    port: EtcdPort,
    requests: readonly WatchRequest[],
    handlers: HedgedWatchHandlers,
    options: HedgedWatchOptions = {},
  ) {
    this.#port = port;
    this.#requests = requests;
    this.#handlers = handlers;
    this.#restartMs = options.restartMs ?? 1_000;
    this.#delivered = requests.map((r) => (r.startRevision ?? 1) - 1);
    const endpoints = this.#port.endpointOrder();
    const copies = Math.min(options.copies ?? 2, endpoints.length);
    for (let i = 0; i < copies; i++) this.#open(endpoints[i], 0);
  }

  /** Whether at least one copy is set up and running. */
  get live(): boolean {
    return [...this.#copies].some((c) => c.created);
  }

  #open(endpoint: string | undefined, failures: number): void {
    if (this.#ended) return;
    const requests = this.#requests.map((r, i) => ({
      ...r,
      startRevision: this.#delivered[i]! + 1,
    }));
    const copy: Copy = { stream: undefined!, created: false, failures };
    copy.stream = this.#port.watch(requests, {
      onCreated: () => {
        copy.created = true;
        copy.failures = 0;
      },
      onEvents: (index, events) => this.#deliver(index, events),
      onEnd: (end) => this.#ended || this.#lostCopy(copy, end),
    }, endpoint);
    this.#copies.add(copy);
  }

  #deliver(index: number, events: readonly WatchEvent[]): void {
    if (this.#ended) return;
    const last = this.#delivered[index] ?? 0;
    const fresh = events.filter((e) => e.kv.modRevision > last);
    if (fresh.length === 0) return;
    this.#delivered[index] = fresh[fresh.length - 1]!.kv.modRevision;
    this.#handlers.onEvents(index, fresh);
  }

  #lostCopy(copy: Copy, end: WatchEnd): void {
    this.#copies.delete(copy);
    if (end.kind === "compacted") {
      this.#end(
        `the watch's start revision was compacted (oldest kept: ${end.compactRevision})`,
      );
      return;
    }
    const reason = end.kind === "closed"
      ? "closed"
      : `${copy.stream.endpoint}: ${end.reason}`;
    if (this.#copies.size === 0) {
      this.#end(`the watch was lost (${reason})`);
      return;
    }
    // Another copy runs: restart this one elsewhere, after a pause.
    const used = new Set([...this.#copies].map((c) => c.stream.endpoint));
    const next = this.#port.endpointOrder().find((e) => !used.has(e));
    const delay = backoffDelay({
      attempt: copy.failures + 1,
      minMs: this.#restartMs,
      maxMs: 30_000,
    });
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.#open(next, copy.failures + 1);
    }, delay);
    this.#timers.add(timer);
  }

  #end(reason: string): void {
    if (this.#ended) return;
    this.cancel();
    this.#handlers.onLost(reason);
  }

  /** Stops every copy; no handler is called afterwards. */
  cancel(): void {
    this.#ended = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const copy of this.#copies) copy.stream.cancel();
    this.#copies.clear();
  }
}
