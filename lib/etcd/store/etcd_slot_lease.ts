/**
 * The {@link SlotLease} in etcd: this machine's lease on its slot, renewed
 * by a timer (a third of the TTL by default, sooner after a failure), and
 * the reclaim of holders whose lease expired.
 *
 * When a renewal finds the lease expired while the slot is still listed,
 * a new lease is granted and attached in one transaction guarded by the
 * record's revision: it applies only if no waiter reclaimed the slot
 * meanwhile (a reclaim deletes the record), and a reclaim that comes after
 * it finds the alive key again. Either way exactly one of them wins.
 *
 * @module
 */

import type { StoredHolderRecord } from "../../semaphore/slot_queue.ts";
import { oneLine } from "../../common/errors.ts";
import {
  formatHolderRecord,
  type HolderRecord,
  parseHolderRecord,
} from "../../semaphore/holder_record.ts";
import {
  aliveKey,
  holderRecordKey,
  settingsKey,
} from "../../semaphore/keys.ts";
import type { SemaphoreView } from "../../semaphore/semaphore_view.ts";
import {
  type EffectiveSlotTtl,
  effectiveSlotTtl,
  parseSettings,
} from "../../semaphore/settings.ts";
import type {
  LeaseConfirmation,
  ResumeResult,
  SlotLease,
} from "../../semaphore/slot_lease.ts";
import type { EtcdLockStore } from "./etcd_lock_store.ts";
import { bytes, rangeOf, textOf } from "../client/port.ts";
import { readSemaphoreView, reclaimHolders } from "./etcd_semaphore_view.ts";
import { settingsText } from "./stored_document.ts";

/** Options of {@link EtcdSlotLease}. */
export interface EtcdSlotLeaseOptions {
  /** This machine's holder id. */
  readonly id: string;
  /** Renew every this long, in ms (default: a third of the lease's TTL). */
  readonly keepAliveMs?: number;
  /** Where renewal trouble and a lost slot are reported, one line each. */
  readonly log?: (line: string) => void;
  /** Monotonic clock in ms (default `performance.now`), for {@link EtcdSlotLease.covered}. */
  readonly now?: () => number;
}

/**
 * A renewal counts as covering the slot until this long before the lease
 * would expire: 2 s, or a quarter of a (test's) shorter TTL.
 */
function coverMarginMs(ttlSeconds: number): number {
  return Math.min(2_000, (ttlSeconds * 1_000) / 4);
}

/** The etcd {@link SlotLease}; see the module documentation. */
export class EtcdSlotLease implements SlotLease {
  readonly #store: EtcdLockStore;
  readonly #id: string;
  readonly #keepAliveMs: number | undefined;
  readonly #log: (line: string) => void;
  readonly #now: () => number;
  #lease: { id: string; ttl: number } | undefined;
  #attached: { record: HolderRecord; revision: number } | undefined;
  #renewedUntil = 0;
  #lost = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  /**
   * Creates the lease keeper of `store`'s semaphore for one machine;
   * nothing is sent before it is used.
   *
   * @param store the semaphore's store (its port and deadline are used)
   * @param options id, renewal interval, log, clock
   */
  constructor(store: EtcdLockStore, options: EtcdSlotLeaseOptions) {
    this.#store = store;
    this.#id = options.id;
    this.#keepAliveMs = options.keepAliveMs;
    this.#log = options.log ?? (() => {});
    this.#now = options.now ?? (() => performance.now());
  }

  #deadline(): { deadline: number } {
    return { deadline: Date.now() + this.#store.timeoutMs };
  }

