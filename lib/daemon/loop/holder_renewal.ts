/**
 * The slot TTL in locksmithd's loop: the hooks that the phases call.
 *
 * - Before a take ({@link leaseForTake}): with a TTL in force (stored
 *   with the semaphore, else `LOCKSMITHD_SLOT_TTL`), a lease of that TTL
 *   is prepared; the record written with the slot names it, and the alive
 *   key is attached to it. After the take ({@link afterTake}) the lease is
 *   tied to the slot. It is renewed from then on while locksmithd runs.
 * - At start, holding a slot ({@link resumeLease}): the new process
 *   renews the lease its record names (after the reboot, or a restart).
 * - After the release ({@link afterRelease}): renewing stops; the lease is
 *   revoked.
 * - First in line with every slot held ({@link reclaimStaleSlots}): the
 *   slots of holders whose lease expired are reclaimed, and each one is
 *   logged with the holder's id and age.
 * - Before the reboot ({@link slotCovered}): a slot whose lease may have
 *   expired (no renewal got through for the TTL) is not rebooted on.
 * - The last check before the Reboot call ({@link confirmSlot}): a fresh
 *   read of the semaphore and a fresh renewal of the lease, timed on the
 *   monotonic clock (the reboot step acts on it only while it is young).
 *
 * @module
 */

import type { StoredHolderRecord } from "../../semaphore/slot_queue.ts";
import { formatAge } from "../../common/duration.ts";
import { oneLine } from "../../common/errors.ts";
import type { HolderRecord } from "../../semaphore/holder_record.ts";
import { effectiveSlotTtl, formatSlotTtl } from "../../semaphore/settings.ts";
import { MAX_RECLAIMS_PER_TXN } from "../../semaphore/semaphore_view.ts";
import { decideReclaim, type SlotConfirmation } from "./decisions.ts";
import type { Run } from "./run.ts";

/** The record's lease fields for a take, or `undefined` without a slot TTL. */
export async function leaseForTake(
  run: Run,
): Promise<{ lease: string; ttl: number } | undefined> {
  const lease = run.deps.slotLease;
  if (lease === undefined) return undefined;
  const ttl = await run.etcd(() =>
    lease.slotTtl(run.settings.slotTtlSeconds ?? 0)
  );
  if (ttl.source === "corrupt") {
    run.deps.log.warn(
      "the settings stored with the semaphore do not parse: no slot TTL (see 'locksmithctl status')",
    );
  }
  if (ttl.seconds <= 0) return undefined;
  const id = await run.etcd(() => lease.prepare(ttl.seconds));
  return { lease: id, ttl: ttl.seconds };
}

/** The take stored `record` at `revision`: its lease now covers the slot. */
export function afterTake(
  run: Run,
  record: HolderRecord,
  revision: number,
): void {
  if (record.lease === undefined) return;
  run.deps.slotLease?.attach(record, revision);
  run.deps.log.info(
    `the slot is renewed with lease ${record.lease} (slot TTL ${
      formatSlotTtl(record.ttl ?? 0)
    }) until it is released after the reboot`,
  );
}

/**
 * At start, holding a slot: renews the lease this machine's record names,
 * retrying with backoff until etcd answers or `signal` aborts. `stored` is
 * the record as the start-up read found it (a retry reads it again).
 */
export async function resumeLease(
  run: Run,
  signal: AbortSignal,
  stored: StoredHolderRecord,
): Promise<void> {
  const lease = run.deps.slotLease;
  if (lease === undefined) return;
  const backoff = run.peerBackoff();
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      const result = await run.etcd(() =>
        lease.resume(attempt === 1 ? stored : undefined)
      );
      if (result === "renewed" || result === "replaced") {
        run.deps.log.info(
          "renewing the lease on this machine's slot until it is released",
        );
      }
      return;
    } catch (error) {
      if (
        !await run.backoff(
          "cannot renew the lease on this machine's slot",
          error,
          backoff,
          signal,
        )
      ) return;
    }
  }
}

/** After the slot was released (or not taken after all): stops renewing, revokes the lease. */
export async function afterRelease(run: Run): Promise<void> {
  try {
    await run.deps.slotLease?.release();
  } catch (error) {
    run.deps.log.warn(
      `cannot revoke the lease of the released slot (it expires on its own): ${
        oneLine(error)
      }`,
    );
  }
}

/**
 * First in line, every slot held: reclaims the slots of holders whose
 * lease expired, in one guarded write. Returns whether it reclaimed
 * (then look again: a slot is free). Throws on etcd trouble.
 */
export async function reclaimStaleSlots(run: Run): Promise<boolean> {
  const lease = run.deps.slotLease;
  if (lease === undefined) return false;
  const view = await run.etcd(() => lease.view());
  const ttl = effectiveSlotTtl(
    view.settings,
    run.settings.slotTtlSeconds ?? 0,
  );
  // A bounded number per write (etcd limits comparisons); the rest next time.
  const reclaims = decideReclaim({
    holders: view.holders,
    ttlSeconds: ttl.seconds,
    now: run.deps.clock.now().getTime(),
  }).slice(0, MAX_RECLAIMS_PER_TXN);
  if (reclaims.length === 0) return false;
  const done = await run.etcd(() =>
    lease.reclaim(view, reclaims.map((r) => r.id))
  );
  if (!done) return false;
  for (const r of reclaims) {
    run.deps.log.warn(
      `reclaimed the slot of ${r.id}: its lease ${r.lease} expired (no renewal within the slot TTL ${
        formatSlotTtl(ttl.seconds)
      }); it held the slot for ${
        r.heldMs === undefined ? "an unknown time" : formatAge(r.heldMs)
      }${r.boot === undefined ? "" : ` (boot ${r.boot})`}`,
    );
  }
  return true;
}

/**
 * Whether the reboot may go on with the slot: `false` (logged) when its
 * lease may have expired (the slot may be reclaimed by now).
 */
export function slotCovered(run: Run): boolean {
  const lease = run.deps.slotLease;
  if (lease === undefined || lease.covered()) return true;
  run.deps.log.warn(
    "the lease on this machine's slot may have expired (no renewal got through in time): not rebooting on it; checking the slot again",
  );
  return false;
}

/**
 * The last check before the Reboot call: whether the semaphore still lists
 * this machine and its lease is alive, both asked now (one read and one
 * renewal, side by side), with the time the requests went out on the
 * monotonic clock. Without the semaphore (a FleetLock server holds the
 * lock) nothing can be asked: held, without a TTL. Throws on etcd trouble.
 */
export async function confirmSlot(run: Run): Promise<SlotConfirmation> {
  const { store, slotLease, clock } = run.deps;
  const sentAtMs = clock.monotonicMs();
  if (store === undefined) return { held: true, ttlSeconds: 0, sentAtMs };
  const [snapshot, lease] = await Promise.all([
    run.etcd(() => store.read(), "read"),
    slotLease === undefined
      ? Promise.resolve({ state: "untracked" } as const)
      : run.etcd(() => slotLease.confirm(), "keepalive"),
  ]);
  const listed = snapshot.doc.holders.includes(run.id);
  return {
    held: listed && lease.state !== "lost",
    ttlSeconds: lease.state === "renewed" ? lease.ttlSeconds : 0,
    sentAtMs,
  };
}
