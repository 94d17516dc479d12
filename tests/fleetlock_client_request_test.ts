/**
 * What locksmithd's FleetLock client sends and how it reads answers, pure:
 * URL joining by WHATWG rules as Zincati joins, the body byte for byte, the
 * headers, error bodies and kinds, which answers say that the server is
 * up, the success lines of locksmith's own server (read through its real
 * handler), and Zincati's app-specific id
 * against known vectors and one computed by openssl.
 */

import assert from "node:assert/strict";
import {
  answeredByServer,
  authorizationOf,
  BEARER_TOKEN_PATTERN,
  describeRefusal,
  isFull,
  parseErrorBody,
  readGrant,
  requestBody,
  requestHeaders,
  resolveBaseUrl,
} from "../lib/fleetlock/protocol/client_request.ts";
import {
  appSpecificId,
  id128Defect,
  ZINCATI_APP_ID,
  zincatiId,
} from "../lib/fleetlock/protocol/zincati_id.ts";
import {
  parseClientParams,
  TOKEN_PATTERN,
} from "../lib/fleetlock/protocol/protocol.ts";
import { tokenOf } from "../lib/serve/auth.ts";
import { createFleetLockHandler } from "../lib/serve/handler.ts";
import { GroupSemaphores } from "../lib/serve/semaphores.ts";
import { FakeClock, FakeStore } from "./fakes.ts";

// ------------------------------------------------------------ URL joining

Deno.test("the endpoints are joined to the base URL exactly as new URL(reference, base) joins them", () => {
  const cases: [string, string, string][] = [
    [
      "http://h:8080/",
      "http://h:8080/v1/pre-reboot",
      "http://h:8080/v1/steady-state",
    ],
    [
      "http://h:8080",
      "http://h:8080/v1/pre-reboot",
      "http://h:8080/v1/steady-state",
    ],
    [
      "http://h/base/",
      "http://h/base/v1/pre-reboot",
      "http://h/base/v1/steady-state",
    ],
    ["http://h/base", "http://h/v1/pre-reboot", "http://h/v1/steady-state"],
    [
      "http://h/a/b?x=1#f",
      "http://h/a/v1/pre-reboot",
      "http://h/a/v1/steady-state",
    ],
    [
      "https://h:443/a/b/",
      "https://h/a/b/v1/pre-reboot",
      "https://h/a/b/v1/steady-state",
    ],
    [
      "http://[::1]:8080/",
      "http://[::1]:8080/v1/pre-reboot",
      "http://[::1]:8080/v1/steady-state",
    ],
  ];
  for (const [base, pre, steady] of cases) {
    const { urls } = resolveBaseUrl(base);
    assert.equal(urls["pre-reboot"], pre, base);
    assert.equal(urls["steady-state"], steady, base);
    assert.equal(urls["pre-reboot"], new URL("v1/pre-reboot", base).href);
    assert.equal(
      resolveBaseUrl(base).probeUrl,
      pre.replace("v1/pre-reboot", "-/healthy"),
      base,
    );
  }
});

Deno.test("a base without a trailing slash is warned about, naming the dropped segment and where requests go", () => {
  assert.deepEqual(resolveBaseUrl("http://h:8080/").warnings, []);
  assert.deepEqual(resolveBaseUrl("http://h:8080").warnings, []);
  assert.deepEqual(resolveBaseUrl("http://h/fleet/lock").warnings, [
    'LOCKSMITHD_FLEETLOCK_URL "http://h/fleet/lock" does not end in "/": its last path segment "lock" is replaced, so requests go to http://h/fleet/v1/pre-reboot (Zincati resolves it the same way); end it with "/" to keep the segment',
  ]);
  assert.deepEqual(resolveBaseUrl("http://h/lock/?token=x").warnings, [
    'LOCKSMITHD_FLEETLOCK_URL "http://h/lock/?token=x" has a query or fragment, which is dropped: requests go to http://h/lock/v1/pre-reboot',
  ]);
});

