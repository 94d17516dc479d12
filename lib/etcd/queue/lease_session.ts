/**
 * One etcd lease per process, granted when first needed and kept alive
 * while the process runs: the wait-queue entry of a waiting machine is
 * attached to it, so that an entry never outlives its daemon by more than
 * the TTL. A clean stop revokes it, which deletes the entry at once.
 *
 * The default TTL is 5 minutes with a renewal every 100 s, so a waiting
 * machine costs etcd 0.01 requests per second for its lease.
 *
 * @module
 */

import { oneLine } from "../../common/errors.ts";
import type { EtcdPort } from "../client/port.ts";

/** TTL of the queue lease, in seconds. */
export const DEFAULT_LEASE_TTL_SECONDS = 300;

/** Tuning of a {@link LeaseSession}. */
export interface LeaseSessionOptions {
  /** The lease's TTL in seconds (default {@link DEFAULT_LEASE_TTL_SECONDS}). */
  readonly ttlSeconds?: number;
  /** Renew every this long, in ms (default a third of the TTL). */
  readonly keepAliveMs?: number;
  /** Deadline of each request, in ms. */
  readonly timeoutMs: number;
  /** Where renewal failures are reported, one line each. */
  readonly log?: (line: string) => void;
}

/** The process's lease; see the module documentation. */
export class LeaseSession {
  readonly #port: EtcdPort;
  readonly #ttl: number;
  readonly #keepAliveMs: number;
  readonly #timeoutMs: number;
  readonly #log: (line: string) => void;
  #id: Promise<string> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  readonly #onExpired = new Set<() => void>();

  /**
   * Creates a session; nothing is sent before {@link LeaseSession.id}.
   *
   * @param port the etcd port
   * @param options TTL, renewal interval, deadline, log
   */
  constructor(port: EtcdPort, options: LeaseSessionOptions) {
    this.#port = port;
    this.#ttl = options.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    this.#keepAliveMs = options.keepAliveMs ?? (this.#ttl * 1_000) / 3;
    this.#timeoutMs = options.timeoutMs;
    this.#log = options.log ?? (() => {});
  }

  /** The lease's TTL in seconds. */
  get ttlSeconds(): number {
    return this.#ttl;
  }

  /** The lease id, granting the lease on first use (and again after it expired). */
  id(): Promise<string> {
    if (this.#closed) return Promise.reject(new Error("lease session closed"));
    this.#id ??= this.#port.leaseGrant(this.#ttl, {
      deadline: Date.now() + this.#timeoutMs,
    }).then(({ id }) => {
      this.#schedule(this.#keepAliveMs);
      return id;
    }).catch((error) => {
      this.#id = undefined;
      throw error;
    });
    return this.#id;
  }

  /** Calls `listener` whenever the lease turns out to have expired (its keys are gone). */
  onExpired(listener: () => void): () => void {
    this.#onExpired.add(listener);
    return () => this.#onExpired.delete(listener);
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#renew(), ms);
    Deno.unrefTimer(this.#timer);
  }

  async #renew(): Promise<void> {
    const pending = this.#id;
    if (pending === undefined || this.#closed) return;
    let id: string;
    try {
      id = await pending;
    } catch {
      return;
    }
    try {
      const ttl = await this.#port.leaseKeepAlive(id, {
        deadline: Date.now() + this.#timeoutMs,
      });
      if (this.#closed) return;
      if (ttl <= 0) {
        this.#log(`the queue lease ${id} expired: its entry is gone`);
        this.#id = undefined;
        for (const listener of this.#onExpired) listener();
        return;
      }
      this.#schedule(this.#keepAliveMs);
    } catch (error) {
      if (this.#closed) return;
      this.#log(`cannot renew the queue lease ${id}: ${oneLine(error)}`);
      // Retry sooner, while the lease may still be alive.
      this.#schedule(Math.min(this.#keepAliveMs, 10_000));
    }
  }

  /**
   * Stops renewing and revokes the lease, deleting its keys; with
   * `revoke: false` (the lease holds no key any more) it only stops
   * renewing: the lease expires by itself, and no request is sent.
   */
  async close(revoke = true): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const pending = this.#id;
    this.#id = undefined;
    if (pending === undefined) return;
    const id = await pending.catch(() => undefined);
    if (id === undefined || !revoke) return;
    await this.#port.leaseRevoke(id, {
      deadline: Date.now() + this.#timeoutMs,
    });
  }
}
