/** The FleetLock protocol, serve options and tokens: pure, every validation path. */

import assert from "node:assert/strict";
import {
  checkProtocolHeader,
  endpointOf,
  errorBody,
  FLEETLOCK_ERROR_KINDS,
  FLEETLOCK_ERROR_STATUS,
  FleetLockError,
  type FleetLockErrorKind,
  fleetLockKey,
  groupDefect,
  parseClientParams,
  semaphoreGroupOf,
} from "../lib/fleetlock/protocol/protocol.ts";
import {
  parseListen,
  parseServeArgs,
  resolveServeOptions,
  SERVE_ENV_KEYS,
  SERVE_OPTIONS,
} from "../lib/serve/serve_options.ts";
import { SERVE_USAGE } from "../lib/serve/serve_help.ts";
import { GroupTokens, tokenOf } from "../lib/serve/auth.ts";
import { DEFAULT_SEMAPHORE_KEY, semaphoreKey } from "../lib/semaphore/keys.ts";
import { UsageError } from "../lib/common/errors.ts";

/** Exactly the bytes Zincati sends: serde_json pretty-printed, `id` before `group`, no newline. */
const ZINCATI_BODY = `{
  "client_params": {
    "id": "975228d46dc94622b9bbe16671e2b58d",
    "group": "default"
  }
}`;

function refusal(body: Uint8Array | string): FleetLockError {
  try {
    parseClientParams(body);
  } catch (error) {
    assert.ok(error instanceof FleetLockError, String(error));
    return error;
  }
  assert.fail(`accepted ${JSON.stringify(body)}`);
}

function badRequest(body: Uint8Array | string, pattern: RegExp): void {
  const error = refusal(body);
  assert.equal(error.kind, "bad_request");
  assert.equal(error.status, 400);
  assert.match(error.message, pattern);
  assert.doesNotMatch(error.message, /\n/);
}

const params = (value: unknown) => JSON.stringify({ client_params: value });

Deno.test("parseClientParams reads Zincati's body byte for byte", () => {
  const bytes = new TextEncoder().encode(ZINCATI_BODY);
  assert.deepEqual(parseClientParams(bytes), {
    id: "975228d46dc94622b9bbe16671e2b58d",
    group: "default",
  });
});

Deno.test("parseClientParams ignores key order, whitespace and extra fields", () => {
  assert.deepEqual(
    parseClientParams(
      '{"extra":1,"client_params":{"group":"web.eu-1","note":"x","id":"Node-A"}}',
    ),
    { id: "Node-A", group: "web.eu-1" },
  );
});

Deno.test("parseClientParams refuses bodies that are not a JSON object", () => {
  badRequest("", /body is empty/);
  badRequest("  \n", /body is empty/);
  badRequest("{", /not valid JSON/);
  badRequest("\uFEFF" + ZINCATI_BODY, /not valid JSON/);
  badRequest("[]", /body is a list, not a JSON object/);
  badRequest("null", /body is null/);
  badRequest('"text"', /body is a string/);
  badRequest("42", /body is a number/);
  badRequest("[".repeat(60_000), /not valid JSON/);
});

Deno.test("parseClientParams refuses bytes that are not UTF-8", () => {
  badRequest(new Uint8Array([0x7b, 0xff, 0x7d]), /not valid UTF-8/);
});

Deno.test("parseClientParams refuses a missing or malformed client_params", () => {
  badRequest("{}", /has no "client_params"/);
  badRequest('{"__proto__":{"client_params":{}}}', /has no "client_params"/);
  badRequest(params(null), /"client_params" is null, not an object/);
  badRequest(params([]), /"client_params" is a list/);
  badRequest(params("x"), /"client_params" is a string/);
});

Deno.test("parseClientParams names the id's defect", () => {
  badRequest(params({ group: "default" }), /has no "id"/);
  badRequest(
    params({ id: 7, group: "default" }),
    /id is a number, not a string/,
  );
  badRequest(params({ id: null, group: "default" }), /id is null/);
  badRequest(params({ id: "", group: "default" }), /id is empty/);
  badRequest(
    params({ id: "a\u0000b", group: "default" }),
    /id contains a control character/,
  );
  badRequest(params({ id: "a\nb", group: "default" }), /control character/);
  badRequest(
    params({ id: "x".repeat(10_000), group: "default" }),
    /id is longer than 256 bytes/,
  );
  badRequest(
    params({ id: "\ud800", group: "default" }),
    /id is not valid Unicode/,
  );
});