Deno.test("the base URL's userinfo becomes Basic credentials and is never part of a request URL or message", () => {
  const resolved = resolveBaseUrl("https://zincati:s3cr%2Ft@h/lock");
  assert.deepEqual(resolved.basic, { user: "zincati", password: "s3cr/t" });
  assert.equal(resolved.shown, "https://h/lock");
  assert.equal(resolved.urls["pre-reboot"], "https://h/v1/pre-reboot");
  for (const text of [...resolved.warnings, ...Object.values(resolved.urls)]) {
    assert.doesNotMatch(text, /s3cr|zincati/);
  }
  assert.equal(resolveBaseUrl("http://h/").basic, undefined);
});

// ------------------------------------------------------------ request

const ZINCATI_BODY =
  '{\n  "client_params": {\n    "id": "975228d46dc94622b9bbe16671e2b58d",\n    "group": "default"\n  }\n}';

Deno.test("the body is byte for byte Zincati's: pretty-printed, two spaces, id before group, no trailing newline", () => {
  const body = requestBody("975228d46dc94622b9bbe16671e2b58d", "default");
  assert.deepEqual(
    new TextEncoder().encode(body),
    new TextEncoder().encode(ZINCATI_BODY),
  );
  assert.deepEqual(parseClientParams(new TextEncoder().encode(body)), {
    id: "975228d46dc94622b9bbe16671e2b58d",
    group: "default",
  });
  // serde_json escapes `"` and `\` and leaves other text as it is.
  assert.equal(
    requestBody('node "7" \\ é', "web"),
    '{\n  "client_params": {\n    "id": "node \\"7\\" \\\\ é",\n    "group": "web"\n  }\n}',
  );
});

Deno.test("the headers are fleet-lock-protocol: true and the user agent, with credentials only when given, never a Content-Type", () => {
  assert.deepEqual(requestHeaders(undefined, "locksmithd/1"), {
    "fleet-lock-protocol": "true",
    "user-agent": "locksmithd/1",
  });
  assert.equal(
    requestHeaders({ bearer: "abc.DEF-1" }, "x").authorization,
    "Bearer abc.DEF-1",
  );
  const basic = authorizationOf({ user: "zincati", password: "tök/en" });
  assert.equal(basic, `Basic ${btoa("zincati:t\u00c3\u00b6k/en")}`);
  // locksmith's server takes the Basic password as the token.
  assert.equal(tokenOf(basic), "tök/en");
  assert.equal(tokenOf(authorizationOf({ bearer: "abc" })), "abc");
});

Deno.test("the client's token pattern is the server's", () => {
  assert.equal(BEARER_TOKEN_PATTERN.source, TOKEN_PATTERN.source);
});

// ------------------------------------------------------------ answers

Deno.test("an error body is read as {kind, value} whatever its Content-Type, extra fields ignored; anything else is generic_http_<status>", () => {
  assert.deepEqual(
    parseErrorBody(
      409,
      '{"kind":"failed_lock_semaphore_full","value":"all 2 slot(s) of group default are held; retry later"}',
    ),
    {
      kind: "failed_lock_semaphore_full",
      value: "all 2 slot(s) of group default are held; retry later",
    },
  );
  // airlock: compact JSON in a text/plain body.
  assert.deepEqual(
    parseErrorBody(
      500,
      '{"kind":"failed_lock","value":"all 1 semaphore slots currently locked"}\n',
    ),
    { kind: "failed_lock", value: "all 1 semaphore slots currently locked" },
  );
  assert.deepEqual(
    parseErrorBody(423, '{"kind":"lock_held","value":"held by x","extra":1}'),
    { kind: "lock_held", value: "held by x" },
  );
  for (
    const body of [
      "",
      "<html>Bad Gateway</html>",
      '{"kind":"x"}',
      "[1]",
      "null",
    ]
  ) {
    assert.deepEqual(parseErrorBody(502, body), {
      kind: "generic_http_502",
      value: undefined,
    });
  }
});

