/**
 * Which etcd member to ask, and what to do when it does not answer.
 *
 * A request goes to the endpoint that answered last. When that one fails to
 * connect, the next is tried at once; when it is merely slow (a member frozen
 * by a pause, a black-holed network path), the next is asked as well after a
 * hedge delay, and the first answer wins. Every request locksmith sends is a
 * read or a transaction guarded by a revision, so a duplicate is harmless:
 * at most one copy of a guarded write can apply. An endpoint that failed is
 * tried last for a while. One deadline covers every attempt.
 *
 * @module
 */

import { backoffDelay } from "../../common/backoff.ts";
import { formatDuration } from "../../common/duration.ts";

/**
 * A member failed to answer (could not connect, timed out, had no leader):
 * another endpoint may answer. Any other error thrown by an attempt is an
 * answer from etcd and ends the call at once.
 */
export class EndpointFailure extends Error {
  /** The endpoint that failed. */
  readonly endpoint: string;
  /** `refused`: nothing listens; `timeout`: no answer in time; `unavailable`: the member answered that it cannot serve. */
  readonly kind: "refused" | "timeout" | "unavailable";
  /**
   * Creates an `EndpointFailure`.
   *
   * @param endpoint the endpoint at fault
   * @param kind what happened
   * @param reason one line, e.g. `connection refused`
   */
  constructor(
    endpoint: string,
    kind: "refused" | "timeout" | "unavailable",
    reason: string,
  ) {
    super(reason);
    this.name = "EndpointFailure";
    this.endpoint = endpoint;
    this.kind = kind;
  }
}

/** Options of one {@link EndpointSet.call}. */
export interface CallTiming {
  /** Time (ms since the epoch) by which the call must be answered. */
  readonly deadline: number;
  /** Abandons the call (rejects with the signal's reason). */
  readonly signal?: AbortSignal | undefined;
}

/** Tuning of an {@link EndpointSet}. */
export interface EndpointSetOptions {
  /** Ask the next endpoint too after this long without an answer (default 500 ms). */
  readonly hedgeAfterMs?: number;
  /** How long an endpoint that failed is tried last (default 30 s). */
  readonly penaltyMs?: number;
  /** The clock (default `Date.now`). */
  readonly now?: () => number;
}

/** An attempt on one endpoint; `signal` aborts when another attempt answered or time ran out. */
export type Attempt<T> = (endpoint: string, signal: AbortSignal) => Promise<T>;

/** Thrown when no endpoint answered by the deadline or all failed; names each endpoint and its failure. */
export class NoEndpointAnswered extends Error {
  /** What each endpoint did, in the order tried. */
  readonly failures: ReadonlyMap<string, EndpointFailure>;
  /** Whether the deadline passed (else every endpoint failed outright). */
  readonly timedOut: boolean;
  /**
   * Creates a `NoEndpointAnswered`.
   *
   * @param message one line
   * @param failures the failure of each endpoint
   * @param timedOut whether the deadline passed
   */
  constructor(
    message: string,
    failures: ReadonlyMap<string, EndpointFailure>,
    timedOut: boolean,
  ) {
    super(message);
    this.name = "NoEndpointAnswered";
    this.failures = failures;
    this.timedOut = timedOut;
  }
}

/** The endpoints of one etcd cluster, with the memory of which ones answer. */
export class EndpointSet {
  /** The endpoints, as configured. */
  readonly endpoints: readonly string[];
  readonly #hedgeAfterMs: number;
  readonly #penaltyMs: number;
  readonly #now: () => number;
  #preferred: string;
  readonly #failedAt = new Map<string, number>();

