/**
 * What the two `EtcdPort` adapters (`gateway.ts`, `grpc.ts`) share, as
 * their base class: the {@link EndpointSet} that decides failover and
 * hedging, each member's auth token (fetched once, renewed once when etcd
 * rejects it), the count of requests by kind, the copies of a transaction,
 * a lease revoke that finds the lease gone, the open watch streams, and the
 * port's error for etcd's answer (its gRPC status code and text). The
 * adapters bring only what goes over the wire.
 *
 * @module
 */

import {
  EtcdAuthenticationError,
  EtcdPermissionDeniedError,
  EtcdRequestError,
  EtcdUnavailableError,
} from "../../common/errors.ts";
import { EndpointSet, NoEndpointAnswered } from "./endpoint_set.ts";
import {
  type CallOptions,
  type PortStats,
  type TxnResult,
  type WatchHandlers,
  type WatchRequest,
  type WatchStream,
  withCopies,
} from "./port.ts";

/**
 * Ask another member too after this long without an answer: well above a
 * healthy member's latency (a few ms; tens under load), well below a
 * frozen member's (never).
 */
export const DEFAULT_HEDGE_AFTER_MS = 250;

/** gRPC status codes that mean "this member cannot serve now": try another. */
export const UNAVAILABLE_CODES: ReadonlySet<number> = new Set(
  [1, 4, 10, 13, 14],
);
const UNAUTHENTICATED = 16;
const PERMISSION_DENIED = 7;
const NOT_FOUND = 5;

/** etcd answered UNAUTHENTICATED: the token expired or was never valid. */
export class TokenRejected extends Error {
  /**
   * Creates a `TokenRejected`.
   *
   * @param details etcd's text
   */
  constructor(details: string) {
    super(details);
    this.name = "TokenRejected";
  }
}

/**
 * The port's error for etcd's answer from `endpoint` with gRPC status
 * `code` (not one of {@link UNAVAILABLE_CODES}) and text `details`:
 * {@link TokenRejected} for a token to renew, `EtcdPermissionDeniedError`,
 * `EtcdAuthenticationError` for refused credentials, else
 * `EtcdRequestError` with the code.
 */
export function answerError(
  endpoint: string,
  code: number,
  details: string,
): Error {
  if (code === UNAUTHENTICATED) return new TokenRejected(details);
  if (code === PERMISSION_DENIED) {
    return new EtcdPermissionDeniedError(
      `etcd at ${endpoint} denied access: ${details}`,
    );
  }
  if (/authentication failed|user name is empty|invalid auth/.test(details)) {
    return new EtcdAuthenticationError(
      `etcd at ${endpoint} refused the credentials: ${details}`,
    );
  }
  return new EtcdRequestError(code, `etcd at ${endpoint}: ${details}`);
}

/** The settings of a {@link PortCore}. */
export interface PortCoreOptions {
  /** The members. */
  readonly endpoints: readonly string[];
  /** Longest wait for a watch stream to be set up, in ms. */
  readonly timeoutMs: number;
  /** Ask another member too after this long without an answer (default 250 ms, at most a quarter of `timeoutMs`). */
  readonly hedgeAfterMs?: number;
  /** The user name, when auth is used. */
  readonly username?: string;
}

/** Sends one attempt of a request to `endpoint`, with its token (if auth is used). */
export type SendAttempt<T> = (
  endpoint: string,
  signal: AbortSignal,
  token: string | undefined,
) => Promise<T>;

/** What a watch stream gets from the port about its member (see {@link PortCore.watch}). */
export interface WatchMemberOptions {
  /** The member to watch on. */
  readonly endpoint: string;
  /** End as disconnected when not every watch was created within this long (ms). */
  readonly createTimeoutMs: number;
  /** The member's auth token, if auth is used. */
  token(signal: AbortSignal): Promise<string | undefined>;
  /** Forgets the token (etcd said it is not valid). */
  dropToken(): void;
  /** Tells the endpoint set that this member failed. */
  markBad(): void;
  /** Where events and the end go. */
  readonly handlers: WatchHandlers;
}

/** The base class of both adapters; see the module documentation. */
export abstract class PortCore {
  /** The endpoints, for messages. */
  readonly endpoints: readonly string[];
  readonly #options: PortCoreOptions;
  readonly #set: EndpointSet;
  readonly #tokens = new Map<string, Promise<string>>();
  readonly #streams = new Set<WatchStream>();
  readonly #requests: Record<string, number> = {};

