/**
 * Unknown outcomes in EtcdLockStore, with a scripted fake etcd port (a
 * pure unit test: a lost answer or a late Txn cannot be produced on demand
 * with a real server). The real-etcd behaviour is covered by the fault suite.
 */

import assert from "node:assert/strict";
import { EtcdLockStore } from "../lib/etcd/store/etcd_lock_store.ts";
import type {
  CallOptions,
  EtcdPort,
  KeyValue,
  RangeRequest,
  RangeResult,
  TxnRequest,
  TxnResult,
} from "../lib/etcd/client/port.ts";
import { lockSlot, unlockSlot } from "../lib/semaphore/lock_store.ts";
import { EtcdUnavailableError } from "../lib/common/errors.ts";
import { until } from "./harness/until.ts";

const encoder = new TextEncoder();

interface TxnScript {
  /** Answers the n-th Txn (1-based): commit it or not, how long to wait, what to return. */
  (
    n: number,
    guard: number,
    raw: string,
  ): Promise<{ commit: boolean; succeeded: boolean }>;
}

/** A fake etcd port holding one key; Txns follow `script`. */
function fakePort(initial: string, script: TxnScript) {
  const state = {
    value: initial,
    revision: 5,
    version: 3,
    txns: 0,
    deadlines: [] as Date[],
  };
  const kv = (): KeyValue => ({
    key: encoder.encode("k"),
    value: encoder.encode(state.value),
    createRevision: 1,
    modRevision: state.revision,
    version: state.version,
    lease: "0",
  });
  const port = {
    endpoints: ["http://x:2379"],
    transport: "gateway",
    range(_r: RangeRequest, o: CallOptions): Promise<RangeResult> {
      state.deadlines.push(new Date(o.deadline));
      return Promise.resolve({
        kvs: [kv()],
        count: 1,
        revision: state.revision,
      });
    },
    async txn(t: TxnRequest, o: CallOptions): Promise<TxnResult> {
      state.deadlines.push(new Date(o.deadline));
      const n = ++state.txns;
      const compare = t.compare[0] as { value: number };
      const put = t.success[0] as { put: { value: Uint8Array } };
      const raw = new TextDecoder().decode(put.put.value);
      const { commit, succeeded } = await script(n, compare.value, raw);
      if (commit) {
        state.value = raw;
        state.revision++;
        state.version++;
      }
      return {
        succeeded,
        revision: state.revision,
        responses: succeeded
          ? []
          : [{ range: { kvs: [kv()], count: 1, revision: state.revision } }],
      };
    },
    close: () => Promise.resolve(),
  };
  return { port: port as unknown as EtcdPort, state };
}

const open = (port: EtcdPort, timeoutMs = 1_000) =>
  new EtcdLockStore(port, "k", { timeoutMs });

Deno.test("a write whose answer was lost and whose retry fails on it is reported as done, not refused", async () => {
  // The first Txn commits but its answer is lost; the client re-sends it, and
  // the re-sent guard fails because of our own commit.
  const { port, state } = fakePort(
    '{"semaphore":1,"max":1,"holders":[]}',
    (n) =>
      Promise.resolve(
        n === 1
          ? { commit: true, succeeded: false }
          : { commit: false, succeeded: false },
      ),
  );
  const store = open(port);
  const outcome = await lockSlot(store, "a");
  assert.equal(outcome.written, true);
  assert.deepEqual(outcome.after.holders, ["a"]);
  assert.equal(state.value, '{"semaphore":0,"max":1,"holders":["a"]}');
  assert.equal(state.txns, 1);
});

Deno.test("an identical document written by someone else after another write is not taken as ours", async () => {
  const { port, state } = fakePort(
    '{"semaphore":1,"max":2,"holders":["b"]}',
    (n, _guard, raw) => {
      if (n === 1) {
        // Two other writes happened: the stored text equals ours, the version does not.
        state.value = raw;
        state.version += 2;
        state.revision += 2;
        return Promise.resolve({ commit: false, succeeded: false });
      }
      return Promise.resolve({ commit: true, succeeded: true });
    },
  );
  const store = open(port);
  await assert.rejects(lockSlot(store, "a"), /holder exists/);
});

Deno.test("an operation that timed out sends no request after its deadline", async () => {
  let answer = () => {};
  const answered = new Promise<void>((resolve) => answer = resolve);
  const { port, state } = fakePort(
    '{"semaphore":1,"max":1,"holders":[]}',
    async (n) => {
      if (n === 1) {
        await answered; // a slow answer, once the caller has been told "timed out"
        state.value = '{"semaphore":1,"max":2,"holders":[]}'; // someone else wrote meanwhile
        state.revision++;
        state.version++;
        return { commit: false, succeeded: false };
      }
      return { commit: true, succeeded: true };
    },
  );
  const store = open(port, 1_000);
  const started = Date.now();
  await assert.rejects(lockSlot(store, "a"), EtcdUnavailableError);
  assert.ok(Date.now() - started < 1_300);
  answer();
  // The store takes the late answer in (it records the document returned);
  // a request that followed from it would have been sent by the next turn.
  await until("the late answer taken in", () => store.revision >= 6);
  assert.equal(state.txns, 1, "no Txn after the deadline");
  assert.equal(state.value, '{"semaphore":1,"max":2,"holders":[]}');
  for (const d of state.deadlines) {
    assert.ok(d.getTime() <= started + 1_000 + 5);
  }
});

Deno.test("every request of an operation carries the operation's deadline", async () => {
  const { port, state } = fakePort(
    '{"semaphore":0,"max":1,"holders":["a"]}',
    () => Promise.resolve({ commit: true, succeeded: true }),
  );
  const store = open(port, 2_000);
  const started = Date.now();
  await unlockSlot(store, "a");
  assert.ok(state.deadlines.length >= 2, "a read and a Txn");
  for (const d of state.deadlines) {
    assert.ok(
      Math.abs(d.getTime() - (started + 2_000)) < 50,
      `deadline ${d.toISOString()}`,
    );
  }
});
