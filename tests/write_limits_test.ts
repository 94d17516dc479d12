/**
 * Never write what no one can read: every limit a reader enforces (the
 * document's bytes, its holders, a holder id's length, the slot count) is
 * checked before a write, through a real `locksmithd serve` and a real
 * `locksmithctl`, against a real etcd. A refused write is a 4xx or one
 * line naming the limit; the document stays readable and its holders keep
 * working. And `serve` checks the token before anything else.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import {
  type ServeProcess,
  startServeProcess,
} from "./harness/serve_process.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import { fleetLockKey } from "../lib/fleetlock/protocol/protocol.ts";
import {
  formatSemaphore,
  MAX_DOCUMENT_BYTES,
  MAX_HOLDERS,
  parseSemaphore,
  type Semaphore,
} from "../lib/semaphore/document.ts";

/** Ids of exactly 256 bytes whose JSON escaping doubles them: 510 bytes listed. */
const escapedId = (i: number) =>
  `${String(i).padStart(4, "0")}${"\\".repeat(252)}`;

const encoder = new TextEncoder();
const sizeOf = (text: string) => encoder.encode(text).length;

function docOf(max: number, holders: string[]): Semaphore {
  return { semaphore: max - holders.length, max, holders: holders.sort() };
}

/** A document of `max` slots whose stored text is exactly `bytes` bytes. */
function docOfSize(max: number, bytes: number): Semaphore {
  const holders: string[] = [];
  const size = (ids: string[]) => sizeOf(formatSemaphore(docOf(max, [...ids])));
  while (size([...holders, escapedId(holders.length)]) <= bytes - 10) {
    holders.push(escapedId(holders.length));
  }
  // Less than 521 bytes left: fillers of about 205, then one sized to the byte.
  while (bytes - size(holders) > 250) {
    holders.push(`f${holders.length}${"p".repeat(200)}`);
  }
  let last = 1;
  for (let round = 0; round < 4; round++) {
    last += bytes - size([...holders, `z${"p".repeat(last - 1)}`]);
  }
  const doc = docOf(max, [...holders, `z${"p".repeat(last - 1)}`]);
  assert.equal(sizeOf(formatSemaphore(doc)), bytes);
  return doc;
}

async function call(
  serve: ServeProcess,
  endpoint: "pre-reboot" | "steady-state",
  id: string,
  group: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; kind?: string; value?: string; text: string }> {
  const res = await fetch(`${serve.url}v1/${endpoint}`, {
    method: "POST",
    headers: { "fleet-lock-protocol": "true", ...headers },
    body: body ?? JSON.stringify({ client_params: { id, group } }),
  });
  const text = await res.text();
  if (res.status < 400) return { status: res.status, text };
  const { kind, value } = JSON.parse(text);
  return { status: res.status, kind, value, text };
}