  /**
   * Creates an `EndpointSet`.
   *
   * @param endpoints at least one endpoint URL
   * @param options hedge delay, penalty, clock
   */
  constructor(endpoints: readonly string[], options: EndpointSetOptions = {}) {
    if (endpoints.length === 0) throw new TypeError("no etcd endpoint");
    this.endpoints = endpoints;
    this.#preferred = endpoints[0]!;
    this.#hedgeAfterMs = options.hedgeAfterMs ?? 500;
    this.#penaltyMs = options.penaltyMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  /** The endpoints in the order to try them: the last that answered, then healthy ones, then recently failed ones. */
  order(): string[] {
    const now = this.#now();
    const failed = (e: string) =>
      now - (this.#failedAt.get(e) ?? -Infinity) < this.#penaltyMs;
    const rest = this.endpoints.filter((e) => e !== this.#preferred);
    return [
      ...(failed(this.#preferred) ? [] : [this.#preferred]),
      ...rest.filter((e) => !failed(e)),
      ...[this.#preferred, ...rest].filter(failed)
        .sort((a, b) => this.#failedAt.get(a)! - this.#failedAt.get(b)!),
    ];
  }

  /** Records that `endpoint` answered: it is asked first from now on. */
  markGood(endpoint: string): void {
    this.#preferred = endpoint;
    this.#failedAt.delete(endpoint);
  }

  /** Records that `endpoint` failed: it is asked last for a while. */
  markBad(endpoint: string): void {
    this.#failedAt.set(endpoint, this.#now());
  }

  /**
   * Runs `attempt` on the endpoints as the module documentation describes,
   * and resolves with the first answer. Rejects with the first error that is
   * not an {@link EndpointFailure}, or with {@link NoEndpointAnswered} naming
   * each endpoint's failure when none answered by the deadline (rounds of
   * attempts are repeated with a short pause while time remains, unless every
   * endpoint refused connections twice).
   */
  call<T>(attempt: Attempt<T>, timing: CallTiming): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      new HedgedCall<T>(
        {
          order: () => this.order(),
          markGood: (endpoint) => this.markGood(endpoint),
          markBad: (endpoint) => this.markBad(endpoint),
          hedgeAfterMs: this.#hedgeAfterMs,
          now: this.#now,
        },
        attempt,
        timing,
        { resolve, reject },
      ).start();
    });
  }
}

/** What one call needs of its {@link EndpointSet}. */
interface CallContext {
  order(): string[];
  markGood(endpoint: string): void;
  markBad(endpoint: string): void;
  readonly hedgeAfterMs: number;
  readonly now: () => number;
}

/** How a call's promise is settled. */
interface Settle<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** One {@link EndpointSet.call} in progress: its attempts, timers and outcome. */
class HedgedCall<T> {
  readonly #set: CallContext;
  readonly #attempt: Attempt<T>;
  readonly #timing: CallTiming;
  readonly #settle: Settle<T>;
  readonly #failures = new Map<string, EndpointFailure>();
  readonly #running = new Map<string, AbortController>();
  readonly #started: number;
  #queue: string[];
  #round = 1;
  #refusedRounds = 0;
  #done = false;
  #hedgeTimer: ReturnType<typeof setTimeout> | undefined;
  #pauseTimer: ReturnType<typeof setTimeout> | undefined;
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    set: CallContext,
    attempt: Attempt<T>,
    timing: CallTiming,
    settle: Settle<T>,
  ) {
    this.#set = set;
    this.#attempt = attempt;
    this.#timing = timing;
    this.#settle = settle;
    this.#queue = set.order();
    this.#started = set.now();
  }

  /** Starts the first attempt, the hedge timer and the deadline. */
  start(): void {
    const signal = this.#timing.signal;
    if (signal?.aborted) return this.#onAbort();
    signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#deadlineTimer = setTimeout(
      () => this.#noAnswer(true),
      Math.max(0, this.#timing.deadline - this.#set.now()),
    );
    if (this.#set.now() >= this.#timing.deadline) return this.#noAnswer(true);
    this.#launchNext();
    this.#scheduleHedge();
  }

  readonly #onAbort = (): void =>
    this.#finish(() =>
      this.#settle.reject(this.#timing.signal?.reason ?? new Error("aborted"))
    );

  #finish(settle: () => void): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#hedgeTimer);
    clearTimeout(this.#pauseTimer);
    clearTimeout(this.#deadlineTimer);
    this.#timing.signal?.removeEventListener("abort", this.#onAbort);
    for (const controller of this.#running.values()) controller.abort();
    this.#running.clear();
    settle();
  }

  #noAnswer(timedOut: boolean): void {
    for (const endpoint of this.#running.keys()) {
      this.#failures.set(
        endpoint,
        new EndpointFailure(endpoint, "timeout", "no answer"),
      );
      this.#set.markBad(endpoint);
    }
    const what = [...this.#failures.values()]
      .map((f) => `${f.endpoint}: ${f.message}`).join("; ");
    const waited = Math.round((this.#timing.deadline - this.#started) / 100) *
      100;
    const message = timedOut
      ? `etcd did not answer within ${formatDuration(waited)} (${what})`
      : `cannot reach etcd (${what})`;
    this.#finish(() =>
      this.#settle.reject(
        new NoEndpointAnswered(message, this.#failures, timedOut),
      )
    );
  }

  #launchNext(): boolean {
    const endpoint = this.#queue.shift();
    if (endpoint === undefined) return false;
    const controller = new AbortController();
    this.#running.set(endpoint, controller);
    this.#attempt(endpoint, controller.signal).then(
      (value) => this.#answered(endpoint, value),
      (error) => this.#failed(endpoint, error),
    );
    return true;
  }

  #answered(endpoint: string, value: T): void {
    this.#running.delete(endpoint);
    if (this.#done) return;
    this.#set.markGood(endpoint);
    this.#finish(() => this.#settle.resolve(value));
  }

  #failed(endpoint: string, error: unknown): void {
    this.#running.delete(endpoint);
    if (this.#done) return;
    if (!(error instanceof EndpointFailure)) {
      this.#finish(() => this.#settle.reject(error));
      return;
    }
    this.#failures.set(endpoint, error);
    this.#set.markBad(endpoint);
    if (this.#launchNext()) {
      this.#scheduleHedge();
    } else if (this.#running.size === 0) {
      this.#nextRound();
    }
  }

  #scheduleHedge(): void {
    clearTimeout(this.#hedgeTimer);
    if (this.#queue.length === 0) return;
    this.#hedgeTimer = setTimeout(() => {
      if (this.#done) return;
      this.#launchNext();
      this.#scheduleHedge();
    }, this.#set.hedgeAfterMs);
  }

  #nextRound(): void {
    const all = [...this.#failures.values()];
    if (all.every((f) => f.kind === "refused")) this.#refusedRounds++;
    const pause = backoffDelay({
      attempt: this.#round,
      minMs: 100,
      maxMs: 1_000,
    });
    if (
      this.#refusedRounds >= 2 ||
      this.#set.now() + pause >= this.#timing.deadline
    ) {
      this.#noAnswer(false);
      return;
    }
    this.#round++;
    this.#pauseTimer = setTimeout(() => {
      if (this.#done) return;
      this.#queue = this.#set.order();
      this.#launchNext();
      this.#scheduleHedge();
    }, pause);
  }
}
