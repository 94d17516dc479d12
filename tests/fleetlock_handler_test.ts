/**
 * The FleetLock batcher, group registry and HTTP handler, without a socket:
 * in-memory stores (tests/fakes.ts) and `Request` objects.
 */

import assert from "node:assert/strict";
import { FakeClock, FakeStore } from "./fakes.ts";
import { SlotBatcher } from "../lib/serve/batch.ts";
import { GroupSemaphores } from "../lib/serve/semaphores.ts";
import {
  createFleetLockHandler,
  type FleetLockHandlerOptions,
  type RequestResult,
  type Route,
} from "../lib/serve/handler.ts";
import { GroupTokens } from "../lib/serve/auth.ts";
import { MAX_HOLDERS, type Semaphore } from "../lib/semaphore/document.ts";
import {
  ContentionError,
  CorruptDocumentError,
  EtcdUnavailableError,
} from "../lib/common/errors.ts";

const doc = (max: number, holders: string[] = []): Semaphore => ({
  semaphore: max - holders.length,
  max,
  holders,
});

const newStore = (initial?: Semaphore) =>
  new FakeStore(new FakeClock(new Date(0)), initial);

// ------------------------------------------------------------ batcher

Deno.test("SlotBatcher applies queued calls together in one write", async () => {
  const store = newStore(doc(3));
  const batcher = new SlotBatcher(store);
  const verdicts = await Promise.all(
    ["a", "b", "c", "d", "b"].map((id) => batcher.submit({ op: "lock", id })),
  );
  assert.deepEqual(verdicts.map((v) => v.result), [
    "locked",
    "locked",
    "locked",
    "full",
    "already_held",
  ]);
  // The first call goes alone; the four that queued behind it share one write.
  assert.equal(store.updates.length, 2);
  assert.equal(store.writes.length, 2);
  assert.deepEqual(store.doc.holders, ["a", "b", "c"]);
});

Deno.test("SlotBatcher writes nothing when no call changes the document", async () => {
  const store = newStore(doc(2, ["a"]));
  const batcher = new SlotBatcher(store);
  const verdicts = await Promise.all([
    batcher.submit({ op: "lock", id: "a" }),
    batcher.submit({ op: "unlock", id: "nobody" }),
    batcher.submit({ op: "lock", id: "b" }),
    batcher.submit({ op: "unlock", id: "b" }),
  ]);
  assert.deepEqual(verdicts.map((v) => v.result), [
    "already_held",
    "not_held",
    "locked",
    "released",
  ]);
  assert.equal(store.writes.length, 0, "lock then unlock of b nets to nothing");
});

Deno.test("SlotBatcher never adds a holder past the document's limit", async () => {
  const holders = Array.from(
    { length: MAX_HOLDERS },
    (_, i) => `m${String(i).padStart(5, "0")}`,
  );
  const store = newStore(doc(MAX_HOLDERS + 10, holders));
  const batcher = new SlotBatcher(store);
  assert.equal((await batcher.submit({ op: "lock", id: "z" })).result, "full");
  assert.equal(
    (await batcher.submit({ op: "lock", id: "m00000" })).result,
    "already_held",
  );
});

Deno.test("SlotBatcher applies a slot count once, with the first commit", async () => {
  const store = newStore(doc(1));
  const batcher = new SlotBatcher(store, { pendingMax: 3 });
  assert.equal(batcher.pendingMax, 3);
  const first = await batcher.submit({ op: "lock", id: "a" });
  assert.equal(first.doc.max, 3);
  assert.equal(store.writes.length, 1, "max and lock in one write");
  assert.equal(batcher.pendingMax, undefined);
  store.set(doc(5, ["a"])); // an operator's later set-max stands
  await batcher.submit({ op: "lock", id: "b" });
  assert.equal(store.doc.max, 5);
  await batcher.applyMax(5);
  assert.equal(
    store.writes.length,
    2,
    "applyMax of the stored count writes nothing",
  );
});

