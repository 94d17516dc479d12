/**
 * The small part of etcd's v3 API that locksmith uses, as one interface:
 * range, a guarded transaction, watch, and leases. Two adapters implement
 * it: etcd's JSON gateway over `fetch` (`gateway.ts`, the default: no gRPC
 * client to load) and gRPC through `npm:etcd3` (`grpc.ts`, for servers
 * without the gateway). Everything above (the compare-and-swap store, the
 * wait queue) is written once against this port.
 *
 * Keys and values are bytes. Revisions are numbers (etcd's int64 revisions
 * stay far below 2^53); lease ids are decimal strings, since etcd picks them
 * from the whole int64 range.
 *
 * @module
 */

/** A key and its value as etcd stores it. */
export interface KeyValue {
  /** The key's bytes. */
  readonly key: Uint8Array;
  /** The value's bytes (empty for keys-only reads and delete events). */
  readonly value: Uint8Array;
  /** Revision of the key's creation. */
  readonly createRevision: number;
  /** Revision of the key's last change. */
  readonly modRevision: number;
  /** Number of writes since creation; `0` for a deleted key. */
  readonly version: number;
  /** Lease the key is attached to; `"0"` for none. */
  readonly lease: string;
}

/** How a range's results are sorted. */
export type SortTarget = "KEY" | "VERSION" | "CREATE" | "MOD" | "VALUE";

/** A read of one key, or of the keys in `[key, rangeEnd)`. */
export interface RangeRequest {
  /** The key, or the start of the range. */
  readonly key: Uint8Array;
  /** End of the range (exclusive); absent for a single key. */
  readonly rangeEnd?: Uint8Array;
  /** At most this many results; `0` or absent for all. */
  readonly limit?: number;
  /** Sort by this field (with {@link RangeRequest.sortOrder}). */
  readonly sortTarget?: SortTarget;
  /** Sort order; absent for none (key order). */
  readonly sortOrder?: "ASCEND" | "DESCEND";
  /** Only keys and revisions, no values. */
  readonly keysOnly?: boolean;
  /** Only the count. */
  readonly countOnly?: boolean;
  /** Only keys created at or before this revision. */
  readonly maxCreateRevision?: number;
  /** Read the keys as they were at this revision (a historic read); absent for now. */
  readonly revision?: number;
}

/** The answer to a {@link RangeRequest}. */
export interface RangeResult {
  /** The keys found. */
  readonly kvs: readonly KeyValue[];
  /**
   * Number of keys in the range (before `limit`; etcd counts before the
   * revision filters too).
   */
  readonly count: number;
  /** The store's revision when the read was served. */
  readonly revision: number;
}

/** A comparison in a transaction's guard. */
export type Compare =
  | {
    /** The key compared. */
    readonly key: Uint8Array;
    /** The key's field compared. */
    readonly target: "VERSION" | "CREATE" | "MOD";
    /** How it compares with {@link value}. */
    readonly result: "EQUAL" | "GREATER" | "LESS" | "NOT_EQUAL";
    /** The number compared with (`0` for an absent key). */
    readonly value: number;
    /** With a range end, every key in `[key, rangeEnd)` must compare true (an empty range compares as an absent key). */
    readonly rangeEnd?: Uint8Array;
  }
  | {
    /** The key compared. */
    readonly key: Uint8Array;
    /** The key's stored value is compared. */
    readonly target: "VALUE";
    /** How it compares with {@link value}. */
    readonly result: "EQUAL" | "NOT_EQUAL";
    /** The bytes compared with (an absent key never compares true). */
    readonly value: Uint8Array;
  };

/** One operation of a transaction branch. */
export type TxnOp =
  | {
    /** Writes `value` at `key`, attached to `lease` when given. */
    readonly put: {
      readonly key: Uint8Array;
      readonly value: Uint8Array;
      readonly lease?: string;
    };
  }
  | {
    /** Deletes `key`, or `[key, rangeEnd)`. */
    readonly deleteRange: {
      readonly key: Uint8Array;
      readonly rangeEnd?: Uint8Array;
    };
  }
  | {
    /** Reads, seeing the writes made earlier in the same branch. */
    readonly range: RangeRequest;
  }
  | {
    /** A nested transaction (etcd 3.3 and later). */
    readonly txn: TxnRequest;
  };

/** A guarded transaction: `success` runs when every comparison holds, else `failure`. */
export interface TxnRequest {
  /** The guard; empty means always `success`. */
  readonly compare: readonly Compare[];
  /** Operations when the guard holds. */
  readonly success: readonly TxnOp[];
  /** Operations when it does not. */
  readonly failure: readonly TxnOp[];
}

/** The result of one {@link TxnOp}. */
export type TxnOpResult =
  | { readonly put: true }
  | { readonly deleted: number }
  | { readonly range: RangeResult }
  | { readonly txn: TxnResult };

/** The answer to a {@link TxnRequest}. */
export interface TxnResult {
  /** Whether the guard held (`success` ran). */
  readonly succeeded: boolean;
  /** The store's revision after the transaction. */
  readonly revision: number;
  /** One result per operation of the branch that ran, in order. */
  readonly responses: readonly TxnOpResult[];
  /**
   * `true` when the request went out more than once (hedged to another
   * member, or sent again after a member failed): a failed guard may then
   * have failed on a copy of this very write that committed first.
   */
  readonly resent?: boolean;
}

/** `result`, marked {@link TxnResult.resent} when it took more than one copy. */
export function withCopies(result: TxnResult, copies: number): TxnResult {
  return copies > 1 ? { ...result, resent: true } : result;
}

