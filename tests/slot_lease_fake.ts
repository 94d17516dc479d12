/** An in-memory SlotLease over a FakeStore, for pure tests of locksmithd's loop with a slot TTL. */

import type { HolderRecord } from "../lib/semaphore/holder_record.ts";
import type { SemaphoreView } from "../lib/semaphore/semaphore_view.ts";
import {
  type EffectiveSlotTtl,
  effectiveSlotTtl,
  type StoredSettings,
} from "../lib/semaphore/settings.ts";
import type {
  LeaseConfirmation,
  ResumeResult,
  SlotLease,
} from "../lib/semaphore/slot_lease.ts";
import { unlock } from "../lib/semaphore/document.ts";
import type { FakeStore } from "./fakes.ts";

/** A {@link SlotLease} whose leases, alive keys and settings a test sets. */
export class FakeSlotLease implements SlotLease {
  /** The settings stored with the semaphore. */
  stored: StoredSettings = { kind: "absent" };
  /** Holders whose alive key exists (their lease is live). */
  readonly alive = new Set<string>();
  /** Every lease granted, in order. */
  readonly granted: string[] = [];
  /** Every lease revoked, in order. */
  readonly revoked: string[] = [];
  /** What {@link FakeSlotLease.resume} answers, and how often it was asked. */
  resumeResult: ResumeResult = "renewed";
  resumes = 0;
  /** What {@link FakeSlotLease.covered} answers. */
  isCovered = true;
  /** Number of releases (after the slot was given back, or a lease not needed). */
  releases = 0;
  /** Every successful reclaim's ids. */
  readonly reclaims: string[][] = [];
  /** The record attached after a take, with its revision. */
  attached: { record: HolderRecord; revision: number } | undefined;
  #prepared: string | undefined;
  closed = false;

  constructor(readonly store: FakeStore) {}

  slotTtl(defaultSeconds: number): Promise<EffectiveSlotTtl> {
    return Promise.resolve(effectiveSlotTtl(this.stored, defaultSeconds));
  }

  prepare(_ttlSeconds: number): Promise<string> {
    if (this.#prepared === undefined || this.attached !== undefined) {
      this.#prepared = `${1000 + this.granted.length + 1}`;
      this.granted.push(this.#prepared);
      this.attached = undefined;
    }
    return Promise.resolve(this.#prepared);
  }

  attach(record: HolderRecord, revision: number): void {
    this.attached = { record, revision };
    this.alive.add(record.id);
  }

  resume(): Promise<ResumeResult> {
    this.resumes++;
    return Promise.resolve(this.resumeResult);
  }

  covered(): boolean {
    return this.isCovered;
  }

  /** Number of confirmations asked for (the last check before a reboot). */
  confirms = 0;

  confirm(): Promise<LeaseConfirmation> {
    this.confirms++;
    this.store.check();
    const record = this.attached?.record;
    if (record?.lease === undefined) {
      return Promise.resolve({ state: "untracked" });
    }
    return Promise.resolve(
      this.alive.has(record.id)
        ? { state: "renewed", ttlSeconds: record.ttl ?? 0 }
        : { state: "lost" },
    );
  }

  release(): Promise<void> {
    this.releases++;
    if (this.#prepared !== undefined) this.revoked.push(this.#prepared);
    if (this.attached) this.alive.delete(this.attached.record.id);
    this.#prepared = undefined;
    this.attached = undefined;
    return Promise.resolve();
  }

  view(): Promise<SemaphoreView> {
    this.store.check();
    const doc = this.store.doc;
    return Promise.resolve({
      key: this.store.key,
      doc,
      raw: this.store.raw,
      docRevision: this.store.revision,
      docVersion: this.store.revision,
      revision: this.store.revision,
      holders: doc.holders.map((id) => ({
        id,
        record: this.store.records.get(id),
        recordRevision: this.store.records.has(id) ? 1 : 0,
        alive: this.alive.has(id),
      })),
      paused: this.store.paused,
      settings: this.stored,
      waiters: [],
      waiting: 0,
    });
  }

  reclaim(view: SemaphoreView, ids: readonly string[]): Promise<boolean> {
    if (view.docRevision !== this.store.revision) return Promise.resolve(false);
    if (ids.some((id) => this.alive.has(id))) return Promise.resolve(false);
    let doc = this.store.doc;
    for (const id of ids) {
      doc = unlock(doc, id);
      this.store.records.delete(id);
    }
    this.store.set(doc);
    this.reclaims.push([...ids]);
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
