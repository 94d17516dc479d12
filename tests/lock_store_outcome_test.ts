/**
 * Unknown outcomes in EtcdLockStore, with a scripted fake etcd client (a
 * pure unit test: a lost answer or a late Txn cannot be produced on demand
 * with a real server). The real-etcd behaviour is covered by the fault suite.
 */

import assert from "node:assert/strict";
import type { Etcd3 } from "etcd3";
import { EtcdLockStore } from "../lib/etcd/etcd_lock_store.ts";
import { lockSlot, unlockSlot } from "../lib/semaphore/lock_store.ts";
import { EtcdUnavailableError } from "../lib/common/errors.ts";

const encoder = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface TxnScript {
  /** Answers the n-th Txn (1-based): commit it or not, how long to wait, what to return. */
  (
    n: number,
    guard: number,
    raw: string,
  ): Promise<{ commit: boolean; succeeded: boolean }>;
}

/** A fake client holding one key; Txns follow `script`. */
function fakeClient(initial: string, script: TxnScript) {
  const state = {
    value: initial,
    revision: 5,
    version: 3,
    txns: 0,
    deadlines: [] as Date[],
  };
  const kv = () => ({
    value: encoder.encode(state.value),
    mod_revision: String(state.revision),
    version: String(state.version),
  });
  const client = {
    get: () => {
      const req = {
        options: (o: { deadline: Date }) => {
          state.deadlines.push(o.deadline);
          return req;
        },
        exec: () =>
          Promise.resolve({
            kvs: [kv()],
            header: { revision: String(state.revision) },
          }),
      };
      return req;
    },
    put: () => ({ value: (raw: string) => raw }),
    if: (_k: string, _f: string, _op: string, guard: number) => ({
      then: (raw: string) => {
        const txn = {
          else: () => txn,
          options: (o: { deadline: Date }) => {
            state.deadlines.push(o.deadline);
            return txn;
          },
          commit: async () => {
            const n = ++state.txns;
            const { commit, succeeded } = await script(n, guard, raw);
            if (commit) {
              state.value = raw;
              state.revision++;
              state.version++;
            }
            return {
              succeeded,
              header: { revision: String(state.revision) },
              responses: succeeded ? [] : [{ response_range: { kvs: [kv()] } }],
            };
          },
        };
        return txn;
      },
    }),
    close() {},
  };
  return { client: client as unknown as Etcd3, state };
}

const open = (client: Etcd3, timeoutMs = 1_000) =>
  new EtcdLockStore(client, "k", { endpoints: ["http://x:2379"], timeoutMs });

Deno.test("a write whose answer was lost and whose retry fails on it is reported as done, not refused", async () => {
  // The first Txn commits but its answer is lost; the client re-sends it, and
  // the re-sent guard fails because of our own commit.
  const { client, state } = fakeClient(
    '{"semaphore":1,"max":1,"holders":[]}',
    (n) =>
      Promise.resolve(
        n === 1
          ? { commit: true, succeeded: false }
          : { commit: false, succeeded: false },
      ),
  );
  const store = open(client);
  const outcome = await lockSlot(store, "a");
  assert.equal(outcome.written, true);
  assert.deepEqual(outcome.after.holders, ["a"]);
  assert.equal(state.value, '{"semaphore":0,"max":1,"holders":["a"]}');
  assert.equal(state.txns, 1);
});

Deno.test("an identical document written by someone else after another write is not taken as ours", async () => {
  const { client, state } = fakeClient(
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
  const store = open(client);
  await assert.rejects(lockSlot(store, "a"), /holder exists/);
});

Deno.test("an operation that timed out sends no request after its deadline", async () => {
  const { client, state } = fakeClient(
    '{"semaphore":1,"max":1,"holders":[]}',
    async (n) => {
      if (n === 1) {
        await sleep(1_500); // a slow answer: the caller has been told "timed out" by then
        state.value = '{"semaphore":1,"max":2,"holders":[]}'; // someone else wrote meanwhile
        state.revision++;
        state.version++;
        return { commit: false, succeeded: false };
      }
      return { commit: true, succeeded: true };
    },
  );
  const store = open(client, 1_000);
  const started = Date.now();
  await assert.rejects(lockSlot(store, "a"), EtcdUnavailableError);
  assert.ok(Date.now() - started < 1_300);
  await sleep(1_000);
  assert.equal(state.txns, 1, "no Txn after the deadline");
  assert.equal(state.value, '{"semaphore":1,"max":2,"holders":[]}');
  for (const d of state.deadlines) {
    assert.ok(d.getTime() <= started + 1_000 + 5);
  }
});

Deno.test("every request of an operation carries the operation's deadline", async () => {
  const { client, state } = fakeClient(
    '{"semaphore":0,"max":1,"holders":["a"]}',
    () => Promise.resolve({ commit: true, succeeded: true }),
  );
  const store = open(client, 2_000);
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
