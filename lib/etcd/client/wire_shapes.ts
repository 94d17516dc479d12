/**
 * The requests locksmith sends, in the shape of etcd's protobuf messages
 * (field names as in `rpc.proto`), for both wires: the JSON gateway
 * (`gateway_json.ts`: bytes as base64, enums as names) and gRPC
 * (`grpc_messages.ts`: bytes as `Buffer`s, enums as numbers). A
 * {@link WireSpelling} says how one wire spells bytes, sorting and
 * comparisons; {@link requestShapes} builds the messages from the port's
 * types (`port.ts`) with it.
 *
 * @module
 */

import type {
  Compare,
  RangeRequest,
  SortTarget,
  TxnOp,
  TxnRequest,
  WatchRequest,
} from "./port.ts";

/** A decimal int64 (or number) as a number; `0` when absent. */
export function int(value: unknown): number {
  if (typeof value === "number") return value;
  if (typeof value === "string" && value !== "") return Number(value);
  return 0;
}

/** How one wire spells what differs: bytes (`B`), sorting (`S`) and a comparison's target and result (`C`). */
export interface WireSpelling<B, S, C> {
  /** Bytes as the wire carries them. */
  bytes(data: Uint8Array): B;
  /** The `sort_order` and `sort_target` fields of a sorted range. */
  sort(order: "ASCEND" | "DESCEND", target: SortTarget): S;
  /** The `target` and `result` fields of a comparison. */
  compare(target: Compare["target"], result: Compare["result"]): C;
}

/** A range request's message without sorting. */
export type RangeFields<B> = {
  key: B;
  range_end?: B;
  limit?: string;
  keys_only?: boolean;
  count_only?: boolean;
  max_create_revision?: string;
  revision?: string;
};

/** A range request's message. */
export type RangeShape<B, S> = RangeFields<B> | (RangeFields<B> & S);

/** A comparison's message. */
export type CompareShape<B, C> = C & {
  key: B;
  range_end?: B;
  value?: B;
  version?: string;
  create_revision?: string;
  mod_revision?: string;
};

/** One operation's message. */
export type OpShape<B, S, C> =
  | { request_put: { key: B; value: B; lease?: string } }
  | { request_delete_range: { key: B; range_end?: B } }
  | { request_range: RangeShape<B, S> }
  | { request_txn: TxnShape<B, S, C> };

/** A transaction's message. */
export type TxnShape<B, S, C> = {
  compare: CompareShape<B, C>[];
  success: OpShape<B, S, C>[];
  failure: OpShape<B, S, C>[];
};

/** A message creating one watch. */
export type WatchCreateShape<B> = {
  create_request: {
    key: B;
    range_end?: B;
    start_revision?: string;
    prev_kv?: boolean;
  };
};

/** The request messages of one wire; see {@link requestShapes}. */
export interface RequestShapes<B, S, C> {
  /** A range request's message. */
  range(r: RangeRequest): RangeShape<B, S>;
  /** A transaction's message. */
  txn(t: TxnRequest): TxnShape<B, S, C>;
  /** The message creating one watch. */
  watchCreate(w: WatchRequest): WatchCreateShape<B>;
}

/** The request messages as `spelling` spells them; fields at their default value are left out. */
export function requestShapes<B, S, C>(
  spelling: WireSpelling<B, S, C>,
): RequestShapes<B, S, C> {
  const { bytes } = spelling;
  const withEnd = <T extends object>(
    base: T,
    end: Uint8Array | undefined,
  ): T & { range_end?: B } => end ? { ...base, range_end: bytes(end) } : base;
  const range = (r: RangeRequest): RangeShape<B, S> => ({
    ...withEnd({ key: bytes(r.key) }, r.rangeEnd),
    ...(r.limit ? { limit: String(r.limit) } : {}),
    ...(r.sortOrder ? spelling.sort(r.sortOrder, r.sortTarget ?? "KEY") : {}),
    ...(r.keysOnly ? { keys_only: true } : {}),
    ...(r.countOnly ? { count_only: true } : {}),
    ...(r.maxCreateRevision
      ? { max_create_revision: String(r.maxCreateRevision) }
      : {}),
    ...(r.revision ? { revision: String(r.revision) } : {}),
  });
  const compare = (c: Compare): CompareShape<B, C> => {
    const base = { key: bytes(c.key), ...spelling.compare(c.target, c.result) };
    switch (c.target) {
      case "VALUE":
        return { ...base, value: bytes(c.value) };
      case "VERSION":
        return { ...withEnd(base, c.rangeEnd), version: String(c.value) };
      case "CREATE":
        return {
          ...withEnd(base, c.rangeEnd),
          create_revision: String(c.value),
        };
      case "MOD":
        return { ...withEnd(base, c.rangeEnd), mod_revision: String(c.value) };
    }
  };
  const op = (op: TxnOp): OpShape<B, S, C> => {
    if ("put" in op) {
      return {
        request_put: {
          key: bytes(op.put.key),
          value: bytes(op.put.value),
          ...(op.put.lease && op.put.lease !== "0"
            ? { lease: op.put.lease }
            : {}),
        },
      };
    }
    if ("deleteRange" in op) {
      return {
        request_delete_range: withEnd(
          { key: bytes(op.deleteRange.key) },
          op.deleteRange.rangeEnd,
        ),
      };
    }
    if ("range" in op) return { request_range: range(op.range) };
    return { request_txn: txn(op.txn) };
  };
  const txn = (t: TxnRequest): TxnShape<B, S, C> => ({
    compare: t.compare.map(compare),
    success: t.success.map(op),
    failure: t.failure.map(op),
  });
  const watchCreate = (w: WatchRequest): WatchCreateShape<B> => ({
    create_request: {
      ...withEnd({ key: bytes(w.key) }, w.rangeEnd),
      ...(w.startRevision ? { start_revision: String(w.startRevision) } : {}),
      ...(w.prevKv ? { prev_kv: true } : {}),
    },
  });
  return { range, txn, watchCreate };
}