Deno.test("SlotBatcher hands the store's error to every call of the batch, then recovers", async () => {
  const store = newStore(doc(2));
  const batcher = new SlotBatcher(store, { pendingMax: 2 });
  store.down = new EtcdUnavailableError("etcd down");
  const calls = [
    batcher.submit({ op: "lock", id: "a" }),
    batcher.submit({ op: "lock", id: "b" }),
  ];
  for (const call of calls) {
    await assert.rejects(call, EtcdUnavailableError);
  }
  await assert.rejects(batcher.applyMax(4), EtcdUnavailableError);
  assert.equal(batcher.pendingMax, 4, "still to apply");
  store.down = undefined;
  assert.equal(
    (await batcher.submit({ op: "lock", id: "a" })).result,
    "locked",
  );
  assert.equal(store.doc.max, 4);
});

/** A store that loses `losses` compare-and-swap rounds to another writer first. */
class ContendedStore extends FakeStore {
  losses: number;
  reads = 0;
  constructor(losses: number) {
    super(new FakeClock(new Date(0)), doc(2));
    this.losses = losses;
  }
  override update(
    ...args: Parameters<FakeStore["update"]>
  ): ReturnType<FakeStore["update"]> {
    assert.equal(args[1]?.maxAttempts, 2, "rounds of two attempts");
    if (this.losses-- > 0) {
      return Promise.reject(new ContentionError("lost 2 conflicting writes"));
    }
    return super.update(...args);
  }
  override read(): ReturnType<FakeStore["read"]> {
    this.reads++;
    return super.read();
  }
}

Deno.test("SlotBatcher retries lost rounds from a fresh read, with short jittered pauses", async () => {
  const store = new ContendedStore(5);
  const pauses: number[] = [];
  const reports: number[] = [];
  const batcher = new SlotBatcher(store, {
    random: () => 0.5,
    sleep: (ms) => {
      pauses.push(ms);
      return Promise.resolve();
    },
    onCommit: (r) => reports.push(r.conflicts),
  });
  assert.equal(
    (await batcher.submit({ op: "lock", id: "a" })).result,
    "locked",
  );
  assert.deepEqual(pauses, [1, 2, 4, 8, 16]);
  assert.equal(store.reads, 5, "one read before each new round");
  assert.deepEqual(reports, [10]);
});

Deno.test("SlotBatcher gives up with ContentionError after maxRounds", async () => {
  const store = new ContendedStore(Infinity);
  const batcher = new SlotBatcher(store, {
    maxRounds: 3,
    sleep: () => Promise.resolve(),
  });
  await assert.rejects(
    batcher.submit({ op: "lock", id: "a" }),
    ContentionError,
  );
  assert.equal(store.reads, 2);
});

// ------------------------------------------------------------ registry

Deno.test("GroupSemaphores opens one store per group and bounds the open groups", async () => {
  const opened: string[] = [];
  const closed: string[] = [];
  const semaphores = new GroupSemaphores({
    openStore: (group) => {
      opened.push(group);
      const store = newStore(doc(1));
      store.close = () => {
        closed.push(group);
        return Promise.resolve();
      };
      return Promise.resolve(store);
    },
    maxOpenGroups: 2,
  });
  await semaphores.preReboot("a", "m1");
  await semaphores.preReboot("a", "m2");
  await semaphores.preReboot("b", "m1");
  assert.deepEqual(opened, ["a", "b"]);
  await semaphores.preReboot("c", "m1");
  await Promise.resolve();
  assert.deepEqual(closed, ["a"], "the least recently used group closes");
  assert.deepEqual(semaphores.groups, ["b", "c"]);
  await semaphores.close();
  assert.deepEqual(closed.sort(), ["a", "b", "c"]);
  await assert.rejects(semaphores.preReboot("a", "m1"), /closed/);
});

