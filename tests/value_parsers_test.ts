import assert from "node:assert/strict";
import {
  absolutePath,
  anyText,
  command,
  duration,
  holderId,
  keyed,
  limitText,
  oneOf,
  splitHostPort,
  url,
  ValueDefect,
  type ValueParser,
  wholeNumber,
} from "../lib/common/value_parsers.ts";
import {
  helpColumns,
  plainText,
  wrapWords,
} from "../lib/common/help_layout.ts";

/** Asserts that `parse(text)` throws a ValueDefect with exactly `defect`. */
function assertDefect(
  parse: ValueParser<unknown>,
  text: string,
  defect: string,
): void {
  assert.throws(
    () => parse(text),
    (error: unknown) => {
      assert.ok(error instanceof ValueDefect, `not a ValueDefect: ${error}`);
      assert.equal(error.defect, defect, JSON.stringify(text));
      return true;
    },
  );
}

Deno.test("anyText() returns the text as given", () => {
  assert.equal(anyText()(" pass word "), " pass word ");
});

Deno.test("oneOf() accepts exactly the listed choices and names them all when refusing", () => {
  const parse = oneOf(["etcd-lock", "reboot", "off"]);
  assert.equal(parse("reboot"), "reboot");
  for (const bad of ["Reboot", "reboot ", "fast"]) {
    assertDefect(parse, bad, "is not one of etcd-lock, reboot, off");
  }
});

Deno.test("duration() reads Go-style durations in milliseconds", () => {
  const parse = duration({ example: "5s" });
  assert.equal(parse("1h30m"), 5_400_000);
  assert.equal(parse("500ms"), 500);
  assert.equal(parse("0"), 0);
  assert.equal(parse("24d"), 24 * 86_400_000);
});

Deno.test("duration() names the example, the units and what 0 means when the text is not a duration", () => {
  assertDefect(
    duration({ example: "5m", zeroMeans: "disables the delay" }),
    "5 minutes",
    "is not a duration like 5m (units ms, s, m, h, d; 0 disables the delay)",
  );
  assertDefect(
    duration({ example: "1h" }),
    "-1s",
    "is not a duration like 1h (units ms, s, m, h, d)",
  );
});

Deno.test("duration() with positive refuses zero like any non-duration", () => {
  const parse = duration({ example: "5s", positive: true });
  for (const bad of ["0", "0s", "soon"]) {
    assertDefect(
      parse,
      bad,
      "is not a duration longer than 0, like 5s (units ms, s, m, h, d)",
    );
  }
  assert.equal(parse("1ms"), 1);
});

Deno.test("duration() enforces its minimum and maximum, and never more than 24d", () => {
  const ttl = duration({ example: "1h", minMs: 60_000, maxMs: 86_400_000 });
  assert.equal(ttl("1m"), 60_000);
  assert.equal(ttl("1d"), 86_400_000);
  assertDefect(ttl, "59s", "is shorter than 1m");
  assertDefect(ttl, "25h", "is longer than 1d");
  const capped = duration({ example: "1h", maxMs: 100 * 86_400_000 });
  assertDefect(capped, "25d", "is longer than 24d");
  assertDefect(
    duration({ example: "1h" }),
    "99999999999999999999d",
    "is longer than 24d",
  );
});

Deno.test("limitText() writes whole days as days and anything else as h, m, s, ms", () => {
  assert.equal(limitText(24 * 86_400_000), "24d");
  assert.equal(limitText(5_400_000), "1h30m");
  assert.equal(limitText(90_000), "1m30s");
  assert.equal(limitText(500), "500ms");
});

Deno.test("wholeNumber() accepts decimal digits within its range only", () => {
  const parse = wholeNumber(1, 10);
  assert.equal(parse("10"), 10);
  assert.equal(parse("007"), 7);
  for (const bad of ["0", "11", "1.5", "-1", "1e1", "0x5", "five"]) {
    assertDefect(parse, bad, "is not a whole number from 1 to 10");
  }
});

Deno.test("absolutePath() refuses relative paths, then control characters", () => {
  const parse = absolutePath();
  assert.equal(parse("/run/reboot-required"), "/run/reboot-required");
  assertDefect(parse, "run/x", "is not an absolute path");
  assertDefect(parse, "/run/x\u0000y", "contains a control character");
});