Deno.test("full means every slot is held: our 409, airlock's failed_lock, poseidon's 423 lock_held", () => {
  assert.equal(isFull(409, "failed_lock_semaphore_full"), true);
  assert.equal(isFull(500, "failed_lock"), true);
  assert.equal(isFull(423, "lock_held"), true);
  assert.equal(isFull(409, "generic_http_409"), true);
  for (
    const [status, kind] of [
      [503, "etcd_unavailable"],
      [500, "internal_error"],
      [401, "unauthorized"],
      [404, "not_found"],
      [502, "generic_http_502"],
    ] as const
  ) {
    assert.equal(isFull(status, kind), false, kind);
  }
});

Deno.test("the server is up when it answers anything of its own; a 502, 503 or 504 without a FleetLock body is a gateway answering for it", () => {
  const up = (status: number, text: string) =>
    answeredByServer(status, parseErrorBody(status, text));
  const fleetLock = (kind: string) =>
    JSON.stringify({ kind, value: "said by the server" });
  // The server's own refusals, "full" among them, whatever the status.
  assert.equal(up(409, fleetLock("failed_lock_semaphore_full")), true);
  assert.equal(up(423, fleetLock("lock_held")), true);
  assert.equal(up(500, fleetLock("failed_lock")), true);
  assert.equal(up(503, fleetLock("etcd_unavailable")), true);
  assert.equal(up(401, fleetLock("unauthorized")), true);
  // Bodies that are not FleetLock's: only the gateway statuses are not the server.
  assert.equal(up(404, "404 page not found\n"), true);
  assert.equal(up(400, "wrong 'fleet-lock-protocol' header"), true);
  assert.equal(up(500, ""), true);
  for (const status of [502, 503, 504]) {
    assert.equal(up(status, "<html>Bad Gateway</html>"), false, `${status}`);
    assert.equal(up(status, ""), false, `${status}`);
  }
});

Deno.test("a refusal is one line naming the server, the status and the kind, with the server's words quoted", () => {
  const url = "http://h:8080/v1/pre-reboot";
  assert.equal(
    describeRefusal(url, 409, {
      kind: "failed_lock_semaphore_full",
      value: "all 2 slot(s) of group default are held; retry later",
    }),
    'FleetLock server http://h:8080/v1/pre-reboot answered 409 failed_lock_semaphore_full: "all 2 slot(s) of group default are held; retry later"',
  );
  assert.equal(
    describeRefusal(url, 502, { kind: "generic_http_502", value: undefined }),
    "FleetLock server http://h:8080/v1/pre-reboot answered 502 generic_http_502",
  );
  const hostile = describeRefusal(url, 500, {
    kind: "bad\nkind",
    value: "line\n\u001b[31mred",
  });
  assert.ok(!hostile.includes("\n") && !hostile.includes("\u001b"));
  assert.match(hostile, /answered 500 "bad\\nkind": "line\\n\\u001b\[31mred"$/);
});