Deno.test("GroupSemaphores retries a store that failed to open", async () => {
  let fail = true;
  const semaphores = new GroupSemaphores({
    openStore: () =>
      fail
        ? Promise.reject(new EtcdUnavailableError("no etcd"))
        : Promise.resolve(newStore()),
  });
  await assert.rejects(semaphores.preReboot("a", "m"), EtcdUnavailableError);
  fail = false;
  assert.equal((await semaphores.preReboot("a", "m")).result, "locked");
});

Deno.test("GroupSemaphores stores configured slots and reports failures by group", async () => {
  const stores = new Map([["up", newStore(doc(1))], ["down", newStore()]]);
  (stores.get("down") as FakeStore).down = new EtcdUnavailableError("x");
  const semaphores = new GroupSemaphores({
    openStore: (group) => Promise.resolve(stores.get(group) as FakeStore),
    slots: new Map([["up", 4], ["down", 2]]),
  });
  const failures = await semaphores.applySlots();
  assert.deepEqual([...failures.keys()], ["down"]);
  assert.equal((stores.get("up") as FakeStore).doc.max, 4);
  const docs = await semaphores.documents();
  assert.equal(docs.get("up")?.max, 4);
});

// ------------------------------------------------------------ handler

const ZINCATI_BODY = (id: string, group = "default") =>
  JSON.stringify({ client_params: { id, group } }, null, 2);

function post(
  path: string,
  body: BodyInit | null,
  headers: Record<string, string> = { "fleet-lock-protocol": "true" },
): Request {
  return new Request(`http://fleetlock.test${path}`, {
    method: "POST",
    headers,
    body,
  });
}

interface Harness {
  handle: (request: Request) => Promise<Response>;
  seen: [Route, RequestResult][];
  logs: string[];
  store: (group: string) => FakeStore;
}

function harness(
  options: Partial<FleetLockHandlerOptions> = {},
  initial: Semaphore = doc(1),
): Harness {
  const stores = new Map<string, FakeStore>();
  const store = (group: string) => {
    let s = stores.get(group);
    if (!s) stores.set(group, s = newStore(initial));
    return s;
  };
  const semaphores = new GroupSemaphores({
    openStore: (group) => Promise.resolve(store(group)),
  });
  const seen: [Route, RequestResult][] = [];
  const logs: string[] = [];
  const handle = createFleetLockHandler({
    service: {
      preReboot: (g, id) => semaphores.preReboot(g, id),
      steadyState: (g, id) => semaphores.steadyState(g, id),
      ping: () => semaphores.ping(),
    },
    observer: { request: (route, result) => seen.push([route, result]) },
    log: {
      info: (m) => logs.push(`info ${m}`),
      warn: (m) => logs.push(`warn ${m}`),
      error: (m) => logs.push(`error ${m}`),
    },
    ...options,
  });
  return { handle, seen, logs, store };
}

async function expectError(
  response: Response,
  status: number,
  kind: string,
  value?: RegExp,
): Promise<void> {
  assert.equal(response.status, status);
  assert.equal(response.headers.get("content-type"), "application/json");
  const body = await response.json();
  assert.deepEqual(Object.keys(body), ["kind", "value"]);
  assert.equal(body.kind, kind);
  if (value) assert.match(body.value, value);
}

Deno.test("handler: pre-reboot and steady-state are idempotent and answer 200", async () => {
  const { handle, seen, store, logs } = harness();
  const texts: string[] = [];
  for (
    const path of ["pre-reboot", "pre-reboot", "steady-state", "steady-state"]
  ) {
    const response = await handle(post(`/v1/${path}`, ZINCATI_BODY("m1")));
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
    texts.push(await response.text());
  }
  assert.deepEqual(texts, [
    "group default: m1 took a slot (1/1 held)\n",
    "group default: m1 already holds a slot (1/1 held)\n",
    "group default: m1 released its slot (0/1 held)\n",
    "group default: m1 holds no slot (nothing to release) (0/1 held)\n",
  ]);
  assert.deepEqual(seen.map(([, r]) => r), [
    "locked",
    "already_held",
    "released",
    "not_held",
  ]);
  assert.equal(store("default").writes.length, 2);
  assert.deepEqual(logs, [
    "info group default: m1 took a slot (1/1 held)",
    "info group default: m1 released its slot (0/1 held)",
  ]);
});

