/**
 * A lock server that hands out this machine's slot and takes it back, as
 * locksmithd's `fleetlock` strategy uses it: the port the FleetLock client
 * implements. Unlike the `LockStore`, it shows no document and keeps
 * no queue: a machine can only ask for its slot (`lock`, FleetLock's
 * pre-reboot) and give it back (`unlock`, steady-state), and both are
 * idempotent. Answers are values, not exceptions, so that the daemon's
 * decisions read them as data; only a stop (the signal) rejects.
 *
 * @module
 */

/**
 * What a successful call did, when the server says so (locksmith's own
 * FleetLock server does, in its text answer; others answer only with a 2xx):
 * `locked` (took a slot), `already_held`, `released`, `not_held` (held none).
 */
export type LockServerResult =
  | "locked"
  | "already_held"
  | "released"
  | "not_held";

/** A 2xx answer. */
export interface LockServerGrant {
  /** Always `true`. */
  readonly ok: true;
  /** The HTTP status (any 2xx). */
  readonly status: number;
  /** What the call did, when the server says so. */
  readonly result?: LockServerResult | undefined;
  /** Holders after the call, when the server says so. */
  readonly held?: number | undefined;
  /** Slots of the group, when the server says so. */
  readonly max?: number | undefined;
}

/** Any other outcome: a refusal, an error status, no answer. */
export interface LockServerRefusal {
  /** Always `false`. */
  readonly ok: false;
  /** The HTTP status, or `undefined` when no answer came (unreachable, timeout). */
  readonly status: number | undefined;
  /**
   * Short machine-readable kind: the server's `kind` (e.g.
   * `failed_lock_semaphore_full`), `generic_http_<status>` when the body
   * did not say, `timeout` or `unreachable` without an answer.
   */
  readonly kind: string;
  /** Whether the server said that every slot is held (wait and ask again). */
  readonly full: boolean;
  /** Whether the call may have been applied anyway (no answer after it was sent). */
  readonly uncertain: boolean;
  /**
   * Whether the server itself answered (it is up, and refused), as opposed
   * to no answer, a timeout, or a gateway answering for it (502, 503 or 504
   * without a FleetLock body): only then does locksmithd check now and then
   * whether it answers again while it waits to ask again.
   */
  readonly answered: boolean;
  /** One line naming the server, the call and what happened. */
  readonly message: string;
}

/** The answer to a call. */
export type LockServerAnswer = LockServerGrant | LockServerRefusal;

/** A lock server for one machine in one group (see the module documentation). */
export interface LockServer {
  /** For log lines, e.g. `FleetLock server http://10.0.0.5:8080/ (group default, id 4d4a...)`. */
  readonly name: string;
  /** Asks for this machine's slot; a grant also when it already held one. Rejects only when `signal` aborts. */
  lock(signal: AbortSignal): Promise<LockServerAnswer>;
  /** Gives this machine's slot back; a grant also when it held none. Rejects only when `signal` aborts. */
  unlock(signal: AbortSignal): Promise<LockServerAnswer>;
  /**
   * Asks the server something that changes nothing, to learn whether it
   * answers again after it did not: `true` when the server itself answered
   * (in {@link LockServerRefusal.answered}'s sense). Rejects only when
   * `signal` aborts.
   */
  probe(signal: AbortSignal): Promise<boolean>;
  /** Releases the connection. */
  close(): Promise<void>;
}
