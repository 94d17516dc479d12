/**
 * One conformance suite for the etcd port's two adapters, the JSON gateway
 * (`openGatewayPort`) and gRPC (`openGrpcPort`), on real etcd servers: the
 * same requests must give the same answers, the same watch events and ends,
 * and the same errors. gRPC runs once more on a server without the gateway,
 * reached through `openEtcdPort`'s fallback.
 */

import assert from "node:assert/strict";
import {
  EtcdAuthenticationError,
  EtcdPermissionDeniedError,
  EtcdRequestError,
  EtcdUnavailableError,
} from "../lib/common/errors.ts";
import {
  NoGatewayError,
  openGatewayPort,
} from "../lib/etcd/gateway/gateway.ts";
import { openGrpcPort } from "../lib/etcd/grpc/grpc.ts";
import { openEtcdPort } from "../lib/etcd/open.ts";
import type { EtcdConnectionOptions } from "../lib/etcd/client/etcd_options.ts";
import {
  bytes,
  type CallOptions,
  type EtcdPort,
  prefixEnd,
  textOf,
  type TxnOp,
  type WatchEnd,
  type WatchEvent,
  type WatchHandlers,
  type WatchRequest,
} from "../lib/etcd/client/port.ts";
import { startBlackHole } from "./harness/black_hole.ts";
import { freePorts } from "./harness/ports.ts";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import { makeTestCertificates } from "./harness/tls.ts";
import { requireProgram } from "./harness/tools.ts";

type Open = (options: EtcdConnectionOptions) => Promise<EtcdPort>;

/** The two adapters, by the transport they report. */
const ADAPTERS: readonly { name: "gateway" | "grpc"; open: Open }[] = [
  { name: "gateway", open: openGatewayPort },
  { name: "grpc", open: openGrpcPort },
];

const TIMEOUT_MS = 5_000;

function soon(ms = TIMEOUT_MS): CallOptions {
  return { deadline: Date.now() + ms };
}

async function withPort<T>(
  open: Open,
  options: EtcdConnectionOptions,
  use: (port: EtcdPort) => Promise<T>,
): Promise<T> {
  const port = await open(options);
  try {
    return await use(port);
  } finally {
    await port.close();
  }
}

const text = (data: Uint8Array): string => textOf(data) ?? "<not UTF-8>";

/** Writes `key` (unconditionally) and returns the store's revision after it. */
async function put(
  port: EtcdPort,
  key: string,
  value: string,
  lease?: string,
): Promise<number> {
  const op: TxnOp = {
    put: { key: bytes(key), value: bytes(value), ...(lease ? { lease } : {}) },
  };
  return (await port.txn({ compare: [], success: [op], failure: [] }, soon()))
    .revision;
}

async function read(port: EtcdPort, key: string): Promise<string | undefined> {
  const { kvs } = await port.range({ key: bytes(key) }, soon());
  return kvs[0] ? text(kvs[0].value) : undefined;
}

const freePort = (): number => freePorts(1)[0]!;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Records what a watch stream reports. */
class Recorder implements WatchHandlers {
  readonly created: number[] = [];
  readonly events: { index: number; event: WatchEvent }[] = [];
  readonly ends: WatchEnd[] = [];

  onCreated(revision: number): void {
    this.created.push(revision);
  }

  onEvents(index: number, events: readonly WatchEvent[]): void {
    for (const event of events) this.events.push({ index, event });
  }

  onEnd(end: WatchEnd): void {
    this.ends.push(end);
  }

  /** `type key=value` of each event, for messages and comparisons. */
  seen(index?: number): string[] {
    return this.events.filter((e) => index === undefined || e.index === index)
      .map(({ event }) =>
        `${event.type} ${text(event.kv.key)}=${text(event.kv.value)}`
      );
  }

  async until(
    what: string,
    done: () => boolean,
    timeoutMs = 10_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) {
        throw new Error(
          `no ${what} within ${timeoutMs} ms; created ${this.created.length}, events ${
            JSON.stringify(this.seen())
          }, ends ${JSON.stringify(this.ends)}`,
        );
      }
      await sleep(20);
    }
  }
}

function watch(
  port: EtcdPort,
  requests: readonly WatchRequest[],
): { recorder: Recorder; cancel(): void } {
  const recorder = new Recorder();
  const stream = port.watch(requests, recorder);
  return { recorder, cancel: () => stream.cancel() };
}