Deno.test("no write breaks a limit that readers enforce", async (t) => {
  const etcd = await startEtcd();
  const raw = new Etcd3({ hosts: etcd.endpoints });
  const ctl = (...args: string[]) =>
    runCtlProcess(["--endpoint", etcd.endpoint, ...args]);
  /** The stored document of `key`: it must parse, within every limit. */
  const stored = async (key: string): Promise<Semaphore> => {
    const text = await raw.get(key).string();
    assert.ok(text !== null, `${key} is stored`);
    assert.ok(sizeOf(text) <= MAX_DOCUMENT_BYTES, `${sizeOf(text)} bytes`);
    return parseSemaphore(text, key);
  };
  const serve = await startServeProcess({
    endpoint: etcd.endpoint,
    args: ["--slots", "big=600", "--slots", "many=5000"],
  });
  try {
    await t.step(
      "600 pre-reboots with ids that JSON escaping doubles: a 409 naming the byte limit for each one past it",
      async () => {
        const ids = Array.from({ length: 600 }, (_, i) => escapedId(i));
        const answers: Awaited<ReturnType<typeof call>>[] = [];
        for (let i = 0; i < ids.length; i += 50) {
          answers.push(
            ...await Promise.all(
              ids.slice(i, i + 50).map((id) =>
                call(serve, "pre-reboot", id, "big")
              ),
            ),
          );
        }
        const granted = answers.filter((a) => a.status === 200).length;
        const refused = answers.filter((a) => a.status !== 200);
        assert.ok(granted >= 500 && granted < 600, `${granted} granted`);
        for (const r of refused) {
          assert.equal(r.status, 409, r.text);
          assert.equal(r.kind, "failed_lock_semaphore_full");
          assert.match(
            r.value!,
            /^group big cannot list another holder: its stored document would break a limit every reader enforces \(document is 26\d{4} bytes, more than 262144\); retry after a holder releases$/,
          );
        }
        const doc = await stored(fleetLockKey("big"));
        assert.equal(doc.holders.length, granted);
        const status = await ctl("--group", "big", "status");
        assert.equal(status.code, 0, status.stderr);
        // Holders keep working: one releases, and a refused one fits now.
        const holder = ids.find((_, i) => answers[i]!.status === 200)!;
        const waiting = ids.find((_, i) => answers[i]!.status === 409)!;
        assert.equal(
          (await call(serve, "steady-state", holder, "big")).status,
          200,
        );
        assert.equal(
          (await call(serve, "pre-reboot", waiting, "big")).status,
          200,
        );
        assert.equal(
          (await call(serve, "pre-reboot", holder, "big")).status,
          409,
        );
        assert.equal(
          (await stored(fleetLockKey("big"))).holders.length,
          granted,
        );
      },
    );

    await t.step(
      "serve: the holder-count limit is a 409 too, and an id past 256 bytes a 400",
      async () => {
        const key = fleetLockKey("many");
        const short = (i: number) => `m${String(i).padStart(5, "0")}`;
        const filled = Array.from(
          { length: MAX_HOLDERS - 1 },
          (_, i) => short(i),
        );
        await raw.put(key).value(formatSemaphore(docOf(5000, filled)));
        assert.equal(
          (await call(serve, "pre-reboot", "z-last", "many")).status,
          200,
        );
        const over = await call(serve, "pre-reboot", "z-over", "many");
        assert.equal(over.status, 409, over.text);
        assert.match(over.value!, /"holders" has 4097 entries, more than 4096/);
        assert.equal((await stored(key)).holders.length, MAX_HOLDERS);
        const long = await call(serve, "pre-reboot", "x".repeat(257), "many");
        assert.equal(long.status, 400, long.text);
        assert.match(long.value!, /client_params\.id is longer than 256 bytes/);
        assert.equal(
          (await call(serve, "steady-state", short(7), "many")).status,
          200,
        );
        assert.equal(
          (await call(serve, "pre-reboot", "z-over", "many")).status,
          200,
        );
      },
    );

    await t.step(
      "locksmithctl lock: one line naming the byte limit, the document unchanged, holders still working",
      async () => {
        const key = semaphoreKey("ctl-big");
        const filled = Array.from({ length: 511 }, (_, i) => escapedId(i));
        await raw.put(key).value(formatSemaphore(docOf(600, filled)));
        const fits = await ctl("--group", "ctl-big", "lock", escapedId(511));
        assert.equal(fits.code, 0, fits.stderr);
        const before = await raw.get(key).string();
        const refused = await ctl("--group", "ctl-big", "lock", escapedId(512));
        assert.equal(refused.code, 1);
        assert.match(
          refused.stderr,
          /^Error locking: no room for "0512\\\\[^ ]*" \(256 characters\) in the semaphore document: with it, document is 262\d{3} bytes, more than 262144 \(the limit every reader enforces\); a holder must release first\n$/,
        );
        assert.equal(await raw.get(key).string(), before, "nothing written");
        assert.equal((await ctl("--group", "ctl-big", "status")).code, 0);
        const unlocked = await ctl(
          "--group",
          "ctl-big",
          "unlock",
          escapedId(3),
        );
        assert.equal(unlocked.code, 0, unlocked.stderr);
        const retried = await ctl("--group", "ctl-big", "lock", escapedId(512));
        assert.equal(retried.code, 0, retried.stderr);
        assert.equal((await stored(key)).holders.length, 512);
      },
    );

    await t.step(
      "locksmithctl set-max that would grow a full document past the byte limit is refused, naming it",
      async () => {
        const key = semaphoreKey("ctl-edge");
        // A document exactly at the limit with max 600: set-max 100000
        // adds 3 digits to "max" and 3 to "semaphore".
        const full = formatSemaphore(docOfSize(600, MAX_DOCUMENT_BYTES));
        assert.equal(sizeOf(full), MAX_DOCUMENT_BYTES);
        await raw.put(key).value(full);
        const refused = await ctl("--group", "ctl-edge", "set-max", "100000");
        assert.equal(refused.code, 1);
        assert.match(
          refused.stderr,
          /^Error setting max: refusing to write the semaphore document at \S+ctl-edge\S+: document is 262150 bytes, more than 262144 \(the limit every reader enforces\); a holder must release first\n$/,
        );
        assert.equal(await raw.get(key).string(), full, "nothing written");
        assert.equal(
          (await ctl("--group", "ctl-edge", "set-max", "601")).code,
          0,
        );
      },
    );

    await t.step(
      "locksmithctl: the holder-count, id-length and slot-count limits, each one line",
      async () => {
        const key = semaphoreKey("ctl-many");
        const filled = Array.from(
          { length: MAX_HOLDERS - 1 },
          (_, i) => `m${String(i).padStart(5, "0")}`,
        );
        await raw.put(key).value(formatSemaphore(docOf(5000, filled)));
        assert.equal((await ctl("--group", "ctl-many", "lock", "z1")).code, 0);
        const over = await ctl("--group", "ctl-many", "lock", "z2");
        assert.equal(over.code, 1);
        assert.match(
          over.stderr,
          /^Error locking: no room for "z2" in the semaphore document: with it, "holders" has 4097 entries, more than 4096 \(the limit every reader enforces\); a holder must release first\n$/,
        );
        const long = await ctl("--group", "ctl-many", "lock", "x".repeat(257));
        assert.equal(long.code, 2);
        assert.match(long.stderr, /is longer than 256 bytes\n$/);
        assert.equal(long.stderr.split("\n").length, 2, "one line");
        const max = await ctl("--group", "ctl-many", "set-max", "1000001");
        assert.equal(max.code, 2);
        assert.match(max.stderr, /1000000/);
        assert.equal((await stored(key)).holders.length, MAX_HOLDERS);
        assert.equal(
          (await ctl("--group", "ctl-many", "unlock", "z1")).code,
          0,
        );
        assert.equal((await ctl("--group", "ctl-many", "lock", "z2")).code, 0);
      },
    );
  } finally {
    await serve.close();
    raw.close();
    await etcd.close();
  }
});