Deno.test("any 2xx is a grant; the lines of locksmith's own server, produced by its real handler, also say what it did", async () => {
  const store = new FakeStore(new FakeClock(new Date(0)), {
    semaphore: 1,
    max: 2,
    holders: ["other"],
  });
  const semaphores = new GroupSemaphores({
    openStore: () => Promise.resolve(store),
  });
  const handle = createFleetLockHandler({
    service: {
      preReboot: (g, id) => semaphores.preReboot(g, id),
      steadyState: (g, id) => semaphores.steadyState(g, id),
      ping: () => semaphores.ping(),
    },
  });
  const call = async (endpoint: string) => {
    const response = await handle(
      new Request(`http://h/v1/${endpoint}`, {
        method: "POST",
        headers: requestHeaders(undefined, "locksmithd/test"),
        body: new TextEncoder().encode(requestBody("node 1", "default")),
      }),
    );
    return readGrant(response.status, await response.text());
  };
  assert.deepEqual(await call("pre-reboot"), {
    ok: true,
    status: 200,
    result: "locked",
    held: 2,
    max: 2,
  });
  assert.deepEqual(await call("pre-reboot"), {
    ok: true,
    status: 200,
    result: "already_held",
    held: 2,
    max: 2,
  });
  assert.deepEqual(await call("steady-state"), {
    ok: true,
    status: 200,
    result: "released",
    held: 1,
    max: 2,
  });
  assert.deepEqual(await call("steady-state"), {
    ok: true,
    status: 200,
    result: "not_held",
    held: 1,
    max: 2,
  });
  await semaphores.close();
  // airlock: 200 with an empty body; poseidon: 200 with its own text.
  assert.deepEqual(readGrant(200, ""), { ok: true, status: 200 });
  assert.deepEqual(readGrant(204, "obtained reboot lease"), {
    ok: true,
    status: 204,
  });
});

// ------------------------------------------------------------ Zincati's id

Deno.test("Zincati's id matches known vectors: poseidon/fleetlock's and libsystemd's", async () => {
  assert.equal(ZINCATI_APP_ID, "de35106b6ec24688b63afddaa156679b");
  assert.equal(
    await zincatiId("1c09ca98649c4c7abc779cd04c96812e"),
    "978a225b3d7b40e9acd7ce9b62f68444",
  );
  assert.equal(
    await zincatiId("1c09ca98-649c-4c7a-bc77-9cd04c96812e"),
    "978a225b3d7b40e9acd7ce9b62f68444",
  );
  assert.equal(
    await appSpecificId(
      "2e074e9b299c41a59923c51ae16f279b",
      "033b1b9b264441fcaa173e9e5bf35c5a",
    ),
    "4d4a86c9c6644a479560ded5d19a30c5",
  );
  // Upper-case machine ids name the same bytes.
  assert.equal(
    await zincatiId("1C09CA98649C4C7ABC779CD04C96812E"),
    "978a225b3d7b40e9acd7ce9b62f68444",
  );
});

Deno.test("Zincati's id equals an HMAC-SHA256 computed by openssl, with the UUID v4 bits set", async () => {
  for (let i = 0; i < 3; i++) {
    const machineId = [...crypto.getRandomValues(new Uint8Array(16))]
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    const appIdBytes = Uint8Array.from(
      ZINCATI_APP_ID.match(/../g)!.map((h) => parseInt(h, 16)),
    );
    const child = new Deno.Command("openssl", {
      args: [
        "dgst",
        "-sha256",
        "-mac",
        "HMAC",
        "-macopt",
        `hexkey:${machineId}`,
        "-hex",
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(appIdBytes);
    await writer.close();
    const out = await child.output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const mac = /([0-9a-f]{64})\s*$/.exec(
      new TextDecoder().decode(out.stdout),
    )![1]!;
    const bytes = mac.slice(0, 32).match(/../g)!.map((h) => parseInt(h, 16));
    bytes[6] = (bytes[6]! & 0x0f) | 0x40;
    bytes[8] = (bytes[8]! & 0x3f) | 0x80;
    const expected = bytes.map((b) => b.toString(16).padStart(2, "0")).join("");
    assert.equal(await zincatiId(machineId), expected, machineId);
    assert.match(expected, /^[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$/);
  }
});

Deno.test("an id that is not 128 bits is refused, naming it", async () => {
  assert.equal(id128Defect("1c09ca98649c4c7abc779cd04c96812e"), undefined);
  assert.match(id128Defect("node-1")!, /is not 32 hexadecimal digits/);
  assert.match(
    id128Defect("1c09ca98649c-4c7a-bc77-9cd04c96812e")!,
    /dashes in the wrong places/,
  );
  await assert.rejects(
    zincatiId("machine-01"),
    /^TypeError: machine id "machine-01" is not 32 hexadecimal digits \(a systemd machine id\)$/,
  );
});
