/**
 * Exponential backoff with jitter, randomness injected: the delays between
 * attempts of every retry in locksmith.
 *
 * @module
 */

/** First delay after a failed attempt to take or release a slot: 5 s. */
export const BACKOFF_MIN_MS = 5_000;
/** Longest delay between attempts: 5 min. */
export const BACKOFF_MAX_MS = 300_000;

/**
 * Delay before attempt `attempt + 1` (attempt counts from 1): `minMs`
 * doubling per attempt up to `maxMs` (by default 5 s doubling to 5 min),
 * with jitter in [50 %, 100 %] so that a fleet spreads out.
 */
export function backoffMs(
  attempt: number,
  random: () => number,
  minMs: number = BACKOFF_MIN_MS,
  maxMs: number = BACKOFF_MAX_MS,
): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.5 + random() / 2));
}