Deno.test("serve checks the token before the header, the body and the group", async () => {
  const etcd = await startEtcd();
  const serve = await startServeProcess({
    endpoint: etcd.endpoint,
    args: ["--groups", "web,db", "--token", "web=w3b", "--token", "db=d8"],
  });
  try {
    // Without a valid token: 401 alone, whatever else is wrong.
    for (
      const [what, headers, body] of [
        ["an unknown group", {}, undefined],
        [
          "a served group",
          {},
          JSON.stringify({ client_params: { id: "m", group: "web" } }),
        ],
        ["a malformed body", {}, "{not json"],
        ["no protocol header", { "fleet-lock-protocol": "" }, undefined],
        ["a guessed token", { authorization: "Bearer guess" }, undefined],
      ] as [string, Record<string, string>, string | undefined][]
    ) {
      const r = await call(serve, "pre-reboot", "m", "secret", headers, body);
      assert.equal(r.status, 401, `${what}: ${r.text}`);
      assert.equal(r.kind, "unauthorized");
      assert.doesNotMatch(r.value!, /secret|web/, what);
    }
    // A token of another group: 401, whether that group is served or not.
    for (const group of ["web", "secret"]) {
      const r = await call(serve, "pre-reboot", "m", group, {
        authorization: "Bearer d8",
      });
      assert.equal(r.status, 401, r.text);
    }
    // With the group's token, the other checks come in turn.
    const bad = await call(serve, "pre-reboot", "m", "web", {
      authorization: "Bearer w3b",
    }, "{not json");
    assert.equal(bad.status, 400, bad.text);
    const ok = await call(serve, "pre-reboot", "m", "web", {
      authorization: "Bearer w3b",
    });
    assert.equal(ok.status, 200, ok.text);
  } finally {
    await serve.close();
    await etcd.close();
  }
});