/** One watched key or range in a watch stream. */
export interface WatchRequest {
  /** The key, or the start of the range. */
  readonly key: Uint8Array;
  /** End of the range (exclusive); absent for a single key. */
  readonly rangeEnd?: Uint8Array;
  /** First revision to report (the one after the last one read); absent for "from now". */
  readonly startRevision?: number;
  /** Report the previous value with each event. */
  readonly prevKv?: boolean;
}

/** A change seen by a watch. */
export interface WatchEvent {
  /** A write (`PUT`) or a deletion (`DELETE`, also by lease expiry). */
  readonly type: "PUT" | "DELETE";
  /** The key as changed (for `DELETE`: key and mod revision only). */
  readonly kv: KeyValue;
  /** The value before the change, when asked for and known. */
  readonly prevKv?: KeyValue | undefined;
}

/** Why a watch stream ended; after any of these, re-read and watch again. */
export type WatchEnd =
  | {
    /** The start revision was compacted away: events were lost. */
    readonly kind: "compacted";
    /** The oldest revision still available. */
    readonly compactRevision: number;
  }
  | {
    /** The server cancelled the watch (e.g. the member lost its leader). */
    readonly kind: "canceled";
    /** The server's reason, if it gave one. */
    readonly reason: string;
  }
  | {
    /** The connection failed or ended. */
    readonly kind: "disconnected";
    /** What happened, one line. */
    readonly reason: string;
  }
  | {
    /** {@link WatchStream.cancel} was called. */
    readonly kind: "closed";
  };

/** What a watch stream reports. */
export interface WatchHandlers {
  /**
   * Every watch of the stream was created (the server now reports every
   * change after the start revisions). `revision` is the server's revision.
   */
  onCreated?(revision: number): void;
  /**
   * Changes seen by watch number `index` (the position of its request),
   * all of one revision.
   */
  onEvents(index: number, events: readonly WatchEvent[]): void;
  /** The stream ended; called once, and never after {@link WatchStream.cancel}. */
  onEnd(end: WatchEnd): void;
}

/** A running watch stream (one connection to one member). */
export interface WatchStream {
  /** The endpoint that serves it. */
  readonly endpoint: string;
  /** Ends the stream; no handler is called afterwards. */
  cancel(): void;
}

/** When a request must be answered, and how to abandon it. */
export interface CallOptions {
  /** Time (ms since the epoch) by which the answer must come; nothing is sent after it. */
  readonly deadline: number;
  /** Abandons the request. */
  readonly signal?: AbortSignal | undefined;
}

/** Counters of what the port sent, for benchmarks and metrics. */
export interface PortStats {
  /** Requests sent, by kind (`range`, `txn`, `watch`, `leaseGrant`, ...), hedged copies included. */
  readonly requests: Readonly<Record<string, number>>;
}

/** The etcd operations locksmith needs; see the module documentation. */
export interface EtcdPort {
  /** The endpoints, for messages. */
  readonly endpoints: readonly string[];
  /** How the port talks to etcd: `"gateway"` (JSON over HTTP) or `"grpc"`. */
  readonly transport: "gateway" | "grpc";
  /** Reads keys (linearizable). */
  range(request: RangeRequest, options: CallOptions): Promise<RangeResult>;
  /**
   * Runs a guarded transaction. A slow member may make it go to a second
   * member too (hedging): the first answer wins, so a failed guard may be
   * the work of this call's own other copy. A caller that acts on a failed
   * guard confirms by what the `failure` branch reads.
   */
  txn(request: TxnRequest, options: CallOptions): Promise<TxnResult>;
  /**
   * Opens one watch stream carrying `requests` (one watch each), on
   * `endpoint` when given (to spread hedged watches over members), else on
   * the endpoint that answered last. Only members with a leader serve it.
   */
  watch(
    requests: readonly WatchRequest[],
    handlers: WatchHandlers,
    endpoint?: string,
  ): WatchStream;
  /** Grants a lease of `ttlSeconds`; returns its id and granted TTL. */
  leaseGrant(
    ttlSeconds: number,
    options: CallOptions,
  ): Promise<{ id: string; ttl: number }>;
  /** Renews a lease; returns its remaining TTL in seconds, `0` when it has expired. */
  leaseKeepAlive(id: string, options: CallOptions): Promise<number>;
  /** Revokes a lease, deleting its keys; a lease that is gone already is fine. */
  leaseRevoke(id: string, options: CallOptions): Promise<void>;
  /** The endpoints in the order they would be tried now (the one that answered last first). */
  endpointOrder(): string[];
  /** What was sent so far. */
  stats(): PortStats;
  /** Ends every stream and connection. */
  close(): Promise<void>;
}

/** The result of a range operation of a transaction; `undefined` for any other operation's result. */
export function rangeOf(
  result: TxnOpResult | undefined,
): RangeResult | undefined {
  return result !== undefined && "range" in result ? result.range : undefined;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });
const lossyDecoder = new TextDecoder();

/** UTF-8 bytes of `text`. */
export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** `bytes` as UTF-8 text, or `undefined` when they are not valid UTF-8. */
export function textOf(data: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(data);
  } catch {
    return undefined;
  }
}

/** `bytes` as UTF-8 text, invalid sequences shown as U+FFFD (for messages only). */
export function lossyText(data: Uint8Array): string {
  return lossyDecoder.decode(data);
}

/** The end of the range of every key that starts with `prefix`. */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return new Uint8Array([0]); // every key
}

/** Whether two byte strings are equal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
