/**
 * Settings stored with a semaphore at `<key>/settings`, so that a whole
 * group agrees on them: for now the slot TTL. The value is a JSON object,
 * `{"slotTtlSeconds": 600}`; `0` means "no TTL" (stored, so it wins over
 * the daemons' `LOCKSMITHD_SLOT_TTL`); an absent key or field leaves the
 * daemons' default. Fields this version does not know are kept when the
 * settings are rewritten. Pure.
 *
 * @module
 */

import {
  formatDuration,
  MAX_DURATION_MS,
  parseDuration,
} from "../common/duration.ts";
import { limitText, ValueDefect } from "../common/value_parsers.ts";
import { jsonObject } from "./document.ts";

/**
 * Shortest slot TTL accepted: 1 minute. A slot's TTL must cover the time
 * its holder is down for the reboot (from locksmithd stopping to it running
 * again after boot) with a margin, or a waiter may reclaim the slot of a
 * machine that is still rebooting; no reboot is shorter than this.
 */
export const MIN_SLOT_TTL_MS = 60_000;

/** Longest slot TTL accepted: 24 days (the longest duration locksmith accepts). */
export const MAX_SLOT_TTL_MS = MAX_DURATION_MS;

/** The settings of one semaphore. */
export interface SemaphoreSettings {
  /** The slot TTL in whole seconds; `0` for none; absent for the daemons' default. */
  readonly slotTtlSeconds?: number | undefined;
}

/** Settings as read: absent, parsed, or with a defect (then they are not used). */
export type StoredSettings =
  | { readonly kind: "absent" }
  | { readonly kind: "ok"; readonly settings: SemaphoreSettings }
  | { readonly kind: "corrupt"; readonly defect: string };

/** Parses the stored text of the settings (absent: `undefined`). */
export function parseSettings(raw: string | undefined): StoredSettings {
  if (raw === undefined) return { kind: "absent" };
  const value = jsonObject(raw);
  if (typeof value === "string") return { kind: "corrupt", defect: value };
  const ttl = value.slotTtlSeconds;
  if (ttl === undefined) return { kind: "ok", settings: {} };
  if (typeof ttl !== "number" || !Number.isSafeInteger(ttl) || ttl < 0) {
    return {
      kind: "corrupt",
      defect: `"slotTtlSeconds" is not a whole number of seconds`,
    };
  }
  if (ttl !== 0 && ttl * 1_000 < MIN_SLOT_TTL_MS) {
    return {
      kind: "corrupt",
      defect: `"slotTtlSeconds" is ${ttl}, shorter than the minimum ${
        limitText(MIN_SLOT_TTL_MS)
      }`,
    };
  }
  return { kind: "ok", settings: { slotTtlSeconds: ttl } };
}

/**
 * The stored text with the slot TTL set to `seconds` (`undefined` removes
 * it), keeping every other field of `raw` (which must be an object, or
 * absent).
 */
export function withSlotTtl(
  raw: string | undefined,
  seconds: number | undefined,
): string {
  const base = raw === undefined
    ? {}
    : JSON.parse(raw) as Record<string, unknown>;
  const { slotTtlSeconds: _, ...rest } = base;
  return JSON.stringify(
    seconds === undefined ? rest : { ...rest, slotTtlSeconds: seconds },
  );
}

/**
 * Parses a slot TTL as an operator writes it: `0` or `off` for none, else a
 * duration from {@link MIN_SLOT_TTL_MS} to {@link MAX_SLOT_TTL_MS}.
 * Returns whole seconds (rounded up); throws a `ValueDefect`.
 */
export function parseSlotTtl(text: string): number {
  if (text === "off") return 0;
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw new ValueDefect(
      `is not a duration like 10m (units ms, s, m, h, d), or 0 or off for no TTL`,
    );
  }
  if (ms === 0) return 0;
  if (ms < MIN_SLOT_TTL_MS) {
    throw new ValueDefect(
      `is shorter than the minimum slot TTL ${
        limitText(MIN_SLOT_TTL_MS)
      } (it must cover a machine that is down for its reboot)`,
    );
  }
  if (ms > MAX_SLOT_TTL_MS) {
    throw new ValueDefect(`is longer than ${limitText(MAX_SLOT_TTL_MS)}`);
  }
  return Math.ceil(ms / 1_000);
}

/** The slot TTL that `stored` holds, in seconds; `undefined` when none is stored or the settings do not parse. */
export function storedSlotTtl(stored: StoredSettings): number | undefined {
  return stored.kind === "ok" ? stored.settings.slotTtlSeconds : undefined;
}

/** The slot TTL in force for a group, and where it comes from. */
export interface EffectiveSlotTtl {
  /** Seconds; `0` for none (no lease, no reclaim). */
  readonly seconds: number;
  /** `stored` (with the semaphore), `default` (this daemon's key), or `corrupt` (stored, unusable: none). */
  readonly source: "stored" | "default" | "corrupt";
}

/**
 * The TTL in force: the stored one wins; without one, this daemon's
 * `defaultSeconds` (`0` when it has none). Settings that do not parse mean
 * no TTL (a waiter never reclaims on a setting it cannot read).
 */
export function effectiveSlotTtl(
  stored: StoredSettings,
  defaultSeconds: number,
): EffectiveSlotTtl {
  if (stored.kind === "corrupt") return { seconds: 0, source: "corrupt" };
  const ttl = storedSlotTtl(stored);
  return ttl === undefined
    ? { seconds: defaultSeconds, source: "default" }
    : { seconds: ttl, source: "stored" };
}

/** A TTL in seconds as shown to operators: `10m`, `1h30m`, `off` for 0. */
export function formatSlotTtl(seconds: number): string {
  return seconds === 0 ? "off" : formatDuration(seconds * 1_000);
}
