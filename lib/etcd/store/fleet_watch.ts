/**
 * Every semaphore of the fleet, followed live with one etcd watch: one
 * range read of the semaphores' prefix, then one watch of that prefix
 * from the revision read (kept on two members when there are several, as
 * every watch of locksmith). The key-values are kept in memory; after
 * each batch of events the owner gets the whole fleet again. A lost watch
 * (every member failed, or compacted) reads again, with backoff. However
 * many owners' viewers there are, etcd serves this one read and watch.
 *
 * @module
 */

import { oneLine } from "../../common/errors.ts";
import { SEMAPHORES_PREFIX } from "../../semaphore/keys.ts";
import { HedgedWatch } from "../client/hedged_watch.ts";
import {
  bytes,
  type EtcdPort,
  type KeyValue,
  prefixEnd,
  textOf,
  type WatchEvent,
} from "../client/port.ts";
import { fleetFrom, type FleetGroupState } from "./fleet_state.ts";

/** The fleet at one revision, as a {@link FleetWatch} reports it. */
export interface FleetUpdate {
  /** The revision seen. */
  readonly revision: number;
  /** The keys written since the last update (empty after a read). */
  readonly puts: readonly KeyValue[];
  /** Whether this follows a (re-)read: the history is all new to the owner. */
  readonly read: boolean;
  /** Every semaphore as now known (at `revision` or later), computed when asked: cheap to skip. */
  fleet(): FleetGroupState[];
}

/** What a {@link FleetWatch} reports. */
export interface FleetWatchHandlers {
  /** The fleet after a read, or after a batch of watch events. */
  onFleet(update: FleetUpdate): void;
  /** The read or the watch failed; it is retried. One line. */
  onTrouble(message: string): void;
}

/** Options of {@link FleetWatch}. */
export interface FleetWatchOptions {
  /** Deadline of the read, in ms. */
  readonly timeoutMs: number;
  /** First delay after a failure (default 1 s), doubling to 30 s. */
  readonly retryMs?: number;
}

/** The fleet followed live; see the module documentation. */
export class FleetWatch {
  readonly #port: EtcdPort;
  readonly #handlers: FleetWatchHandlers;
  readonly #options: FleetWatchOptions;
  readonly #kvs = new Map<string, KeyValue>();
  #watch: HedgedWatch | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failures = 0;
  #revision = 0;
  #closed = false;

  /**
   * Starts reading and watching at once.
   *
   * @param port the etcd port (not closed by {@link FleetWatch.close})
   * @param handlers where the fleet and trouble go
   * @param options the read's deadline, the retry delay
   */
  constructor(
    port: EtcdPort,
    handlers: FleetWatchHandlers,
    options: FleetWatchOptions,
  ) {
    this.#port = port;
    this.#handlers = handlers;
    this.#options = options;
    void this.#read();
  }

  async #read(): Promise<void> {
    if (this.#closed) return;
    const prefix = bytes(SEMAPHORES_PREFIX);
    let revision: number;
    try {
      const res = await this.#port.range(
        { key: prefix, rangeEnd: prefixEnd(prefix) },
        { deadline: Date.now() + this.#options.timeoutMs },
      );
      if (this.#closed) return;
      this.#kvs.clear();
      for (const kv of res.kvs) this.#kvs.set(nameOf(kv), kv);
      revision = res.revision;
    } catch (error) {
      return this.#retry(`cannot read the fleet: ${oneLine(error)}`);
    }
    this.#failures = 0;
    this.#revision = revision;
    this.#report(revision, [], true);
    this.#watch = new HedgedWatch(this.#port, [{
      key: prefix,
      rangeEnd: prefixEnd(prefix),
      startRevision: revision + 1,
    }], {
      onEvents: (_index, events) => this.#apply(events),
      onLost: (reason) => {
        this.#watch = undefined;
        this.#retry(`the fleet's watch was lost: ${reason}`);
      },
    });
  }

  #apply(events: readonly WatchEvent[]): void {
    if (this.#closed) return;
    const puts: KeyValue[] = [];
    let revision = this.#revision;
    for (const event of events) {
      const name = nameOf(event.kv);
      revision = Math.max(revision, event.kv.modRevision);
      if (event.type === "DELETE") this.#kvs.delete(name);
      else {
        this.#kvs.set(name, event.kv);
        puts.push(event.kv);
      }
    }
    this.#revision = revision;
    this.#report(revision, puts, false);
  }

  #report(revision: number, puts: KeyValue[], read: boolean): void {
    this.#handlers.onFleet({
      revision,
      puts,
      read,
      // The newest state when asked: later events only make it fresher.
      fleet: () => fleetFrom(this.#kvs.values(), this.#revision),
    });
  }

  #retry(message: string): void {
    if (this.#closed) return;
    this.#handlers.onTrouble(message);
    const delay = Math.min(
      30_000,
      (this.#options.retryMs ?? 1_000) * 2 ** this.#failures++,
    );
    this.#timer = setTimeout(() => void this.#read(), delay);
  }

  /** Stops watching. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watch?.cancel();
    this.#watch = undefined;
  }
}

/** A key as a map key: its text, or its bytes in hex when not UTF-8. */
function nameOf(kv: KeyValue): string {
  return textOf(kv.key) ??
    `\0${[...kv.key].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}
