/**
 * Exponential backoff, written once for every retry loop in locksmith: a
 * first delay doubling per failure up to a cap, with a choice of jitter,
 * and an optional reset once the peer answers again. Pure: randomness and
 * the "peer answered" count are injected, and nothing here sleeps.
 *
 * @example
 * ```ts
 * import { Backoff, backoffDelay } from "./backoff.ts";
 * backoffDelay({ attempt: 3, minMs: 100, maxMs: 1_000 }); // 400
 * const b = new Backoff({ minMs: 5_000, maxMs: 300_000, random: () => 1 });
 * b.next(); // 5000
 * b.next(); // 10000
 * ```
 *
 * @module
 */

/**
 * How a delay is spread: `none` (exactly the doubled delay), `half` (a
 * random point in [50 %, 100 %] of it, so that a fleet spreads out while
 * no delay drops below half), `full` (anywhere in [0, 100 %], for writers
 * that lost the same race together).
 */
export type Jitter = "none" | "half" | "full";

/** What {@link backoffDelay} computes from. */
export interface BackoffShape {
  /** The first delay (attempt 1), in ms. */
  readonly minMs: number;
  /** The longest delay, in ms. */
  readonly maxMs: number;
  /** The spread (default `none`). */
  readonly jitter?: Jitter;
  /** Random source in [0, 1) (needed for `half` and `full`). */
  readonly random?: () => number;
}

/**
 * The delay after failure `attempt` (counting from 1): `minMs` doubling per
 * attempt up to `maxMs`, spread by the jitter.
 */
export function backoffDelay(
  shape: BackoffShape & { readonly attempt: number },
): number {
  const base = Math.min(
    shape.maxMs,
    shape.minMs * 2 ** Math.max(0, shape.attempt - 1),
  );
  const random = shape.random ?? Math.random;
  switch (shape.jitter ?? "none") {
    case "half":
      return Math.round(base * (0.5 + random() / 2));
    case "full":
      return random() * base;
    default:
      return base;
  }
}

/** Options of a {@link Backoff}. */
export interface BackoffOptions extends BackoffShape {
  /**
   * How many times the peer has answered so far (any request, by anyone
   * in the process): when the count moved since the last failure, the peer
   * is back and the backoff starts again from `minMs`.
   */
  readonly answers?: () => number;
}

/** One retry loop's backoff: counts failures, resets on success or once the peer answered. */
export class Backoff {
  readonly #options: BackoffOptions;
  #failures = 0;
  #answersSeen: number | undefined;

  /**
   * Creates a backoff with no failure yet.
   *
   * @param options delays, jitter, randomness, the peer's answer count
   */
  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  /** Failures counted since the last reset. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Counts a failure and returns the delay before the next attempt. When
   * the peer answered since the previous failure, counting starts again.
   */
  next(): number {
    const answers = this.#options.answers?.();
    if (answers !== undefined && answers !== this.#answersSeen) {
      if (this.#answersSeen !== undefined) this.#failures = 0;
      this.#answersSeen = answers;
    }
    this.#failures++;
    return backoffDelay({ ...this.#options, attempt: this.#failures });
  }

  /** Starts again from the first delay (after a success). */
  reset(): void {
    this.#failures = 0;
    this.#answersSeen = undefined;
  }
}

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
  return backoffDelay({ attempt, minMs, maxMs, jitter: "half", random });
}
