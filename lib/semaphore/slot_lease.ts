/**
 * What keeps a slot from being reclaimed while its holder lives, as
 * locksmithd uses it: the port that `EtcdSlotLease` implements.
 *
 * With a slot TTL, a machine takes its slot with a lease of that TTL: its
 * record names the lease, and its alive key (`<key>/alive/<id>`) is
 * attached to it. The daemon renews the lease from the take until the
 * release after boot; a new daemon process (after the reboot, or a
 * restart) resumes renewing the lease its record names. A holder whose
 * lease expired is stale, and the first waiter in line reclaims its slot.
 *
 * @module
 */

import type { StoredHolderRecord } from "./slot_queue.ts";
import type { HolderRecord } from "./holder_record.ts";
import type { SemaphoreView } from "./semaphore_view.ts";
import type { EffectiveSlotTtl } from "./settings.ts";

/**
 * How resuming this machine's lease at start went: `renewed` (it was
 * alive), `replaced` (it had expired, but the slot was still this
 * machine's: a new lease is attached), `lost` (it had expired and the slot
 * was reclaimed), `untracked` (the record names no lease: nothing to renew).
 */
export type ResumeResult = "renewed" | "replaced" | "lost" | "untracked";

/**
 * What a fresh renewal of this machine's lease found
 * ({@link SlotLease.confirm}): `renewed` (alive now, for `ttlSeconds`
 * from the request; an expired lease whose slot no waiter had reclaimed
 * yet is replaced and counts as renewed), `lost` (the slot was reclaimed),
 * or `untracked` (no lease is attached to a slot: nothing can expire).
 */
export type LeaseConfirmation =
  | { readonly state: "renewed"; readonly ttlSeconds: number }
  | { readonly state: "lost" }
  | { readonly state: "untracked" };

/** This machine's lease on its slot, and the reclaim of expired ones. */
export interface SlotLease {
  /** The slot TTL in force: the one stored with the semaphore, else `defaultSeconds`. */
  slotTtl(defaultSeconds: number): Promise<EffectiveSlotTtl>;
  /**
   * Before a take: grants a lease of `ttlSeconds` (or returns the one
   * granted before and not attached yet), renewed from now on.
   */
  prepare(ttlSeconds: number): Promise<string>;
  /** The take stored `record` (naming the prepared lease) at `revision`. */
  attach(record: HolderRecord, revision: number): void;
  /**
   * At start, holding a slot: renews the lease this machine's record names;
   * see {@link ResumeResult}. `stored` is the record as the start-up read
   * found it (saving a read); without it the record is read first.
   */
  resume(stored?: StoredHolderRecord): Promise<ResumeResult>;
  /**
   * Whether the slot is known to be covered now: no lease is in use, or
   * the lease was renewed recently enough that it has not expired
   * (measured on this machine's monotonic clock only). `false` once the
   * slot was found reclaimed.
   */
  covered(): boolean;
  /**
   * Renews the lease attached to the slot now, with a request of its own
   * (the last check before a reboot); see {@link LeaseConfirmation}.
   * Throws on etcd trouble.
   */
  confirm(): Promise<LeaseConfirmation>;
  /** After the slot was released (or a prepared lease is not needed): stops renewing and revokes. */
  release(): Promise<void>;
  /** Reads the semaphore with its holders' records and alive keys, in one request. */
  view(): Promise<SemaphoreView>;
  /** Reclaims the stale holders `ids` of `view` in one guarded write; `false` when something changed. */
  reclaim(view: SemaphoreView, ids: readonly string[]): Promise<boolean>;
  /**
   * The process ends: a lease attached to a held slot is renewed one last
   * time and kept (its TTL covers the reboot); any other is revoked.
   */
  close(): Promise<void>;
}
