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

import { backoffDelay } from "../common/backoff.ts";
import { formatDuration } from "../common/duration.ts";

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
      const failures = new Map<string, EndpointFailure>();
      const running = new Map<string, AbortController>();
      let queue = this.order();
      let round = 1;
      let refusedRounds = 0;
      let done = false;
      let hedgeTimer: ReturnType<typeof setTimeout> | undefined;
      let pauseTimer: ReturnType<typeof setTimeout> | undefined;
      const finish = (settle: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(hedgeTimer);
        clearTimeout(pauseTimer);
        clearTimeout(deadlineTimer);
        timing.signal?.removeEventListener("abort", onAbort);
        for (const controller of running.values()) controller.abort();
        running.clear();
        settle();
      };
      const noAnswer = (timedOut: boolean) => {
        for (const endpoint of running.keys()) {
          failures.set(
            endpoint,
            new EndpointFailure(endpoint, "timeout", "no answer"),
          );
          this.markBad(endpoint);
        }
        const what = [...failures.values()]
          .map((f) => `${f.endpoint}: ${f.message}`).join("; ");
        const message = timedOut
          ? `etcd did not answer within ${
            formatDuration(Math.round((timing.deadline - started) / 100) * 100)
          } (${what})`
          : `cannot reach etcd (${what})`;
        finish(() =>
          reject(new NoEndpointAnswered(message, failures, timedOut))
        );
      };
      const started = this.#now();
      const launchNext = (): boolean => {
        const endpoint = queue.shift();
        if (endpoint === undefined) return false;
        const controller = new AbortController();
        running.set(endpoint, controller);
        attempt(endpoint, controller.signal).then(
          (value) => {
            running.delete(endpoint);
            if (done) return;
            this.markGood(endpoint);
            finish(() => resolve(value));
          },
          (error) => {
            running.delete(endpoint);
            if (done) return;
            if (!(error instanceof EndpointFailure)) {
              finish(() => reject(error));
              return;
            }
            failures.set(endpoint, error);
            this.markBad(endpoint);
            if (launchNext()) {
              scheduleHedge();
            } else if (running.size === 0) {
              nextRound();
            }
          },
        );
        return true;
      };
      const scheduleHedge = () => {
        clearTimeout(hedgeTimer);
        if (queue.length === 0) return;
        hedgeTimer = setTimeout(() => {
          if (done) return;
          launchNext();
          scheduleHedge();
        }, this.#hedgeAfterMs);
      };
      const nextRound = () => {
        const all = [...failures.values()];
        if (all.every((f) => f.kind === "refused")) refusedRounds++;
        const pause = backoffDelay({
          attempt: round,
          minMs: 100,
          maxMs: 1_000,
        });
        if (refusedRounds >= 2 || this.#now() + pause >= timing.deadline) {
          noAnswer(false);
          return;
        }
        round++;
        pauseTimer = setTimeout(() => {
          if (done) return;
          queue = this.order();
          launchNext();
          scheduleHedge();
        }, pause);
      };
      const onAbort = () =>
        finish(() => reject(timing.signal?.reason ?? new Error("aborted")));
      if (timing.signal?.aborted) return onAbort();
      timing.signal?.addEventListener("abort", onAbort, { once: true });
      const deadlineTimer = setTimeout(
        () => noAnswer(true),
        Math.max(0, timing.deadline - this.#now()),
      );
      if (this.#now() >= timing.deadline) return noAnswer(true);
      launchNext();
      scheduleHedge();
    });
  }
}