Deno.test("parseClientParams names the group's defect", () => {
  badRequest(params({ id: "a" }), /has no "group"/);
  badRequest(params({ id: "a", group: ["x"] }), /group is a list/);
  badRequest(params({ id: "a", group: "" }), /group is empty/);
  badRequest(
    params({ id: "a", group: "prod/db" }),
    /group "prod\/db" does not match \^\[a-zA-Z0-9\.-\]\+\$/,
  );
  badRequest(params({ id: "a", group: "a b" }), /does not match/);
  badRequest(params({ id: "a", group: "ü" }), /does not match/);
  badRequest(
    params({ id: "a", group: "g".repeat(300) }),
    /group is longer than 256 bytes/,
  );
});

Deno.test("a huge id is refused without echoing it", () => {
  const error = refusal(params({ id: "y".repeat(60_000), group: "default" }));
  assert.ok(error.message.length < 100, error.message);
});

Deno.test("checkProtocolHeader wants exactly one fleet-lock-protocol: true", () => {
  checkProtocolHeader("true");
  checkProtocolHeader(" true ");
  for (
    const [value, pattern] of [
      [null, /missing header "fleet-lock-protocol: true"/],
      ["false", /is "false", expected "true" given once/],
      ["TRUE", /expected "true"/],
      ["true, true", /is "true, true"/],
      ["", /is ""/],
    ] as const
  ) {
    assert.throws(
      () => checkProtocolHeader(value),
      (e) =>
        e instanceof FleetLockError && e.kind === "bad_request" &&
        pattern.test(e.message),
    );
  }
});

Deno.test("endpointOf knows exactly the two v1 paths", () => {
  assert.equal(endpointOf("/v1/pre-reboot"), "pre-reboot");
  assert.equal(endpointOf("/v1/steady-state"), "steady-state");
  for (
    const path of [
      "/",
      "/v1/pre-reboot/",
      "/base/v1/pre-reboot",
      "/V1/pre-reboot",
    ]
  ) {
    assert.equal(endpointOf(path), undefined, path);
  }
});

Deno.test("group default is the default semaphore key, others the group key", () => {
  assert.equal(fleetLockKey("default"), DEFAULT_SEMAPHORE_KEY);
  assert.equal(semaphoreGroupOf("default"), undefined);
  assert.equal(fleetLockKey("web"), semaphoreKey("web"));
  assert.equal(
    fleetLockKey("web"),
    "coreos.com/updateengine/rebootlock/groups/web/semaphore",
  );
  assert.equal(semaphoreGroupOf("Default"), "Default");
});

Deno.test("groupDefect accepts the protocol's alphabet only", () => {
  assert.equal(groupDefect("a-Z.0"), undefined);
  assert.equal(groupDefect(3), "is not a string");
  assert.match(groupDefect("a_b") ?? "", /does not match/);
});

Deno.test("every error kind has one status and a {kind, value} body", () => {
  const statuses = FLEETLOCK_ERROR_KINDS.map((k) => FLEETLOCK_ERROR_STATUS[k]);
  assert.equal(new Set(statuses).size, statuses.length);
  assert.ok(statuses.every((s) => s >= 400 && s < 600));
  const kind: FleetLockErrorKind = "failed_lock_semaphore_full";
  assert.deepEqual(JSON.parse(errorBody(kind, "all 3 slots held")), {
    kind,
    value: "all 3 slots held",
  });
  assert.equal(new FleetLockError(kind, "x").status, 409);
});

// ------------------------------------------------------------ options