  /**
   * Creates the shared part of an adapter.
   *
   * @param options the members, timeouts, and the user name if auth is used
   */
  constructor(options: PortCoreOptions) {
    this.endpoints = options.endpoints;
    this.#options = options;
    this.#set = new EndpointSet(options.endpoints, {
      hedgeAfterMs: options.hedgeAfterMs ??
        Math.min(DEFAULT_HEDGE_AFTER_MS, options.timeoutMs / 4),
    });
  }

  /** Asks `endpoint` for a token of the user; resolves to `undefined` when etcd gave none. */
  protected abstract authenticate(
    endpoint: string,
    signal: AbortSignal,
  ): Promise<string | undefined>;

  /** Opens a watch stream of `requests` on `member` (see {@link PortCore.watch}). */
  protected abstract openWatch(
    requests: readonly WatchRequest[],
    member: WatchMemberOptions,
  ): WatchStream;

  #count(kind: string): void {
    this.#requests[kind] = (this.#requests[kind] ?? 0) + 1;
  }

  /** The auth token of `endpoint` (tokens are per member), or `undefined` without credentials. */
  #token(endpoint: string, signal: AbortSignal): Promise<string | undefined> {
    const { username } = this.#options;
    if (username === undefined) return Promise.resolve(undefined);
    let token = this.#tokens.get(endpoint);
    if (token === undefined) {
      this.#count("authenticate");
      token = this.authenticate(endpoint, signal).then((given) => {
        if (given === undefined) {
          throw new EtcdAuthenticationError(
            `etcd at ${endpoint} gave no token for user ${username}: is auth enabled?`,
          );
        }
        return given;
      });
      this.#tokens.set(endpoint, token);
      token.catch(() => this.#tokens.delete(endpoint));
    }
    return token;
  }

  /** Sends with `endpoint`'s token, renewing a rejected token once. */
  async #authed<T>(
    endpoint: string,
    signal: AbortSignal,
    send: SendAttempt<T>,
  ): Promise<T> {
    for (let attempt = 1;; attempt++) {
      const token = await this.#token(endpoint, signal);
      try {
        return await send(endpoint, signal, token);
      } catch (error) {
        if (!(error instanceof TokenRejected)) throw error;
        this.#tokens.delete(endpoint);
        if (attempt === 2 || token === undefined) {
          throw new EtcdAuthenticationError(
            `etcd at ${endpoint} refused the request: ${error.message}${
              token === undefined
                ? " (auth is on: give a user name and password)"
                : ""
            }`,
          );
        }
      }
    }
  }

  /**
   * Sends one request of `kind` to the members as the endpoint set decides,
   * within `options.deadline`, with each member's token; no member
   * answering is an {@link EtcdUnavailableError}.
   */
  protected async call<T>(
    kind: string,
    options: CallOptions,
    send: SendAttempt<T>,
  ): Promise<T> {
    try {
      return await this.#set.call((endpoint, signal) => {
        this.#count(kind);
        return this.#authed(endpoint, signal, send);
      }, options);
    } catch (error) {
      if (error instanceof NoEndpointAnswered) {
        throw new EtcdUnavailableError(error.message, { cause: error });
      }
      throw error;
    }
  }

  /**
   * A transaction sent with {@link PortCore.call}: `result` reads etcd's
   * answer, which then says how many copies were sent (hedged, re-sent).
   */
  protected async callTxn<T>(
    options: CallOptions,
    send: SendAttempt<T>,
    result: (answer: T) => TxnResult,
  ): Promise<TxnResult> {
    let copies = 0;
    const answer = await this.call("txn", options, (...attempt) => {
      copies++;
      return send(...attempt);
    });
    return withCopies(result(answer), copies);
  }

  /** A lease revoke sent with {@link PortCore.call}; a lease that is gone already is fine. */
  protected async callRevoke(
    options: CallOptions,
    send: SendAttempt<unknown>,
  ): Promise<void> {
    try {
      await this.call("leaseRevoke", options, send);
    } catch (error) {
      if (error instanceof EtcdRequestError && error.code === NOT_FOUND) return;
      throw error;
    }
  }

  /**
   * Opens a watch stream on `endpoint`, else on the endpoint that answered
   * last; see `EtcdPort.watch`. The stream is cancelled by
   * {@link PortCore.closeWatches}.
   */
  watch(
    requests: readonly WatchRequest[],
    handlers: WatchHandlers,
    endpoint?: string,
  ): WatchStream {
    this.#count("watch");
    const at = endpoint ?? this.#set.order()[0]!;
    const stream = this.openWatch(requests, {
      endpoint: at,
      createTimeoutMs: this.#options.timeoutMs,
      token: (signal) => this.#token(at, signal),
      dropToken: () => this.#tokens.delete(at),
      markBad: () => this.#set.markBad(at),
      handlers: {
        onCreated: (revision) => handlers.onCreated?.(revision),
        onEvents: (index, events) => handlers.onEvents(index, events),
        onEnd: (end) => {
          this.#streams.delete(stream);
          handlers.onEnd(end);
        },
      },
    });
    this.#streams.add(stream);
    return stream;
  }

  /** The endpoints in the order they would be tried now. */
  endpointOrder(): string[] {
    return this.#set.order();
  }

  /** Requests sent so far, by kind. */
  stats(): PortStats {
    return { requests: { ...this.#requests } };
  }

  /** Ends every watch stream. */
  protected closeWatches(): void {
    for (const stream of this.#streams) stream.cancel();
    this.#streams.clear();
  }
}
