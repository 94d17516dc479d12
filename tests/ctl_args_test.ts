import assert from "node:assert/strict";
import { DEFAULT_TIMEOUT_MS, parseCtlArgs } from "../lib/ctl/args.ts";
import { UsageError } from "../lib/common/errors.ts";
import { parseDuration } from "../lib/common/duration.ts";
import { VERSION } from "../lib/common/version.ts";

Deno.test("parseCtlArgs() accepts global flags before or after the subcommand", () => {
  const a = parseCtlArgs([
    "--group",
    "g",
    "lock",
    "id1",
    "--endpoint",
    "http://h:1",
  ]);
  assert.equal(a.command, "lock");
  assert.equal(a.id, "id1");
  assert.equal(a.group, "g");
  assert.deepEqual(a.endpoints, ["http://h:1"]);
});

Deno.test("parseCtlArgs() replaces the default endpoint with repeated and comma-separated ones", () => {
  assert.deepEqual(parseCtlArgs(["status"]).endpoints, [
    "http://127.0.0.1:2379",
  ]);
  const inv = parseCtlArgs([
    "status",
    "--endpoint=http://a:1,http://b:2",
    "--endpoint",
    "https://c:3",
  ]);
  assert.deepEqual(inv.endpoints, ["http://a:1", "http://b:2", "https://c:3"]);
});

Deno.test("parseCtlArgs() fills unset flags from LOCKSMITHCTL_ variables, flags win", () => {
  const env = {
    LOCKSMITHCTL_ENDPOINT: "http://env:1",
    LOCKSMITHCTL_GROUP: "envgroup",
    LOCKSMITHCTL_ETCD_CAFILE: "/ca.pem",
    LOCKSMITHCTL_TIMEOUT: "750ms",
  };
  const inv = parseCtlArgs(["status", "--group", "flaggroup"], env);
  assert.deepEqual(inv.endpoints, ["http://env:1"]);
  assert.equal(inv.group, "flaggroup");
  assert.equal(inv.caFile, "/ca.pem");
  assert.equal(inv.timeoutMs, 750);
});

Deno.test("parseCtlArgs() turns --help and no command into help", () => {
  assert.equal(parseCtlArgs([]).command, "help");
  const h = parseCtlArgs(["lock", "--help"]);
  assert.equal(h.command, "help");
  assert.equal(h.helpTopic, "lock");
  assert.equal(parseCtlArgs(["help", "set-max"]).helpTopic, "set-max");
});

const BAD: [string[], RegExp][] = [
  [["frob"], /unknown command "frob"/],
  [["status", "--bogus"], /Unknown option '--bogus'/],
  [["set-max"], /set-max takes 1 argument, got 0/],
  [["set-max", "x"], /set-max: "x" is not a whole number/],
  [["set-max", "-1"], /set-max: "-1" is not a whole number/],
  [["set-max", "1.5"], /set-max: "1.5" is not a whole number/],
  [["lock", "a", "b"], /lock takes at most 1 argument, got 2/],
  [["lock", ""], /id "" is empty/],
  [["lock", "a\tb"], /control character/],
  [["lock", "x".repeat(257)], /longer than 256 bytes/],
  [
    ["status", "--timeout", "soon"],
    /--timeout "soon" is not a positive duration/,
  ],
  [
    ["status", "--endpoint", "127.0.0.1:2379"],
    /endpoint "127.0.0.1:2379" is not a URL/,
  ],
  [["status", "--endpoint", "ftp://h:1"], /is not a URL/],
  [["help", "nope"], /unknown help topic "nope"/],
  [["status", "--group"], /argument missing|requires an argument|--group/],
];

for (const [args, message] of BAD) {
  Deno.test(`parseCtlArgs() rejects ${JSON.stringify(args).slice(0, 60)} with a usage error`, () => {
    assert.throws(
      () => parseCtlArgs(args),
      (e) =>
        e instanceof UsageError && message.test(e.message) &&
        !e.message.includes("\n"),
    );
  });
}

Deno.test("parseCtlArgs() defaults --timeout to 5s", () => {
  assert.equal(parseCtlArgs(["status"]).timeoutMs, DEFAULT_TIMEOUT_MS);
  assert.equal(DEFAULT_TIMEOUT_MS, 5_000);
});

Deno.test("parseDuration() reads Go-style durations", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("0"), 0);
  assert.equal(parseDuration("1.5s"), 1_500);
  assert.equal(parseDuration("5"), undefined);
  assert.equal(parseDuration("-5s"), undefined);
});

Deno.test("VERSION matches deno.json", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  assert.equal(VERSION, config.version);
});