  /** The TTL in force; see {@link SlotLease.slotTtl}. */
  slotTtl(defaultSeconds: number): Promise<EffectiveSlotTtl> {
    // The wait queue reads the settings with the queue and the head watches
    // them: a take right after needs no request of its own.
    const seen = this.#store.seenSettings();
    if (seen !== null) {
      return Promise.resolve(
        effectiveSlotTtl(parseSettings(seen), defaultSeconds),
      );
    }
    return this.#store.operation(async (deadline) => {
      const res = await this.#store.port.range({
        key: bytes(settingsKey(this.#store.key)),
      }, { deadline });
      return effectiveSlotTtl(
        parseSettings(settingsText(res.kvs[0])),
        defaultSeconds,
      );
    });
  }

  /** Grants (or reuses) the lease for a take; see {@link SlotLease.prepare}. */
  async prepare(ttlSeconds: number): Promise<string> {
    const lease = this.#lease;
    if (lease !== undefined && this.#attached === undefined) {
      if (lease.ttl === ttlSeconds) return lease.id;
      await this.release();
    }
    const granted = await this.#store.operation((deadline) =>
      this.#store.port.leaseGrant(ttlSeconds, { deadline })
    );
    this.#lease = { id: granted.id, ttl: ttlSeconds };
    this.#attached = undefined;
    this.#lost = false;
    this.#renewedUntil = this.#now() + granted.ttl * 1_000;
    this.#schedule();
    return granted.id;
  }

  /** Remembers the stored record; see {@link SlotLease.attach}. */
  attach(record: HolderRecord, revision: number): void {
    if (record.lease !== undefined && record.lease === this.#lease?.id) {
      this.#attached = { record, revision };
    }
  }

  /** Resumes renewing after a start; see {@link SlotLease.resume}. */
  async resume(stored?: StoredHolderRecord): Promise<ResumeResult> {
    const { record, revision } = stored ?? await this.#readRecord();
    if (record?.lease === undefined) return "untracked";
    this.#lease = { id: record.lease, ttl: record.ttl ?? 0 };
    this.#attached = { record, revision };
    this.#lost = false;
    let ttl: number;
    try {
      ttl = await this.#store.operation((deadline) =>
        this.#store.port.leaseKeepAlive(record.lease!, { deadline })
      );
    } catch (error) {
      this.#schedule(5_000); // keep trying in the background too
      throw error;
    }
    if (ttl > 0) {
      if (this.#lease.ttl === 0) this.#lease = { id: record.lease, ttl };
      this.#renewedUntil = this.#now() + ttl * 1_000;
      this.#schedule();
      return "renewed";
    }
    return await this.#reattach() ? "replaced" : "lost";
  }

  async #readRecord(): Promise<StoredHolderRecord> {
    const key = bytes(holderRecordKey(this.#store.key, this.#id));
    const kv =
      (await this.#store.operation((deadline) =>
        this.#store.port.range({ key }, { deadline })
      )).kvs[0];
    const text = kv && textOf(kv.value);
    return {
      record: text === undefined ? undefined : parseHolderRecord(text),
      revision: kv?.modRevision ?? 0,
    };
  }

  /**
   * Grants a new lease and attaches it to the slot, if the record is still
   * the one this machine stored; returns whether it was.
   */
  async #reattach(): Promise<boolean> {
    const attached = this.#attached;
    const old = this.#lease;
    if (attached === undefined || old === undefined) return false;
    const ttl = old.ttl > 0 ? old.ttl : attached.record.ttl ?? 0;
    if (ttl <= 0) return false;
    const granted = await this.#store.port.leaseGrant(ttl, this.#deadline());
    const record = { ...attached.record, lease: granted.id, ttl };
    const recordKey = bytes(holderRecordKey(this.#store.key, this.#id));
    const res = await this.#store.port.txn({
      compare: [{
        key: recordKey,
        target: "MOD",
        result: "EQUAL",
        value: attached.revision,
      }],
      success: [
        {
          put: {
            key: recordKey,
            value: bytes(formatHolderRecord(record)),
          },
        },
        {
          put: {
            key: bytes(aliveKey(this.#store.key, this.#id)),
            value: bytes(this.#id),
            lease: granted.id,
          },
        },
      ],
      failure: [{ range: { key: recordKey } }],
    }, this.#deadline());
    // A failed guard is a reclaim, unless another copy of this very write
    // (a hedged or re-sent request) committed first: the record then names
    // the lease just granted, and the slot is this machine's.
    const stored = res.succeeded
      ? undefined
      : rangeOf(res.responses[0])?.kvs[0];
    const storedText = stored && textOf(stored.value);
    const ours = res.succeeded ||
      (storedText !== undefined &&
        parseHolderRecord(storedText)?.lease === granted.id);
    if (!ours) {
      await this.#store.port.leaseRevoke(granted.id, this.#deadline())
        .catch(() => {});
      this.#lease = undefined;
      this.#attached = undefined;
      this.#lost = true;
      clearTimeout(this.#timer);
      this.#log(
        `the lease on this machine's slot (${old.id}) expired and the slot was reclaimed by a waiting machine; this machine holds no slot now`,
      );
      return false;
    }
    this.#lease = { id: granted.id, ttl };
    this.#attached = {
      record,
      revision: stored?.modRevision ?? res.revision,
    };
    this.#renewedUntil = this.#now() + granted.ttl * 1_000;
    this.#schedule();
    this.#log(
      `the lease on this machine's slot (${old.id}) had expired before any waiter reclaimed the slot; renewing it with lease ${granted.id}`,
    );
    return true;
  }

  /** Time between renewals: the option, else a third of the TTL (at least 1 s). */
  #interval(ttlSeconds: number): number {
    return this.#keepAliveMs ?? Math.max(1_000, (ttlSeconds * 1_000) / 3);
  }

  #schedule(delayMs?: number): void {
    clearTimeout(this.#timer);
    const lease = this.#lease;
    if (this.#closed || lease === undefined) return;
    this.#timer = setTimeout(
      () => void this.#renew(),
      delayMs ?? this.#interval(lease.ttl),
    );
    Deno.unrefTimer(this.#timer);
  }

  async #renew(): Promise<void> {
    const lease = this.#lease;
    if (lease === undefined || this.#closed) return;
    try {
      const ttl = await this.#store.port.leaseKeepAlive(
        lease.id,
        this.#deadline(),
      );
      if (this.#closed || this.#lease !== lease) return;
      if (ttl > 0) {
        this.#renewedUntil = this.#now() + ttl * 1_000;
        this.#schedule();
        return;
      }
      if (this.#attached === undefined) {
        this.#lease = undefined; // a prepared lease not used in time: grant another when needed
        return;
      }
      await this.#reattach();
    } catch (error) {
      if (this.#closed || this.#lease !== lease) return;
      this.#log(
        `cannot renew the lease on this machine's slot (${lease.id}): ${
          oneLine(error)
        }`,
      );
      this.#schedule(Math.min(this.#interval(lease.ttl), 5_000));
    }
  }

  /** Whether the slot is known covered; see {@link SlotLease.covered}. */
  covered(): boolean {
    if (this.#lost) return false;
    if (this.#lease === undefined || this.#attached === undefined) return true;
    return this.#now() <
      this.#renewedUntil - coverMarginMs(this.#lease.ttl);
  }

  /** Renews the attached lease now; see {@link SlotLease.confirm}. */
  async confirm(): Promise<LeaseConfirmation> {
    if (this.#lost) return { state: "lost" };
    const lease = this.#lease;
    if (lease === undefined || this.#attached === undefined) {
      return { state: "untracked" };
    }
    const sentAt = this.#now();
    const ttl = await this.#store.operation((deadline) =>
      this.#store.port.leaseKeepAlive(lease.id, { deadline })
    );
    if (this.#lease !== lease) return await this.confirm(); // renewed or lost meanwhile
    if (ttl > 0) {
      this.#renewedUntil = Math.max(this.#renewedUntil, sentAt + ttl * 1_000);
      this.#schedule();
      return { state: "renewed", ttlSeconds: ttl };
    }
    if (!await this.#reattach()) return { state: "lost" };
    return { state: "renewed", ttlSeconds: this.#lease?.ttl ?? lease.ttl };
  }

  /** Stops renewing and revokes; see {@link SlotLease.release}. */
  async release(): Promise<void> {
    clearTimeout(this.#timer);
    const lease = this.#lease;
    this.#lease = undefined;
    this.#attached = undefined;
    this.#lost = false;
    if (lease === undefined) return;
    await this.#store.port.leaseRevoke(lease.id, this.#deadline());
  }

  /** Reads the semaphore's whole state; see {@link SlotLease.view}. */
  view(): Promise<SemaphoreView> {
    return readSemaphoreView(this.#store);
  }

  /** Reclaims stale holders; see {@link SlotLease.reclaim}. */
  reclaim(view: SemaphoreView, ids: readonly string[]): Promise<boolean> {
    return reclaimHolders(this.#store, view, ids);
  }

  /** Ends renewing; see {@link SlotLease.close}. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const lease = this.#lease;
    if (lease === undefined) return;
    if (this.#attached !== undefined) {
      // Keep it: its TTL must cover the reboot. Start that TTL now.
      await this.#store.port.leaseKeepAlive(lease.id, this.#deadline())
        .catch(() => 0);
      return;
    }
    await this.#store.port.leaseRevoke(lease.id, this.#deadline())
      .catch(() => {});
  }
}