Deno.test("handler: a full semaphore is 409 failed_lock_semaphore_full", async () => {
  const { handle } = harness({}, doc(1, ["other"]));
  await expectError(
    await handle(post("/v1/pre-reboot", ZINCATI_BODY("m1"))),
    409,
    "failed_lock_semaphore_full",
    /^all 1 slot\(s\) of group default are held; retry later$/,
  );
  const paused = harness({}, doc(0));
  await expectError(
    await paused.handle(post("/v1/pre-reboot", ZINCATI_BODY("m1"))),
    409,
    "failed_lock_semaphore_full",
    /group default has 0 slots: reboots are paused/,
  );
});

Deno.test("handler: paths, methods, header and body errors are 4xx JSON", async () => {
  const { handle, seen } = harness();
  await expectError(
    await handle(post("/base/v1/pre-reboot", ZINCATI_BODY("m"))),
    404,
    "not_found",
    /no such path "\/base\/v1\/pre-reboot"/,
  );
  for (const method of ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    const response = await handle(
      new Request("http://x/v1/steady-state", { method }),
    );
    assert.equal(response.headers.get("allow"), "POST");
    await expectError(response, 405, "method_not_allowed");
  }
  const put = await handle(
    new Request("http://x/-/healthy", { method: "POST" }),
  );
  assert.equal(put.headers.get("allow"), "GET, HEAD");
  await expectError(put, 405, "method_not_allowed");
  await expectError(
    await handle(post("/v1/pre-reboot", ZINCATI_BODY("m"), {})),
    400,
    "bad_request",
    /missing header/,
  );
  await expectError(
    await handle(
      post("/v1/pre-reboot", "{oops", { "fleet-lock-protocol": "true" }),
    ),
    400,
    "bad_request",
    /not valid JSON/,
  );
  await expectError(
    await handle(post("/v1/pre-reboot", null)),
    400,
    "bad_request",
    /body is empty/,
  );
  assert.deepEqual(seen.map(([route]) => route).slice(0, 2), [
    "other",
    "steady-state",
  ]);
});

Deno.test("handler: a body past 64 KiB is 413, declared or streamed", async () => {
  const { handle } = harness();
  const big = "x".repeat(64 * 1024 + 1);
  await expectError(
    await handle(post("/v1/pre-reboot", big)),
    413,
    "payload_too_large",
  );
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      controller.enqueue(new Uint8Array(16 * 1024));
    },
  });
  await expectError(
    await handle(post("/v1/pre-reboot", endless)),
    413,
    "payload_too_large",
  );
  assert.ok(pulled <= 6, `read ${pulled} chunks of an endless body`);
});

Deno.test("handler: a body that stalls is 408 after the read timeout", async () => {
  const { handle } = harness({ readTimeoutMs: 50 });
  const stalled = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode('{"client_params":'));
    },
  });
  const started = performance.now();
  await expectError(
    await handle(post("/v1/pre-reboot", stalled)),
    408,
    "request_timeout",
    /did not arrive within 50ms/,
  );
  assert.ok(performance.now() - started < 1_000);
});

Deno.test("handler: a broken body stream is 400, not 500", async () => {
  const { handle } = harness();
  const broken = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.error(new Error("connection reset"));
    },
  });
  await expectError(
    await handle(post("/v1/pre-reboot", broken)),
    400,
    "bad_request",
    /could not be read/,
  );
});

Deno.test("handler: groups outside the served list are 403 unknown_group", async () => {
  const { handle } = harness({ allowedGroups: new Set(["web"]) });
  await expectError(
    await handle(post("/v1/pre-reboot", ZINCATI_BODY("m", "db"))),
    403,
    "unknown_group",
    /group "db" is not served here/,
  );
  const ok = await handle(post("/v1/pre-reboot", ZINCATI_BODY("m", "web")));
  assert.equal(ok.status, 200);
});