Deno.test("holderId() refuses what a holder id cannot be", () => {
  const parse = holderId();
  assert.equal(parse("web servers"), "web servers");
  assertDefect(parse, "a\tb", "contains a control character");
  assertDefect(parse, "x".repeat(257), "is longer than 256 bytes");
});

Deno.test("command() takes a command line on one line, quotes and all", () => {
  const parse = command();
  const line =
    `/usr/bin/check-health --url 'http://localhost:8080/ok' && echo "ok"`;
  assert.equal(parse(line), line);
  for (const bad of ["a\nb", "a\tb", "a\u001b[2Jb"]) {
    assertDefect(
      parse,
      bad,
      "contains a control character; give the command on one line",
    );
  }
});

Deno.test("url() accepts absolute URLs with a host and an allowed scheme", () => {
  const parse = url({
    protocols: ["http:", "https:"],
    example: "https://fleetlock.example.com",
  });
  assert.equal(
    parse("https://fleetlock.example.com/base"),
    "https://fleetlock.example.com/base",
  );
  assert.equal(parse("http://[::1]:8080"), "http://[::1]:8080");
  for (
    const bad of [
      "fleetlock.example.com",
      "ftp://example.com",
      "https://",
      "file:///etc/passwd",
      "https://exa\nmple.com",
    ]
  ) {
    assertDefect(
      parse,
      bad,
      "is not a URL like https://fleetlock.example.com (scheme http or https)",
    );
  }
});

Deno.test("splitHostPort() reads HOST:PORT and [IPv6]:PORT, and :PORT only with a meaning for the empty host", () => {
  assert.deepEqual(splitHostPort("127.0.0.1:9100"), {
    hostname: "127.0.0.1",
    port: 9100,
  });
  assert.deepEqual(splitHostPort("[::1]:9100"), {
    hostname: "::1",
    port: 9100,
  });
  assert.deepEqual(splitHostPort("localhost:0"), {
    hostname: "localhost",
    port: 0,
  });
  assert.deepEqual(splitHostPort(":9100", "0.0.0.0"), {
    hostname: "0.0.0.0",
    port: 9100,
  });
  for (
    const bad of [
      ":9100",
      "localhost",
      "localhost:",
      "localhost:123456",
      "::1:9100",
      "[zz]:1",
      "a b:1",
      "host:9100/path",
    ]
  ) {
    assert.equal(splitHostPort(bad), undefined, bad);
  }
});

Deno.test("wrapWords() breaks at spaces within the width and keeps a long word whole", () => {
  assert.deepEqual(wrapWords("aa bb cc dd", 5), ["aa bb", "cc dd"]);
  assert.deepEqual(wrapWords("a verylongword b", 5), [
    "a",
    "verylongword",
    "b",
  ]);
  assert.deepEqual(wrapWords("  ", 5), []);
});

Deno.test("helpColumns() aligns the right column two spaces after the longest left text and wraps it within 80 columns", () => {
  const text = helpColumns([
    ["--a", "short"],
    ["--longer VALUE", "word ".repeat(30).trim()],
  ]);
  const lines = text.split("\n");
  assert.equal(lines[0], "  --a             short");
  assert.ok(lines[1]?.startsWith("  --longer VALUE  word word"));
  for (const line of lines.slice(2)) {
    assert.match(line, /^ {18}word/);
  }
  for (const line of lines) assert.ok(line.length <= 80, line);
});

Deno.test("plainText() drops the backticks of Markdown code spans", () => {
  assert.equal(plainText("`0` disables the wait"), "0 disables the wait");
});

Deno.test("keyed() turns a keyed parser's defect into a ValueDefect, and passes other errors through", () => {
  class KeyedError extends Error {
    constructor(readonly key: string, readonly defect: string) {
      super(`${key} ${defect}`);
    }
  }
  const parse = keyed("LOCKSMITHD_X", (key, text) => {
    if (text === "bug") throw new TypeError("a bug");
    if (text !== "ok") throw new KeyedError(key, `is not ok (${key})`);
    return text.length;
  });
  assert.equal(parse("ok"), 2);
  assert.throws(
    () => parse("no"),
    (error: unknown) =>
      error instanceof ValueDefect &&
      error.defect === "is not ok (LOCKSMITHD_X)",
  );
  assert.throws(() => parse("bug"), TypeError);
});