/** Runs etcdctl (v3 API) against `endpoint`. */
async function etcdctl(
  endpoint: string,
  ...args: string[]
): Promise<string> {
  await requireProgram("etcdctl");
  const out = await new Deno.Command("etcdctl", {
    args: [`--endpoints=${endpoint}`, ...args],
    env: { ETCDCTL_API: "3" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoded = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `etcdctl ${args.join(" ")} failed: ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return decoded;
}

/** Library-internal texts that must never reach a message. */
const INTERNAL_TEXT =
  /circuit breaker|UNAVAILABLE|DEADLINE_EXCEEDED|No connection established|Resolution note|RST_STREAM|internal client error|\b\d{1,2} [A-Z_]{5,}:|Please report/;

function assertPlainMessage(error: unknown, endpoints: readonly string[]) {
  assert.ok(error instanceof Error, String(error));
  for (const endpoint of endpoints) {
    assert.ok(
      error.message.includes(endpoint),
      `"${error.message}" names ${endpoint}`,
    );
  }
  assert.doesNotMatch(error.message, INTERNAL_TEXT);
  assert.doesNotMatch(error.message, /\n/);
}

/**
 * The behaviours every adapter must share, as steps of `t` on `cluster`;
 * `open` opens the port under test, whose transport must become `transport`.
 */
async function conformance(
  t: Deno.TestContext,
  label: string,
  transport: "gateway" | "grpc",
  open: () => Promise<EtcdPort>,
  cluster: EtcdCluster,
): Promise<void> {
  let steps = 0;
  const step = (
    name: string,
    body: (port: EtcdPort, p: string) => Promise<void>,
  ) =>
    t.step(`${label}: ${name}`, async () => {
      const port = await open();
      try {
        await body(port, `${label}/${++steps}/`);
      } finally {
        await port.close();
      }
    });

  await step(
    "range: single key, prefix, limit, sort, keys and count only, max create revision",
    async (port, p) => {
      const first = await put(port, `${p}a`, "3");
      await put(port, `${p}b`, "1");
      const last = await put(port, `${p}c`, "2");
      assert.equal(port.transport, transport);
      const one = await port.range({ key: bytes(`${p}b`) }, soon());
      assert.equal(one.kvs.length, 1);
      assert.equal(text(one.kvs[0]!.value), "1");
      assert.equal(one.kvs[0]!.version, 1);
      assert.equal(one.kvs[0]!.lease, "0");
      assert.equal(one.kvs[0]!.createRevision, first + 1);
      assert.equal(one.kvs[0]!.modRevision, first + 1);
      assert.equal(one.count, 1);
      assert.ok(one.revision >= last);
      const range = { key: bytes(p), rangeEnd: prefixEnd(bytes(p)) };
      const all = await port.range(range, soon());
      assert.deepEqual(all.kvs.map((kv) => text(kv.key)), [
        `${p}a`,
        `${p}b`,
        `${p}c`,
      ]);
      assert.equal(all.count, 3);
      const limited = await port.range({ ...range, limit: 2 }, soon());
      assert.equal(limited.kvs.length, 2);
      assert.equal(limited.count, 3);
      const byValue = await port.range(
        { ...range, sortTarget: "VALUE", sortOrder: "DESCEND" },
        soon(),
      );
      assert.deepEqual(byValue.kvs.map((kv) => text(kv.value)), [
        "3",
        "2",
        "1",
      ]);
      const newest = await port.range(
        { ...range, sortTarget: "CREATE", sortOrder: "DESCEND", limit: 1 },
        soon(),
      );
      assert.equal(text(newest.kvs[0]!.key), `${p}c`);
      const keysOnly = await port.range({ ...range, keysOnly: true }, soon());
      assert.deepEqual(keysOnly.kvs.map((kv) => kv.value.length), [0, 0, 0]);
      assert.equal(keysOnly.kvs[2]!.modRevision, last);
      const countOnly = await port.range({ ...range, countOnly: true }, soon());
      assert.deepEqual([countOnly.kvs.length, countOnly.count], [0, 3]);
      const early = await port.range(
        { ...range, maxCreateRevision: first + 1 },
        soon(),
      );
      assert.deepEqual(early.kvs.map((kv) => text(kv.key)), [`${p}a`, `${p}b`]);
      const absent = await port.range({ key: bytes(`${p}zz`) }, soon());
      assert.deepEqual([absent.kvs.length, absent.count], [0, 0]);
      const binary = new Uint8Array([0, 0xff, 0x80, 10]);
      await port.txn({
        compare: [],
        success: [{ put: { key: bytes(`${p}bin`), value: binary } }],
        failure: [],
      }, soon());
      assert.deepEqual(
        (await port.range({ key: bytes(`${p}bin`) }, soon())).kvs[0]!.value,
        binary,
      );
    },
  );

  await step(
    "txn: success and failure branches, compares on version, create, mod and value",
    async (port, p) => {
      const key = bytes(`${p}k`);
      const create = {
        compare: [{
          key,
          target: "VERSION",
          result: "EQUAL",
          value: 0,
        }] as const,
        success: [{ put: { key, value: bytes("v1") } }],
        failure: [{ range: { key } }],
      };
      const created = await port.txn(create, soon());
      assert.equal(created.succeeded, true);
      assert.deepEqual(created.responses, [{ put: true }]);
      const again = await port.txn(create, soon());
      assert.equal(again.succeeded, false);
      assert.equal(again.revision, created.revision);
      const [seen] = again.responses;
      assert.ok(seen && "range" in seen);
      assert.equal(text(seen.range.kvs[0]!.value), "v1");
      assert.equal(seen.range.kvs[0]!.modRevision, created.revision);
      const rev = created.revision;
      const cases: [
        TxnOp[],
        boolean,
        Parameters<EtcdPort["txn"]>[0]["compare"],
      ][] = [
        [[], true, [{ key, target: "MOD", result: "EQUAL", value: rev }]],
        [[], false, [{ key, target: "MOD", result: "EQUAL", value: rev - 1 }]],
        [[], true, [{ key, target: "CREATE", result: "EQUAL", value: rev }]],
        [[], true, [{ key, target: "VERSION", result: "GREATER", value: 0 }]],
        [[], true, [{ key, target: "VERSION", result: "LESS", value: 2 }]],
        [[], false, [{
          key,
          target: "VERSION",
          result: "NOT_EQUAL",
          value: 1,
        }]],
        [[], true, [{
          key,
          target: "VALUE",
          result: "EQUAL",
          value: bytes("v1"),
        }]],
        [[], false, [{
          key,
          target: "VALUE",
          result: "NOT_EQUAL",
          value: bytes("v1"),
        }]],
        [[], false, [{
          key: bytes(`${p}absent`),
          target: "VALUE",
          result: "NOT_EQUAL",
          value: bytes("x"),
        }]],
      ];
      for (const [success, expected, compare] of cases) {
        const res = await port.txn({ compare, success, failure: [] }, soon());
        assert.equal(res.succeeded, expected, JSON.stringify(compare));
      }
      const swapped = await port.txn({
        compare: [{ key, target: "MOD", result: "EQUAL", value: rev }],
        success: [
          { put: { key, value: bytes("v2") } },
          { deleteRange: { key: bytes(`${p}absent`) } },
        ],
        failure: [],
      }, soon());
      assert.equal(swapped.succeeded, true);
      assert.deepEqual(swapped.responses, [{ put: true }, { deleted: 0 }]);
      assert.equal(swapped.revision, rev + 1);
      assert.equal(await read(port, `${p}k`), "v2");
    },
  );

  await step(
    "txn: nested transactions, deletes and reads that see the branch's writes",
    async (port, p) => {
      await put(port, `${p}x`, "1");
      await put(port, `${p}y`, "2");
      const res = await port.txn({
        compare: [],
        success: [
          { put: { key: bytes(`${p}z`), value: bytes("3") } },
          {
            range: {
              key: bytes(p),
              rangeEnd: prefixEnd(bytes(p)),
              countOnly: true,
            },
          },
          {
            txn: {
              compare: [{
                key: bytes(`${p}x`),
                target: "VALUE",
                result: "EQUAL",
                value: bytes("1"),
              }],
              success: [
                {
                  deleteRange: {
                    key: bytes(`${p}x`),
                    rangeEnd: bytes(`${p}z`),
                  },
                },
                { range: { key: bytes(`${p}z`) } },
              ],
              failure: [],
            },
          },
          {
            txn: {
              compare: [{
                key: bytes(`${p}x`),
                target: "VERSION",
                result: "GREATER",
                value: 5,
              }],
              success: [],
              failure: [{ range: { key: bytes(`${p}y`) } }],
            },
          },
        ],
        failure: [],
      }, soon());
      assert.equal(res.succeeded, true);
      const [putResult, count, inner, other] = res.responses;
      assert.deepEqual(putResult, { put: true });
      assert.ok(count && "range" in count);
      assert.equal(count.range.count, 3);
      assert.ok(inner && "txn" in inner);
      assert.equal(inner.txn.succeeded, true);
      assert.deepEqual(inner.txn.responses[0], { deleted: 2 });
      const innerRead = inner.txn.responses[1];
      assert.ok(innerRead && "range" in innerRead);
      assert.equal(text(innerRead.range.kvs[0]!.value), "3");
      assert.ok(other && "txn" in other);
      assert.equal(other.txn.succeeded, false);
      const otherRead = other.txn.responses[0];
      assert.ok(otherRead && "range" in otherRead);
      assert.equal(
        otherRead.range.kvs.length,
        0,
        "y was deleted earlier in the branch",
      );
      assert.equal(await read(port, `${p}x`), undefined);
    },
  );

  await step(
    "txn: compares over a range; an empty range compares as an absent key",
    async (port, p) => {
      const all = {
        key: bytes(`${p}r/`),
        rangeEnd: prefixEnd(bytes(`${p}r/`)),
      };
      const empty = {
        key: bytes(`${p}none/`),
        rangeEnd: prefixEnd(bytes(`${p}none/`)),
      };
      const first = await put(port, `${p}r/1`, "a");
      await put(port, `${p}r/2`, "b");
      const holds = async (
        compare: Parameters<EtcdPort["txn"]>[0]["compare"],
      ) =>
        (await port.txn({ compare, success: [], failure: [] }, soon()))
          .succeeded;
      assert.equal(
        await holds([{ ...all, target: "VERSION", result: "EQUAL", value: 1 }]),
        true,
      );
      assert.equal(
        await holds([{
          ...all,
          target: "CREATE",
          result: "GREATER",
          value: first,
        }]),
        false,
      );
      assert.equal(
        await holds([{
          ...all,
          target: "MOD",
          result: "LESS",
          value: first + 2,
        }]),
        true,
      );
      assert.equal(
        await holds([{
          ...empty,
          target: "VERSION",
          result: "EQUAL",
          value: 0,
        }]),
        true,
      );
      assert.equal(
        await holds([{
          ...empty,
          target: "CREATE",
          result: "GREATER",
          value: 0,
        }]),
        false,
      );
    },
  );

  await step(
    "txn: a put with an unknown lease is refused with NOT_FOUND, naming the endpoint",
    async (port, p) => {
      const error = await port.txn({
        compare: [],
        success: [{
          put: { key: bytes(`${p}k`), value: bytes("v"), lease: "12345" },
        }],
        failure: [],
      }, soon()).then(() => undefined, (e) => e);
      assert.ok(error instanceof EtcdRequestError, String(error));
      assert.equal(error.code, 5);
      assert.match(error.message, /lease not found/);
      assertPlainMessage(error, [cluster.endpoints[0]!]);
    },
  );

  await step(
    "leases: grant, keep alive, revoke deletes the keys; a lease gone already revokes fine",
    async (port, p) => {
      const lease = await port.leaseGrant(60, soon());
      assert.match(lease.id, /^[1-9]\d*$/);
      assert.equal(lease.ttl, 60);
      await put(port, `${p}held`, "v", lease.id);
      const { kvs } = await port.range({ key: bytes(`${p}held`) }, soon());
      assert.equal(kvs[0]!.lease, lease.id);
      const remaining = await port.leaseKeepAlive(lease.id, soon());
      assert.ok(remaining > 50 && remaining <= 60, String(remaining));
      await port.leaseRevoke(lease.id, soon());
      assert.equal(await read(port, `${p}held`), undefined);
      assert.equal(await port.leaseKeepAlive(lease.id, soon()), 0);
      await port.leaseRevoke(lease.id, soon());
      await port.leaseRevoke("424242", soon());
    },
  );

  await step(
    "leases and watch: expiry deletes the keys, reports DELETE events, keeps alive as 0",
    async (port, p) => {
      const lease = await port.leaseGrant(1, soon());
      await put(port, `${p}k`, "v", lease.id);
      const w = watch(port, [{ key: bytes(`${p}k`), prevKv: true }]);
      try {
        await w.recorder.until(
          "DELETE on lease expiry",
          () => w.recorder.events.length > 0,
        );
        const { event } = w.recorder.events[0]!;
        assert.equal(event.type, "DELETE");
        assert.equal(text(event.prevKv!.value), "v");
        assert.equal(event.prevKv!.lease, lease.id);
        assert.equal(await read(port, `${p}k`), undefined);
        assert.equal(await port.leaseKeepAlive(lease.id, soon()), 0);
      } finally {
        w.cancel();
      }
    },
  );

  await step(
    "watch: puts and deletes with previous values; onCreated once with the revision",
    async (port, p) => {
      const before = await put(port, `${p}k`, "0");
      const w = watch(port, [{ key: bytes(`${p}k`), prevKv: true }]);
      try {
        await w.recorder.until("created", () => w.recorder.created.length > 0);
        assert.ok(w.recorder.created[0]! >= before);
        await put(port, `${p}k`, "1");
        await put(port, `${p}other`, "x");
        await port.txn({
          compare: [],
          success: [{ deleteRange: { key: bytes(`${p}k`) } }],
          failure: [],
        }, soon());
        // A last write marks the end: every event before it has arrived.
        await put(port, `${p}k`, "end");
        await w.recorder.until(
          "the end mark",
          () => w.recorder.seen().includes(`PUT ${p}k=end`),
        );
        assert.deepEqual(w.recorder.seen(), [
          `PUT ${p}k=1`,
          `DELETE ${p}k=`,
          `PUT ${p}k=end`,
        ]);
        const [putEvent, deleteEvent] = w.recorder.events.map((e) => e.event);
        assert.equal(text(putEvent!.prevKv!.value), "0");
        assert.equal(putEvent!.kv.version, 2);
        assert.equal(deleteEvent!.kv.version, 0);
        assert.equal(deleteEvent!.kv.modRevision, putEvent!.kv.modRevision + 2);
        assert.equal(text(deleteEvent!.prevKv!.value), "1");
        assert.equal(w.recorder.created.length, 1);
        assert.deepEqual(w.recorder.ends, []);
      } finally {
        w.cancel();
      }
    },
  );

  await step(
    "watch: several watches in one stream report by request index",
    async (port, p) => {
      await put(port, `${p}one`, "0"); // openEtcdPort's port picks its transport on a first request
      const w = watch(port, [
        { key: bytes(`${p}one`) },
        { key: bytes(`${p}many/`), rangeEnd: prefixEnd(bytes(`${p}many/`)) },
        { key: bytes(`${p}one`) },
      ]);
      try {
        await w.recorder.until("created", () => w.recorder.created.length > 0);
        await put(port, `${p}many/a`, "1");
        await put(port, `${p}one`, "2");
        await put(port, `${p}many/b`, "3");
        // Last writes mark the end of each watch: every event before has arrived.
        await put(port, `${p}one`, "end");
        await put(port, `${p}many/end`, "end");
        await w.recorder.until(
          "the end marks",
          () =>
            [0, 1, 2].every((i) =>
              w.recorder.seen(i).some((e) => e.endsWith("=end"))
            ),
        );
        assert.deepEqual(w.recorder.seen(0), [
          `PUT ${p}one=2`,
          `PUT ${p}one=end`,
        ]);
        assert.deepEqual(w.recorder.seen(1), [
          `PUT ${p}many/a=1`,
          `PUT ${p}many/b=3`,
          `PUT ${p}many/end=end`,
        ]);
        assert.deepEqual(w.recorder.seen(2), [
          `PUT ${p}one=2`,
          `PUT ${p}one=end`,
        ]);
        assert.equal(w.recorder.created.length, 1);
      } finally {
        w.cancel();
      }
    },
  );

  await step(
    "watch: starting at a read's revision + 1 loses no event written in between",
    async (port, p) => {
      await put(port, `${p}k`, "0");
      const { revision } = await port.range({ key: bytes(`${p}k`) }, soon());
      await put(port, `${p}k`, "1");
      await put(port, `${p}k`, "2");
      const w = watch(port, [
        { key: bytes(`${p}k`), startRevision: revision + 1 },
        { key: bytes(`${p}k`), startRevision: revision + 2 },
      ]);
      try {
        await w.recorder.until("created", () => w.recorder.created.length > 0);
        await put(port, `${p}k`, "3");
        await w.recorder.until("5 events", () => w.recorder.events.length >= 5);
        assert.deepEqual(w.recorder.seen(0), [
          `PUT ${p}k=1`,
          `PUT ${p}k=2`,
          `PUT ${p}k=3`,
        ]);
        assert.deepEqual(w.recorder.seen(1), [`PUT ${p}k=2`, `PUT ${p}k=3`]);
      } finally {
        w.cancel();
      }
    },
  );

  await step(
    "watch: a compacted start revision ends the stream as compacted",
    async (port, p) => {
      const first = await put(port, `${p}k`, "1");
      const last = await put(port, `${p}k`, "2");
      await etcdctl(cluster.endpoints[0]!, "compact", String(last));
      const w = watch(port, [{ key: bytes(`${p}k`), startRevision: first }]);
      await w.recorder.until("end", () => w.recorder.ends.length > 0);
      assert.deepEqual(w.recorder.ends, [{
        kind: "compacted",
        compactRevision: last,
      }]);
      assert.deepEqual(w.recorder.events, []);
    },
  );

  await step("watch: cancel() ends the stream silently", async (port, p) => {
    await put(port, `${p}k`, "0"); // openEtcdPort's port picks its transport on a first request
    // A watch left open sees each write: the cancelled ones would have by then.
    const control = watch(port, [{ key: bytes(`${p}k`) }]);
    const w = watch(port, [{ key: bytes(`${p}k`) }]);
    try {
      await control.recorder.until(
        "created",
        () => control.recorder.created.length > 0,
      );
      await w.recorder.until("created", () => w.recorder.created.length > 0);
      w.cancel();
      await put(port, `${p}k`, "1");
      await control.recorder.until(
        "the write",
        () => control.recorder.seen().includes(`PUT ${p}k=1`),
      );
      assert.deepEqual(w.recorder.events, []);
      assert.deepEqual(w.recorder.ends, []);
      const early = watch(port, [{ key: bytes(`${p}k`) }]);
      early.cancel();
      await put(port, `${p}k`, "2");
      await control.recorder.until(
        "the second write",
        () => control.recorder.seen().includes(`PUT ${p}k=2`),
      );
      assert.deepEqual([early.recorder.created, early.recorder.ends], [[], []]);
    } finally {
      control.cancel();
    }
  });

  await step("stats: requests counted by kind", async (port, p) => {
    await port.range({ key: bytes(`${p}k`) }, soon());
    await put(port, `${p}k`, "1");
    await put(port, `${p}k`, "2");
    const lease = await port.leaseGrant(60, soon());
    await port.leaseKeepAlive(lease.id, soon());
    await port.leaseRevoke(lease.id, soon());
    watch(port, [{ key: bytes(`${p}k`) }]).cancel();
    const { requests } = port.stats();
    // The fallback's first request went to the gateway, which had none.
    assert.equal(requests.range, label === "fallback" ? 2 : 1);
    assert.equal(requests.txn, 2);
    assert.equal(requests.watch, 1);
    assert.equal(requests.leaseGrant, 1);
    assert.equal(requests.leaseKeepAlive, 1);
    assert.equal(requests.leaseRevoke, 1);
  });
}

Deno.test("both adapters give etcd's answers for range, txn, leases and watches", async (t) => {
  const cluster = await startEtcd();
  try {
    for (const { name, open } of ADAPTERS) {
      await conformance(
        t,
        name,
        name,
        () => open({ endpoints: cluster.endpoints, timeoutMs: TIMEOUT_MS }),
        cluster,
      );
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("without the JSON gateway, openEtcdPort falls back to gRPC and behaves the same", async (t) => {
  const cluster = await startEtcd({
    extraArgs: ["--enable-grpc-gateway=false"],
  });
  try {
    const options = { endpoints: cluster.endpoints, timeoutMs: TIMEOUT_MS };
    await t.step(
      "the gateway adapter alone reports NoGatewayError",
      async () => {
        await withPort(openGatewayPort, options, async (port) => {
          await assert.rejects(
            port.range({ key: bytes("k") }, soon()),
            NoGatewayError,
          );
        });
      },
    );
    await t.step(
      "openEtcdPort switches its transport to grpc on the first request",
      async () => {
        await withPort(openEtcdPort, options, async (port) => {
          assert.equal(port.transport, "gateway");
          await port.range({ key: bytes("k") }, soon());
          assert.equal(port.transport, "grpc");
        });
      },
    );
    await conformance(
      t,
      "fallback",
      "grpc",
      () => openEtcdPort(options),
      cluster,
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("a watch runs on the member asked for; killing that member ends it as disconnected, and requests fail over, for both adapters", async (t) => {
  const cluster = await startEtcd({ members: 3 });
  try {
    for (const { name, open } of ADAPTERS) {
      await t.step(name, async () => {
        // A follower: a killed leader stalls writes for an election, which
        // is etcd's business, not the adapters'.
        const victim = (await cluster.followers())[0]!;
        // The victim first: it also serves the requests until it dies.
        const endpoints = [
          victim.clientUrl,
          ...cluster.endpoints.filter((e) => e !== victim.clientUrl),
        ];
        await withPort(
          open,
          { endpoints, timeoutMs: TIMEOUT_MS },
          async (port) => {
            const recorder = new Recorder();
            const stream = port.watch(
              [{ key: bytes(`${name}/k`) }],
              recorder,
              victim.clientUrl,
            );
            assert.equal(stream.endpoint, victim.clientUrl);
            await recorder.until("created", () => recorder.created.length > 0);
            await put(port, `${name}/k`, "1");
            await recorder.until("the put", () => recorder.events.length > 0);
            await victim.kill();
            await recorder.until("end", () => recorder.ends.length > 0);
            const [end] = recorder.ends;
            assert.equal(end!.kind, "disconnected");
            assert.ok(
              end!.kind === "disconnected" &&
                end!.reason.includes(victim.clientUrl),
              JSON.stringify(end),
            );
            assert.doesNotMatch(JSON.stringify(end), INTERNAL_TEXT);
            const order = () =>
              (port as EtcdPort & { endpointOrder(): string[] })
                .endpointOrder();
            assert.equal(order()[0], victim.clientUrl, "the victim answered");
            for (let n = 0; n < 5; n++) {
              await put(port, `${name}/after`, String(n));
              assert.equal(await read(port, `${name}/after`), String(n));
            }
            assert.notEqual(order()[0], victim.clientUrl, "requests moved on");
            await sleep(200);
            assert.equal(recorder.ends.length, 1, "onEnd exactly once");
          },
        );
        await victim.start();
        await cluster.waitHealthy();
      });
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("a member cut off from its leader ends its watches as disconnected, alike for both adapters", async (t) => {
  const cluster = await startEtcd({ members: 3 });
  try {
    for (const { name, open } of ADAPTERS) {
      await t.step(name, async () => {
        const lonely = (await cluster.followers())[0]!;
        await withPort(open, {
          endpoints: cluster.endpoints,
          timeoutMs: TIMEOUT_MS,
        }, async (port) => {
          const recorder = new Recorder();
          port.watch([{ key: bytes("k") }], recorder, lonely.clientUrl);
          await recorder.until("created", () => recorder.created.length > 0);
          const others = cluster.members.filter((m) => m !== lonely);
          for (const member of others) member.pause();
          try {
            await recorder.until("end", () => recorder.ends.length > 0, 15_000);
          } finally {
            for (const member of others) member.resume();
          }
          assert.deepEqual(recorder.ends, [{
            kind: "disconnected",
            reason: `${lonely.clientUrl}: etcdserver: no leader`,
          }]);
        });
        await cluster.waitHealthy();
        await cluster.waitLeader();
      });
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("unreachable endpoints give one-line EtcdUnavailableErrors naming them, for both adapters", async (t) => {
  const hole = startBlackHole();
  const refusing = `http://127.0.0.1:${freePort()}`;
  try {
    for (const { name, open } of ADAPTERS) {
      await t.step(`${name}: refused connections`, async () => {
        await withPort(
          open,
          { endpoints: [refusing], timeoutMs: 2_000 },
          async (port) => {
            const started = Date.now();
            const error = await port.range({ key: bytes("k") }, soon(2_000))
              .then(() => undefined, (e) => e);
            assert.ok(error instanceof EtcdUnavailableError, String(error));
            assert.match(error.message, /connection refused/);
            assertPlainMessage(error, [refusing]);
            assert.ok(
              Date.now() - started < 2_000,
              "gives up before the deadline",
            );
          },
        );
      });
      await t.step(
        `${name}: a watch on a member that never answers ends as disconnected`,
        async () => {
          await withPort(
            open,
            { endpoints: [hole.url], timeoutMs: 1_000 },
            async (port) => {
              const recorder = new Recorder();
              const stream = port.watch([{ key: bytes("k") }], recorder);
              assert.equal(stream.endpoint, hole.url);
              await recorder.until(
                "end",
                () => recorder.ends.length > 0,
                3_000,
              );
              assert.deepEqual(recorder.ends, [{
                kind: "disconnected",
                reason: `${hole.url} set up no watch within 1s`,
              }]);
            },
          );
        },
      );
      await t.step(`${name}: no answer within the deadline`, async () => {
        await withPort(open, {
          endpoints: [hole.url, refusing],
          timeoutMs: 1_000,
        }, async (port) => {
          const started = Date.now();
          const error = await port.txn({
            compare: [],
            success: [],
            failure: [],
          }, soon(1_000))
            .then(() => undefined, (e) => e);
          const took = Date.now() - started;
          assert.ok(error instanceof EtcdUnavailableError, String(error));
          assert.match(error.message, /did not answer within/);
          assertPlainMessage(error, [hole.url, refusing]);
          assert.ok(took >= 950 && took < 1_500, `took ${took} ms`);
        });
      });
    }
  } finally {
    await hole.close();
  }
});

Deno.test("with a black-holed first endpoint, range and txn succeed 20 times out of 20, for both adapters, and a Txn sent twice says so", async (t) => {
  const cluster = await startEtcd();
  const hole = startBlackHole();
  try {
    for (const { name, open } of ADAPTERS) {
      await t.step(name, async () => {
        const options = {
          endpoints: [hole.url, cluster.endpoints[0]!],
          timeoutMs: 2_000,
        };
        await withPort(open, options, async (port) => {
          let resent = 0;
          for (let i = 0; i < 20; i++) {
            const key = bytes(`${name}/failover/${i}`);
            const written = await port.txn({
              compare: [{ key, target: "VERSION", result: "EQUAL", value: 0 }],
              success: [{ put: { key, value: bytes(String(i)) } }],
              failure: [],
            }, soon(2_000));
            assert.equal(written.succeeded, true);
            if (written.resent) resent++;
            const { kvs } = await port.range({ key }, soon(2_000));
            assert.equal(text(kvs[0]!.value), String(i));
          }
          assert.ok(hole.accepted > 0, "the black hole was tried");
          // The Txn that met the black hole says it went out twice; once the
          // hole is asked last, answers come from one copy and say so.
          assert.ok(resent >= 1 && resent < 20, `${resent} of 20 resent`);
        });
      });
    }
  } finally {
    await hole.close();
    await cluster.close();
  }
});

Deno.test("with etcd auth on, credentials are checked and permissions enforced alike by both adapters", async (t) => {
  const cluster = await startEtcd();
  const endpoint = cluster.endpoints[0]!;
  try {
    const root = ["--user=root:rootpw"];
    await etcdctl(endpoint, "user", "add", "root:rootpw");
    await etcdctl(endpoint, "role", "add", "root");
    await etcdctl(endpoint, "user", "grant-role", "root", "root");
    await etcdctl(endpoint, "role", "add", "locksmith");
    await etcdctl(
      endpoint,
      "role",
      "grant-permission",
      "locksmith",
      "--prefix=true",
      "readwrite",
      "locksmith/",
    );
    await etcdctl(endpoint, "user", "add", "alice:alicepw");
    await etcdctl(endpoint, "user", "grant-role", "alice", "locksmith");
    await etcdctl(endpoint, "user", "add", "bob:bobpw");
    await etcdctl(endpoint, "auth", "enable");
    await etcdctl(endpoint, ...root, "put", "locksmith/seed", "s");
    const as = (username: string, password: string) => ({
      endpoints: cluster.endpoints,
      timeoutMs: TIMEOUT_MS,
      username,
      password,
    });
    const said: Record<string, string[]> = { gateway: [], grpc: [] };
    for (const { name, open } of ADAPTERS) {
      await t.step(
        `${name}: a wrong password is an EtcdAuthenticationError naming the endpoint`,
        async () => {
          await withPort(open, as("alice", "wrong"), async (port) => {
            const error = await port.range(
              { key: bytes("locksmith/seed") },
              soon(),
            ).then(() => undefined, (e) => e);
            assert.ok(error instanceof EtcdAuthenticationError, String(error));
            assert.match(error.message, /authentication failed/);
            assertPlainMessage(error, [endpoint]);
            said[name]!.push(error.message);
          });
        },
      );
      await t.step(
        `${name}: no credentials is an EtcdAuthenticationError`,
        async () => {
          await withPort(open, {
            endpoints: cluster.endpoints,
            timeoutMs: TIMEOUT_MS,
          }, async (port) => {
            const error = await port.range(
              { key: bytes("locksmith/seed") },
              soon(),
            ).then(() => undefined, (e) => e);
            assert.ok(error instanceof EtcdAuthenticationError, String(error));
            assertPlainMessage(error, [endpoint]);
            said[name]!.push(error.message);
          });
        },
      );
      await t.step(
        `${name}: a user without permission gets EtcdPermissionDeniedError`,
        async () => {
          await withPort(open, as("bob", "bobpw"), async (port) => {
            for (
              const attempt of [
                () => port.range({ key: bytes("locksmith/seed") }, soon()),
                () => put(port, "locksmith/bob", "x"),
              ]
            ) {
              const error = await attempt().then(() => undefined, (e) => e);
              assert.ok(
                error instanceof EtcdPermissionDeniedError,
                String(error),
              );
              assert.match(error.message, /permission denied/);
              assertPlainMessage(error, [endpoint]);
              said[name]!.push(error.message);
            }
            const w = watch(port, [{ key: bytes("locksmith/seed") }]);
            await w.recorder.until("end", () => w.recorder.ends.length > 0);
            const [end] = w.recorder.ends;
            assert.equal(end!.kind, "canceled");
            assert.match(JSON.stringify(end), /permission denied/);
            said[name]!.push(JSON.stringify(end));
          });
        },
      );
      await t.step(
        `${name}: good credentials read, write, lease and watch; a restarted member's new token is fetched`,
        async () => {
          await withPort(open, as("alice", "alicepw"), async (port) => {
            assert.equal(await read(port, "locksmith/seed"), "s");
            const w = watch(port, [{ key: bytes(`locksmith/${name}`) }]);
            try {
              await w.recorder.until(
                "created",
                () => w.recorder.created.length > 0,
              );
              const lease = await port.leaseGrant(60, soon());
              await put(port, `locksmith/${name}`, "v", lease.id);
              await w.recorder.until(
                "the put",
                () => w.recorder.events.length > 0,
              );
              assert.equal(
                await port.leaseKeepAlive(lease.id, soon()) > 0,
                true,
              );
              await port.leaseRevoke(lease.id, soon());
            } finally {
              w.cancel();
            }
            // etcd's simple tokens live in the member's memory: after a restart
            // the token held is refused, and a new one must be fetched.
            await cluster.members[0]!.stop();
            await cluster.members[0]!.start();
            await cluster.waitHealthy();
            assert.equal(await read(port, "locksmith/seed"), "s");
            assert.equal(port.stats().requests.authenticate, 2);
          });
        },
      );
    }
    await t.step("both adapters word etcd's refusals alike", () => {
      assert.equal(said.grpc!.length, 5);
      assert.deepEqual(said.grpc, said.gateway);
    });
  } finally {
    await cluster.close();
  }
});

Deno.test("over TLS, a CA file alone or with a client certificate works, for both adapters", async (t) => {
  const certs = await makeTestCertificates();
  try {
    for (const clientCertAuth of [false, true]) {
      const cluster = await startEtcd({
        tls: {
          caFile: certs.caFile,
          certFile: certs.serverCert,
          keyFile: certs.serverKey,
          clientCertAuth,
        },
      });
      try {
        const what = clientCertAuth ? "client certificate" : "CA only";
        const options: EtcdConnectionOptions = {
          endpoints: cluster.endpoints,
          timeoutMs: TIMEOUT_MS,
          caFile: certs.caFile,
          ...(clientCertAuth
            ? { certFile: certs.clientCert, keyFile: certs.clientKey }
            : {}),
        };
        for (const { name, open } of ADAPTERS) {
          await t.step(`${name}: ${what}`, async () => {
            await withPort(open, options, async (port) => {
              await put(port, `tls/${name}`, "v");
              assert.equal(await read(port, `tls/${name}`), "v");
              const w = watch(port, [{ key: bytes(`tls/${name}`) }]);
              try {
                await w.recorder.until(
                  "created",
                  () => w.recorder.created.length > 0,
                );
                await put(port, `tls/${name}`, "w");
                await w.recorder.until(
                  "the put",
                  () => w.recorder.events.length > 0,
                );
              } finally {
                w.cancel();
              }
            });
          });
          if (!clientCertAuth) continue;
          await t.step(
            `${name}: without a client certificate, an EtcdUnavailableError naming the endpoint`,
            async () => {
              await withPort(open, {
                ...options,
                certFile: undefined,
                keyFile: undefined,
                timeoutMs: 2_000,
              }, async (port) => {
                const error = await port.range({ key: bytes("k") }, soon(2_000))
                  .then(() => undefined, (e) => e);
                assert.ok(error instanceof EtcdUnavailableError, String(error));
                assertPlainMessage(error, cluster.endpoints);
              });
            },
          );
        }
      } finally {
        await cluster.close();
      }
    }
  } finally {
    await certs.remove();
  }
});
