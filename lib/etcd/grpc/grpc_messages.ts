/**
 * etcd's protobuf messages as `npm:etcd3` exchanges them (its loader keeps
 * field names, turns int64 into decimal strings, bytes into `Buffer`s and
 * leaves unset message fields `null`), converted from and to the port's
 * types (`port.ts`). Pure conversions, the gRPC twin of `gateway_json.ts`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  CompareResult,
  CompareTarget,
  type IKeyValue,
  type IRangeRequest,
  type IRangeResponse,
  type ITxnRequest,
  type ITxnResponse,
  type IWatchCreateRequest,
  type IWatchResponse,
  SortOrder,
  SortTarget,
} from "npm:etcd3@1.1.2";
import type {
  KeyValue,
  RangeRequest,
  RangeResult,
  SortTarget as PortSortTarget,
  TxnOpResult,
  TxnRequest,
  TxnResult,
  WatchEvent,
  WatchRequest,
} from "../client/port.ts";
import { int, requestShapes } from "../client/wire_shapes.ts";
import type { DispatchedMessage } from "../client/watch_dispatch.ts";

/** `data` as a `Buffer` sharing its memory (what etcd3's types ask for). */
export function buffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** A copy of `data` as a plain `Uint8Array` (etcd3 gives pooled `Buffer`s). */
function plain(data: Uint8Array | null | undefined): Uint8Array {
  return data ? new Uint8Array(data) : new Uint8Array(0);
}

/** The revision in a response's `header`. */
export function headerRevision(
  response: { header?: { revision?: unknown } | null },
): number {
  return int(response.header?.revision);
}

/** A `KeyValue` from etcd3's message. */
export function keyValueFrom(kv: IKeyValue): KeyValue {
  const lease = String(kv.lease ?? "0");
  return {
    key: plain(kv.key),
    value: plain(kv.value),
    createRevision: int(kv.create_revision),
    modRevision: int(kv.mod_revision),
    version: int(kv.version),
    lease: lease === "" ? "0" : lease,
  };
}

const SORT_TARGETS: Record<PortSortTarget, SortTarget> = {
  KEY: SortTarget.Key,
  VERSION: SortTarget.Version,
  CREATE: SortTarget.Create,
  MOD: SortTarget.Mod,
  VALUE: SortTarget.Value,
};

const COMPARE_TARGETS = {
  VALUE: CompareTarget.Value,
  VERSION: CompareTarget.Version,
  CREATE: CompareTarget.Create,
  MOD: CompareTarget.Mod,
} as const;

const COMPARE_RESULTS = {
  EQUAL: CompareResult.Equal,
  GREATER: CompareResult.Greater,
  LESS: CompareResult.Less,
  NOT_EQUAL: CompareResult.NotEqual,
} as const;

/** etcd3's spelling: bytes as `Buffer`s, enums as numbers. */
const SHAPES = requestShapes({
  bytes: buffer,
  sort: (order, target) => ({
    sort_order: order === "ASCEND" ? SortOrder.Ascend : SortOrder.Descend,
    sort_target: SORT_TARGETS[target],
  }),
  compare: (target, result) => ({
    target: COMPARE_TARGETS[target],
    result: COMPARE_RESULTS[result],
  }),
});

/** etcd3's message of a range request. */
export function rangeMessage(r: RangeRequest): IRangeRequest {
  return SHAPES.range(r);
}

/** A range result from etcd3's message. */
export function rangeResultFrom(r: IRangeResponse): RangeResult {
  return {
    kvs: (r.kvs ?? []).map(keyValueFrom),
    count: int(r.count),
    revision: headerRevision(r),
  };
}

/** etcd3's message of a transaction. */
export function txnMessage(t: TxnRequest): ITxnRequest {
  return SHAPES.txn(t);
}

/** One response of a transaction branch; etcd3 sets only the field of the op's kind. */
interface ResponseOp {
  readonly response_range?: IRangeResponse | null;
  readonly response_delete_range?: { deleted?: string } | null;
  readonly response_txn?: ITxnResponse | null;
}

function opResultFrom(r: ResponseOp): TxnOpResult {
  if (r.response_range) return { range: rangeResultFrom(r.response_range) };
  if (r.response_delete_range) {
    return { deleted: int(r.response_delete_range.deleted) };
  }
  if (r.response_txn) return { txn: txnResultFrom(r.response_txn) };
  return { put: true };
}

/** A transaction's result from etcd3's message. */
export function txnResultFrom(r: ITxnResponse): TxnResult {
  return {
    succeeded: r.succeeded === true,
    revision: headerRevision(r),
    responses: ((r.responses ?? []) as ResponseOp[]).map(opResultFrom),
  };
}

/** etcd3's message creating one watch. */
export function watchCreateMessage(
  w: WatchRequest,
): { create_request: IWatchCreateRequest } {
  return SHAPES.watchCreate(w);
}

/** One message of a watch stream, decoded (as `gateway_json.ts` decodes the gateway's). */
export type WatchMessage = DispatchedMessage<string>;

/** Decodes one response of a watch stream. */
export function watchMessageFrom(r: IWatchResponse): WatchMessage {
  const watchId = String(r.watch_id ?? "0");
  if (r.canceled) {
    return {
      kind: "canceled",
      compactRevision: int(r.compact_revision),
      reason: r.cancel_reason ?? "",
    };
  }
  if (r.created) {
    return { kind: "created", watchId, revision: headerRevision(r) };
  }
  const events = (r.events ?? []).map((e): WatchEvent => ({
    // etcd3's copy of the protos spells the enum `Put` / `Delete`.
    type: String(e.type).toUpperCase() === "DELETE" ? "DELETE" : "PUT",
    kv: keyValueFrom(e.kv),
    prevKv: e.prev_kv ? keyValueFrom(e.prev_kv) : undefined,
  }));
  if (events.length === 0) return { kind: "progress" };
  return { kind: "events", watchId, events };
}