Deno.test("handler: a group with tokens needs one, as Bearer or Basic password", async () => {
  const { handle } = harness({
    tokens: new GroupTokens(new Map([["web", ["t0k3n"]]])),
  });
  const missing = await handle(
    post("/v1/pre-reboot", ZINCATI_BODY("m", "web")),
  );
  assert.equal(
    missing.headers.get("www-authenticate"),
    'Bearer realm="locksmith"',
  );
  await expectError(missing, 401, "unauthorized", /needs a token/);
  await expectError(
    await handle(
      post("/v1/pre-reboot", ZINCATI_BODY("m", "web"), {
        "fleet-lock-protocol": "true",
        authorization: "Bearer wrong",
      }),
    ),
    401,
    "unauthorized",
    // Refused before the body is read: the message cannot name the group.
    /the token is not valid here/,
  );
  for (
    const authorization of ["Bearer t0k3n", `Basic ${btoa("zincati:t0k3n")}`]
  ) {
    const response = await handle(
      post("/v1/pre-reboot", ZINCATI_BODY("m", "web"), {
        "fleet-lock-protocol": "true",
        authorization,
      }),
    );
    assert.equal(response.status, 200, authorization);
    await response.body?.cancel();
  }
  await expectError(
    await handle(post("/v1/pre-reboot", ZINCATI_BODY("m", "default"))),
    401,
    "unauthorized",
  );
});

Deno.test("handler: the token is checked before the header, the body and the group", async () => {
  const { handle, store } = harness({
    allowedGroups: new Set(["web"]),
    tokens: new GroupTokens(new Map([["web", ["t0k3n"]], ["db", ["d8"]]])),
  });
  let pulled = 0;
  const watched = () =>
    new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new TextEncoder().encode(ZINCATI_BODY("m", "x")));
        controller.close();
      },
    }, { highWaterMark: 0 });
  // Each of these is 400, 403 or 413 with a token; without one, 401 alone.
  const withoutToken: [string, Request][] = [
    ["an unknown group", post("/v1/pre-reboot", ZINCATI_BODY("m", "secret"))],
    ["a served group", post("/v1/pre-reboot", ZINCATI_BODY("m", "web"))],
    ["a malformed body", post("/v1/pre-reboot", "{not json")],
    ["no protocol header", post("/v1/pre-reboot", ZINCATI_BODY("m"), {})],
    [
      "a body too large",
      post("/v1/steady-state", "x", {
        "fleet-lock-protocol": "true",
        "content-length": "999999",
      }),
    ],
    ["a body never read", post("/v1/pre-reboot", watched())],
  ];
  for (const [what, request] of withoutToken) {
    const response = await handle(request);
    assert.equal(response.status, 401, what);
    await expectError(response, 401, "unauthorized", /needs a token/);
  }
  await expectError(
    await handle(
      post("/v1/pre-reboot", ZINCATI_BODY("m", "secret"), {
        "fleet-lock-protocol": "true",
        authorization: "Bearer guess",
      }),
    ),
    401,
    "unauthorized",
    /^the token is not valid here$/,
  );
  assert.equal(pulled, 0, "no body was read without a token");
  // A token of another group: 401 for this one, whether served or not.
  for (const group of ["web", "secret"]) {
    await expectError(
      await handle(
        post("/v1/pre-reboot", ZINCATI_BODY("m", group), {
          "fleet-lock-protocol": "true",
          authorization: "Bearer d8",
        }),
      ),
      401,
      "unauthorized",
      new RegExp(`not valid for group ${group}`),
    );
  }
  assert.equal(store("web").updates.length, 0, "nothing reached a store");
});

