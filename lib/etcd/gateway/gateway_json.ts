/**
 * The JSON mapping of etcd's protobuf messages, as its gRPC gateway speaks
 * it: bytes are base64, int64 fields are decimal strings, fields at their
 * default value are left out. Pure conversions between the port's types
 * (`port.ts`) and those JSON bodies.
 *
 * @module
 */

import type {
  KeyValue,
  RangeRequest,
  RangeResult,
  TxnOpResult,
  TxnRequest,
  TxnResult,
  WatchEvent,
  WatchRequest,
} from "../client/port.ts";
import type { DispatchedMessage } from "../client/watch_dispatch.ts";
import { int, requestShapes } from "../client/wire_shapes.ts";

/** A JSON object as the gateway returns it. */
export type Json = Record<string, unknown>;

const EMPTY = new Uint8Array(0);

/** Base64 of `data`. */
export function b64(data: Uint8Array): string {
  return data.toBase64();
}

function fromB64(text: unknown): Uint8Array {
  return typeof text === "string" && text !== ""
    ? Uint8Array.fromBase64(text)
    : EMPTY;
}

function object(value: unknown): Json {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Json
    : {};
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** The revision in a response's `header`. */
export function headerRevision(json: Json): number {
  return int(object(json.header).revision);
}

/** A `KeyValue` from its JSON. */
export function keyValueFrom(json: unknown): KeyValue {
  const kv = object(json);
  return {
    key: fromB64(kv.key),
    value: fromB64(kv.value),
    createRevision: int(kv.create_revision),
    modRevision: int(kv.mod_revision),
    version: int(kv.version),
    lease: typeof kv.lease === "string" && kv.lease !== "" ? kv.lease : "0",
  };
}

/** The gateway's spelling: bytes in base64, enums by name. */
const SHAPES = requestShapes({
  bytes: b64,
  sort: (order, target) => ({ sort_order: order, sort_target: target }),
  compare: (target, result) => ({ target, result }),
});

/** The JSON of a range request. */
export function rangeJson(r: RangeRequest): Json {
  return SHAPES.range(r);
}

/** A range result from its JSON. */
export function rangeResultFrom(json: unknown): RangeResult {
  const r = object(json);
  return {
    kvs: list(r.kvs).map(keyValueFrom),
    count: int(r.count),
    revision: headerRevision(r),
  };
}

/** The JSON of a transaction. */
export function txnJson(t: TxnRequest): Json {
  return SHAPES.txn(t);
}

function opResultFrom(json: unknown): TxnOpResult {
  const r = object(json);
  if ("response_range" in r) {
    return { range: rangeResultFrom(r.response_range) };
  }
  if ("response_delete_range" in r) {
    return { deleted: int(object(r.response_delete_range).deleted) };
  }
  if ("response_txn" in r) return { txn: txnResultFrom(r.response_txn) };
  return { put: true };
}

/** A transaction's result from its JSON. */
export function txnResultFrom(json: unknown): TxnResult {
  const r = object(json);
  return {
    succeeded: r.succeeded === true,
    revision: headerRevision(r),
    responses: list(r.responses).map(opResultFrom),
  };
}

/** The JSON of one watch create request. */
export function watchCreateJson(w: WatchRequest): Json {
  return SHAPES.watchCreate(w);
}

/** One message of a watch stream, decoded (as `grpc_messages.ts` decodes gRPC's), or the gateway's error line. */
export type WatchMessage =
  | DispatchedMessage<number>
  | { readonly kind: "error"; readonly message: string };

/** Decodes one line of a watch stream (`{"result": {...}}` or `{"error": {...}}`). */
export function watchMessageFrom(json: Json): WatchMessage {
  if (!("result" in json)) {
    const error = object(json.error);
    const message = typeof error.message === "string"
      ? error.message
      : JSON.stringify(json).slice(0, 200);
    return { kind: "error", message };
  }
  const r = object(json.result);
  const watchId = int(r.watch_id);
  if (r.canceled === true) {
    return {
      kind: "canceled",
      compactRevision: int(r.compact_revision),
      reason: typeof r.cancel_reason === "string" ? r.cancel_reason : "",
    };
  }
  if (r.created === true) {
    return { kind: "created", watchId, revision: headerRevision(r) };
  }
  const events = list(r.events).map((e): WatchEvent => {
    const event = object(e);
    return {
      type: event.type === "DELETE" ? "DELETE" : "PUT",
      kv: keyValueFrom(event.kv),
      prevKv: event.prev_kv === undefined
        ? undefined
        : keyValueFrom(event.prev_kv),
    };
  });
  if (events.length === 0) return { kind: "progress" };
  return { kind: "events", watchId, events };
}