function usageError(run: () => unknown, pattern: RegExp): void {
  assert.throws(run, (e) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.match(e.message, pattern);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
}

Deno.test("serve options default to 127.0.0.1:8080, no TLS, any group, no tokens", () => {
  const options = resolveServeOptions({}, {});
  assert.deepEqual(options.listen, { hostname: "127.0.0.1", port: 8080 });
  assert.equal(options.tls, undefined);
  assert.equal(options.groups, undefined);
  assert.equal(options.slots.size, 0);
  assert.equal(options.tokens.size, 0);
  assert.equal(options.readTimeoutMs, 10_000);
});

Deno.test("a serve flag wins over its variable; an empty value means the default", () => {
  const env = {
    LOCKSMITHD_FLEETLOCK_LISTEN: "0.0.0.0:9000",
    LOCKSMITHD_FLEETLOCK_READ_TIMEOUT: "",
  };
  assert.deepEqual(resolveServeOptions({}, env).listen, {
    hostname: "0.0.0.0",
    port: 9000,
  });
  const { values } = parseServeArgs(["--listen", "[::1]:0"]);
  const options = resolveServeOptions(values, env);
  assert.deepEqual(options.listen, { hostname: "::1", port: 0 });
  assert.equal(options.readTimeoutMs, 10_000);
});

Deno.test("parseListen accepts HOST:PORT and [IPv6]:PORT only", () => {
  assert.deepEqual(parseListen("localhost:1"), {
    hostname: "localhost",
    port: 1,
  });
  for (
    const bad of ["8080", ":8080", "h:", "h:x", "::1:80", "h:70000", "a b:1"]
  ) {
    assert.equal(typeof parseListen(bad), "string", bad);
  }
  usageError(
    () => resolveServeOptions({}, { LOCKSMITHD_FLEETLOCK_LISTEN: "nope" }),
    /^LOCKSMITHD_FLEETLOCK_LISTEN="nope" \(from environment\) is not HOST:PORT/,
  );
  usageError(
    () => resolveServeOptions(parseServeArgs(["--listen=h:99999"]).values, {}),
    /\(from --listen\) has port 99999, outside 0\.\.65535/,
  );
});

Deno.test("groups, slots and tokens are parsed from lists and repeated flags", () => {
  const { values } = parseServeArgs([
    "--groups",
    "default,web",
    "--slots",
    "default=2",
    "--slots=web=0",
    "--token",
    "web=s3cret-token",
    "--token",
    "*=admin.token",
  ]);
  const options = resolveServeOptions(values, {
    LOCKSMITHD_FLEETLOCK_SLOTS: "default=9",
  });
  assert.deepEqual(options.groups, ["default", "web"]);
  assert.deepEqual([...options.slots], [["default", 2], ["web", 0]]);
  assert.deepEqual([...options.tokens], [["web", ["s3cret-token"]], [
    "*",
    ["admin.token"],
  ]]);
});

Deno.test("bad groups, slots and tokens are refused naming the key", () => {
  const env = (key: string, value: string) => () =>
    resolveServeOptions({}, { [key]: value });
  usageError(
    env("LOCKSMITHD_FLEETLOCK_GROUPS", "ok,not/ok"),
    /GROUPS="ok,not\/ok" \(from environment\) has a group that "not\/ok" does not match/,
  );
  usageError(env("LOCKSMITHD_FLEETLOCK_SLOTS", "web"), /not GROUP=VALUE/);
  usageError(
    env("LOCKSMITHD_FLEETLOCK_SLOTS", "web=-1"),
    /expected an integer from 0 to 1000000/,
  );
  usageError(
    env("LOCKSMITHD_FLEETLOCK_SLOTS", "web=2000000"),
    /"2000000" slots/,
  );
  usageError(env("LOCKSMITHD_FLEETLOCK_SLOTS", "web=1,web=2"), /slots twice/);
  usageError(env("LOCKSMITHD_FLEETLOCK_SLOTS", "*=1"), /has a group that/);
  usageError(
    env("LOCKSMITHD_FLEETLOCK_TOKENS", "web="),
    /token for group web that is empty/,
  );
  usageError(
    () =>
      resolveServeOptions({}, {
        LOCKSMITHD_FLEETLOCK_GROUPS: "web",
        LOCKSMITHD_FLEETLOCK_SLOTS: "db=1",
      }),
    /names group "db", which is not in LOCKSMITHD_FLEETLOCK_GROUPS/,
  );
});

Deno.test("an error about tokens never shows them", () => {
  usageError(
    () =>
      resolveServeOptions({}, {
        LOCKSMITHD_FLEETLOCK_TOKENS: "web=good-secret,db=bad secret",
      }),
    /^LOCKSMITHD_FLEETLOCK_TOKENS=\(value not shown: it holds tokens\)/,
  );
  try {
    resolveServeOptions({}, { LOCKSMITHD_FLEETLOCK_TOKENS: "web=a b" });
  } catch (error) {
    assert.doesNotMatch((error as Error).message, /good-secret|a b/);
  }
});

Deno.test("TLS needs both files, the read timeout a positive duration", () => {
  usageError(
    () =>
      resolveServeOptions(parseServeArgs(["--tls-cert", "c.pem"]).values, {}),
    /LOCKSMITHD_FLEETLOCK_TLS_CERT \(from --tls-cert\) needs LOCKSMITHD_FLEETLOCK_TLS_KEY \(--tls-key\) too/,
  );
  assert.deepEqual(
    resolveServeOptions({}, {
      LOCKSMITHD_FLEETLOCK_TLS_CERT: "c.pem",
      LOCKSMITHD_FLEETLOCK_TLS_KEY: "k.pem",
    }).tls,
    { certFile: "c.pem", keyFile: "k.pem" },
  );
  usageError(
    () => resolveServeOptions({}, { LOCKSMITHD_FLEETLOCK_READ_TIMEOUT: "0" }),
    /is not a duration longer than 0/,
  );
  usageError(
    () => resolveServeOptions({}, { LOCKSMITHD_FLEETLOCK_READ_TIMEOUT: "30d" }),
    /is longer than 24d/,
  );
  assert.equal(
    resolveServeOptions({}, { LOCKSMITHD_FLEETLOCK_READ_TIMEOUT: "250ms" })
      .readTimeoutMs,
    250,
  );
});

Deno.test("parseServeArgs splits etcd flags from serve flags and refuses the rest", () => {
  const args = parseServeArgs([
    "--config",
    "/a.conf",
    "--endpoint",
    "http://e1:2379",
    "--endpoint=http://e2:2379",
    "--listen",
    "127.0.0.1:0",
  ]);
  assert.deepEqual(args.configFiles, ["/a.conf"]);
  assert.deepEqual(args.daemonFlags, {
    LOCKSMITHD_ENDPOINT: "http://e1:2379,http://e2:2379",
  });
  assert.deepEqual(args.values, { LOCKSMITHD_FLEETLOCK_LISTEN: "127.0.0.1:0" });
  assert.equal(parseServeArgs(["-h"]).help, true);
  assert.equal(parseServeArgs(["--version"]).version, true);
  usageError(
    () => parseServeArgs(["--strategy", "reboot"]),
    /^unknown flag --strategy; see locksmithd serve --help$/,
  );
  usageError(() => parseServeArgs(["extra"]), /unexpected argument "extra"/);
  usageError(
    () => parseServeArgs(["--listen"]),
    /--listen needs a value \(HOST:PORT\)/,
  );
  usageError(
    () => parseServeArgs(["--listen", "--groups=a"]),
    /--listen needs a value/,
  );
  usageError(
    () => parseServeArgs(["--listen=a:1", "--listen=b:2"]),
    /--listen given twice/,
  );
  usageError(() => parseServeArgs(["--help=yes"]), /--help takes no value/);
});

Deno.test("every serve option is a LOCKSMITHD_FLEETLOCK_ variable and in the help", () => {
  for (const option of SERVE_OPTIONS) {
    assert.match(option.key, /^LOCKSMITHD_FLEETLOCK_[A-Z_]+$/);
    assert.ok(
      SERVE_USAGE.includes(`--${option.flag.name} ${option.flag.value}`),
    );
    assert.ok(SERVE_USAGE.includes(option.key));
  }
  assert.equal(new Set(SERVE_ENV_KEYS).size, SERVE_OPTIONS.length);
  for (const line of SERVE_USAGE.split("\n")) {
    assert.ok(line.length <= 80, line);
  }
});

// ------------------------------------------------------------ tokens

Deno.test("tokenOf reads Bearer tokens and the password of Basic credentials", () => {
  assert.equal(tokenOf("Bearer abc.def"), "abc.def");
  assert.equal(tokenOf("bearer  abc"), "abc");
  assert.equal(tokenOf(`Basic ${btoa("zincati:s3cret")}`), "s3cret");
  assert.equal(tokenOf(`Basic ${btoa(":s3cret:x")}`), "s3cret:x");
  for (
    const bad of [
      null,
      "",
      "Bearer",
      "Bearer a b",
      "Token abc",
      "Basic !!!",
      `Basic ${btoa("nocolon")}`,
    ]
  ) {
    assert.equal(tokenOf(bad), undefined, String(bad));
  }
});

Deno.test("GroupTokens allows a group's own tokens and the * tokens only", () => {
  const tokens = new GroupTokens(
    new Map([["web", ["w1", "w2"]], ["*", ["admin"]]]),
  );
  assert.ok(tokens.allows("web", "Bearer w1"));
  assert.ok(tokens.allows("web", "Bearer w2"));
  assert.ok(tokens.allows("web", "Bearer admin"));
  assert.ok(tokens.allows("db", "Bearer admin"));
  assert.ok(!tokens.allows("db", "Bearer w1"));
  assert.ok(!tokens.allows("web", null));
  assert.ok(!tokens.allows("web", "Bearer w1, Bearer w1"));
  assert.ok(!tokens.allows("default", "Bearer nope"));
  const open = new GroupTokens(new Map());
  assert.equal(open.enabled, false);
  assert.ok(open.allows("anything", null));
});