Deno.test("handler: a lock that would make the document too large is 409 naming the limit", async () => {
  // Ids of 256 bytes, 252 of them backslashes: 510 bytes each once
  // JSON-escaped, so 512 of them fit in the 262,144 bytes, not 513.
  const id = (i: number) => `${String(i).padStart(4, "0")}${"\\".repeat(252)}`;
  const held = Array.from({ length: 512 }, (_, i) => id(i)).sort();
  const { handle, store } = harness({}, doc(600, held));
  const response = await handle(post("/v1/pre-reboot", ZINCATI_BODY(id(999))));
  await expectError(
    response,
    409,
    "failed_lock_semaphore_full",
    /group default cannot list another holder: .*document is 26\d{4} bytes, more than 262144.*retry after a holder releases/,
  );
  assert.equal(store("default").writes.length, 0);
  const released = await handle(post("/v1/steady-state", ZINCATI_BODY(id(0))));
  assert.equal(released.status, 200);
  await released.body?.cancel();
  const taken = await handle(post("/v1/pre-reboot", ZINCATI_BODY(id(999))));
  assert.equal(taken.status, 200, await taken.text());
});

Deno.test("handler: etcd trouble is 503, a corrupt document 500, each logged once", async () => {
  const { handle, store, logs } = harness();
  store("default").down = new EtcdUnavailableError("etcd at e did not answer");
  for (let i = 0; i < 3; i++) {
    await expectError(
      await handle(post("/v1/pre-reboot", ZINCATI_BODY("m"))),
      503,
      "etcd_unavailable",
      /etcd is unavailable/,
    );
  }
  store("default").down = new ContentionError("gave up after 64");
  await expectError(
    await handle(post("/v1/steady-state", ZINCATI_BODY("m"))),
    503,
    "etcd_unavailable",
    /too many other writers/,
  );
  store("default").down = new CorruptDocumentError("k", "not valid JSON", "{");
  await expectError(
    await handle(post("/v1/pre-reboot", ZINCATI_BODY("m"))),
    500,
    "internal_error",
    /corrupt; an operator must repair it/,
  );
  store("default").down = undefined;
  assert.equal(
    (await handle(post("/v1/pre-reboot", ZINCATI_BODY("m")))).status,
    200,
  );
  assert.deepEqual(logs.map((l) => l.split(":")[0]), [
    "warn group default",
    "warn group default",
    "error semaphore document at k is corrupt",
    "info etcd answers again",
    "info group default",
  ]);
});

Deno.test("handler: /-/healthy says ok while the store answers, 503 otherwise", async () => {
  const { handle, store } = harness();
  const ok = await handle(new Request("http://x/-/healthy"));
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), "ok\n");
  store("default").readRaw = () =>
    Promise.reject(new EtcdUnavailableError("down"));
  await expectError(
    await handle(new Request("http://x/-/healthy")),
    503,
    "etcd_unavailable",
  );
  const head = await handle(
    new Request("http://x/-/healthy", { method: "HEAD" }),
  );
  assert.equal(head.status, 503);
});

Deno.test("handler: /metrics is served only when metrics are given", async () => {
  const without = harness();
  await expectError(
    await without.handle(new Request("http://x/metrics")),
    404,
    "not_found",
  );
  const withMetrics = harness({
    metrics: () =>
      Promise.resolve({
        contentType: "text/plain; version=0.0.4",
        body: "m 1\n",
      }),
  });
  const response = await withMetrics.handle(new Request("http://x/metrics"));
  assert.equal(
    response.headers.get("content-type"),
    "text/plain; version=0.0.4",
  );
  assert.equal(await response.text(), "m 1\n");
});

Deno.test("handler: a failing metrics source is a 500 that names no detail", async () => {
  const { handle, logs } = harness({
    metrics: () => Promise.reject(new Error("boom")),
  });
  await expectError(
    await handle(new Request("http://x/metrics")),
    500,
    "internal_error",
    /^internal error; see the server's log$/,
  );
  assert.deepEqual(logs, ["error unexpected error: boom"]);
});
