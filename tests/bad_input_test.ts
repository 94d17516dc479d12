/**
 * Bad input: hostile semaphore documents in a real etcd, hostile
 * locksmithctl command lines and environment values, hostile locksmithd
 * config files (pure and end to end), and hostile holder ids everywhere an
 * id enters. Every refusal must be one clear line, never a stack trace, and
 * must leave the stored document byte-for-byte as it was.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { Etcd3 } from "etcd3";
import { type EtcdCluster, startEtcd } from "./harness/etcd.ts";
import {
  type CtlResult,
  runCtlProcess,
  runProgram,
} from "./harness/ctl_process.ts";
import { semaphoreKey } from "../lib/semaphore/keys.ts";
import {
  INITIAL_SEMAPHORE,
  MAX_DOCUMENT_BYTES,
  parseSemaphore,
} from "../lib/semaphore/document.ts";
import { CorruptDocumentError, UsageError } from "../lib/common/errors.ts";
import {
  loadDaemonConfig,
  parseConfigText,
  resolveDaemonConfig,
} from "../lib/config/config.ts";
import { validateId } from "../lib/common/machine_id.ts";
import { readMachineId } from "../lib/host/machine_id_file.ts";
import { formatReplaced } from "../lib/ctl/commands.ts";

// ---------------------------------------------------------------- helpers

/** A stack frame or a source location: never to be shown to a user. */
const STACK_TRACE = /^\s+at |file:\/\/|\.ts:\d+/m;

/** Anything that could break a line or drive a terminal. */
// deno-lint-ignore no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

/** Asserts `text` is exactly one line (ending in a newline) and returns it. */
function oneLineOf(text: string, what: string): string {
  const lines = text.split("\n");
  assert.equal(
    lines.length,
    2,
    `${what}: expected exactly one line, got ${JSON.stringify(text)}`,
  );
  assert.equal(lines[1], "", `${what}: output must end with a newline`);
  const line = lines[0] as string;
  assert.doesNotMatch(line, STACK_TRACE, `${what}: stack trace in ${line}`);
  assert.doesNotMatch(line, RAW_CONTROL, `${what}: raw control character`);
  return line;
}

/** Runs `fn` over `items` with at most `limit` running at once. */
async function pool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The raw bytes and mod_revision of `key`, straight from etcd. */
async function rawKey(
  client: Etcd3,
  key: string,
): Promise<{ bytes: Uint8Array; modRevision: string } | undefined> {
  const res = await client.get(key).exec();
  const kv = res.kvs[0];
  if (kv === undefined) return undefined;
  return { bytes: new Uint8Array(kv.value), modRevision: kv.mod_revision };
}

const encoder = new TextEncoder();

// ---------------------------------------------------------------- documents

/** A hostile document, and the defect every command must name. */
interface HostileDoc {
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly defect: string;
}

function doc(name: string, text: string, defect: string): HostileDoc {
  return { name, bytes: encoder.encode(text), defect };
}

/** 30,000 sorted 32-hex-digit ids: a document of about 1 MB. */
function megabyteDocument(): string {
  const holders = Array.from(
    { length: 30_000 },
    (_, i) => i.toString(16).padStart(32, "0"),
  );
  return JSON.stringify({
    semaphore: 1 - holders.length,
    max: 1,
    holders,
  });
}

const MEGABYTE = megabyteDocument();
const DEEP = `{"semaphore":1,"max":${"[".repeat(100_000)}${
  "]".repeat(100_000)
},"holders":[]}`;

const HOSTILE_DOCS: readonly HostileDoc[] = [
  doc("not-json", '{"semaphore": 1, "max": 1, "holders": [', "not valid JSON"),
  doc("empty", "", "not valid JSON"),
  doc(
    "bool-semaphore",
    '{"semaphore":true,"max":1,"holders":[]}',
    '"semaphore" is not an integer: true',
  ),
  doc(
    "holders-object",
    '{"semaphore":1,"max":1,"holders":{"a":1}}',
    '"holders" is not a list',
  ),
  doc(
    "negative-max",
    '{"semaphore":-1,"max":-1,"holders":[]}',
    '"max" is -1, outside 0..1000000',
  ),
  doc(
    "fractional",
    '{"semaphore":0.5,"max":1,"holders":[]}',
    '"semaphore" is not an integer: 0.5',
  ),
  doc(
    "nan-string",
    '{"semaphore":"NaN","max":"Infinity","holders":[]}',
    '"semaphore" is not an integer: "NaN"',
  ),
  doc(
    "duplicate-holders",
    '{"semaphore":-1,"max":1,"holders":["a","a"]}',
    'holder "a" appears twice',
  ),
  doc(
    "number-holder",
    '{"semaphore":0,"max":1,"holders":[42]}',
    "holder #1 is not a string",
  ),
  doc(
    "megabyte-holders",
    MEGABYTE,
    `document is ${MEGABYTE.length} bytes, more than ${MAX_DOCUMENT_BYTES}`,
  ),
  doc(
    "extra-field",
    '{"semaphore":1,"max":1,"holders":[],"rebootAt":"now"}',
    'unknown field "rebootAt"',
  ),
  doc("deeply-nested", DEEP, '"max" is not an integer: a list'),
  doc(
    "huge-number",
    '{"semaphore":1,"max":1e309,"holders":[]}',
    '"max" is not an integer: Infinity',
  ),
  doc("top-level-string", '"semaphore"', "not a JSON object"),
  doc("top-level-array", "[1,1,[]]", "not a JSON object"),
  doc("top-level-null", "null", "not a JSON object"),
  doc(
    "control-character-holder",
    '{"semaphore":0,"max":1,"holders":["node\\u001b[2J"]}',
    "holder #1 contains a control character",
  ),
  doc(
    "long-holder",
    JSON.stringify({ semaphore: 0, max: 1, holders: ["h".repeat(257)] }),
    "holder #1 is longer than 256 bytes",
  ),
];

const COMMANDS: readonly { args: string[]; action: string }[] = [
  { args: ["status"], action: "reading status" },
  { args: ["lock", "x"], action: "locking" },
  { args: ["unlock", "x"], action: "unlocking" },
  { args: ["set-max", "3"], action: "setting max" },
];

Deno.test("hostile semaphore documents in etcd", async (t) => {
  const etcd: EtcdCluster = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  const ctl = (args: string[]): Promise<CtlResult> =>
    runCtlProcess(["--endpoint", etcd.endpoint, ...args]);
  /** Writes `bytes` at the key of `group` and returns what etcd stored. */
  const plant = async (group: string, bytes: Uint8Array) => {
    const key = semaphoreKey(group);
    await client.put(key).value(Buffer.from(bytes));
    const stored = await rawKey(client, key);
    assert.ok(stored !== undefined);
    assert.deepEqual(stored.bytes, bytes);
    return { key, ...stored };
  };
  try {
    await t.step(
      "every command refuses every hostile document with exit 1 and one line naming the key and the defect, and writes nothing",
      async () => {
        const planted = new Map<string, { key: string; modRevision: string }>();
        for (const d of HOSTILE_DOCS) {
          planted.set(d.name, await plant(`bad-${d.name}`, d.bytes));
        }
        const jobs = HOSTILE_DOCS.flatMap((d) =>
          COMMANDS.flatMap((c) => [
            { d, c, json: false },
            { d, c, json: true },
          ])
        );
        const failures: string[] = [];
        await pool(jobs, 4, async ({ d, c, json }) => {
          const key = planted.get(d.name)!.key;
          const args = [...c.args, "--group", `bad-${d.name}`];
          if (json) args.push("--json");
          const what = `${d.name}: ${args.join(" ")}`;
          const r = await ctl(args);
          try {
            assert.equal(r.code, 1, `${what}: exit ${r.code}, ${r.stderr}`);
            const line = oneLineOf(r.stderr, what);
            const message =
              `semaphore document at ${key} is corrupt: ${d.defect}`;
            assert.equal(line, `Error ${c.action}: ${message}`, what);
            if (json) {
              assert.deepEqual(JSON.parse(r.stdout), {
                ok: false,
                command: c.args[0],
                error: "corrupt_document",
                message,
              }, what);
              oneLineOf(r.stdout, `${what} (stdout)`);
            } else {
              assert.equal(r.stdout, "", what);
            }
          } catch (error) {
            failures.push((error as Error).message);
          }
        });
        assert.deepEqual(failures, [], failures.join("\n\n"));
        for (const d of HOSTILE_DOCS) {
          const { key, modRevision } = planted.get(d.name)!;
          const now = await rawKey(client, key);
          assert.ok(now !== undefined, `${d.name}: key deleted`);
          assert.deepEqual(now.bytes, d.bytes, `${d.name}: bytes changed`);
          assert.equal(now.modRevision, modRevision, `${d.name}: rewritten`);
        }
      },
    );

    await t.step(
      "reset without --force refuses hostile documents with exit 2 and leaves them",
      async () => {
        for (const name of ["control-character-holder", "megabyte-holders"]) {
          const d = HOSTILE_DOCS.find((x) => x.name === name)!;
          const { key, modRevision } = await plant(`reset-no-${name}`, d.bytes);
          const r = await ctl(["reset", "--group", `reset-no-${name}`]);
          assert.equal(r.code, 2, r.stderr);
          assert.equal(r.stdout, "");
          const line = oneLineOf(r.stderr, name);
          assert.match(
            line,
            new RegExp(
              `^locksmithctl: reset would replace the document at ${
                escapeRegExp(key)
              }: "\\{.*; add --force to confirm$`,
            ),
          );
          assert.ok(line.length < 400, `${line.length} characters`);
          const now = await rawKey(client, key);
          assert.deepEqual(now?.bytes, d.bytes);
          assert.equal(now?.modRevision, modRevision);
        }
      },
    );

    await t.step(
      "reset --force prints a hostile document escaped on one line, then the initial one",
      async () => {
        // A raw ESC and a raw newline, not JSON escapes: not even valid JSON.
        const text = '{"semaphore":0,"max":1,"holders":["\u001b[2J\nx"]}';
        const { key } = await plant("reset-control", encoder.encode(text));
        const status = await ctl(["status", "--group", "reset-control"]);
        assert.equal(status.code, 1);
        assert.match(oneLineOf(status.stderr, "status"), /not valid JSON$/);
        const r = await ctl(["reset", "--force", "--group", "reset-control"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(
          r.stdout,
          `Replaced: ${JSON.stringify(text)}\nNew: ${
            JSON.stringify(INITIAL_SEMAPHORE)
          }\n`,
        );
        assert.doesNotMatch(r.stdout, RAW_CONTROL);
        assert.equal(
          await client.get(key).string(),
          JSON.stringify(INITIAL_SEMAPHORE),
        );
      },
    );

    await t.step(
      "reset --force shows a 1 MB document cut to its first 1000 characters, and --json gives all of it",
      async () => {
        const d = HOSTILE_DOCS.find((x) => x.name === "megabyte-holders")!;
        const { key } = await plant("reset-megabyte", d.bytes);
        const r = await ctl(["reset", "--force", "--group", "reset-megabyte"]);
        assert.equal(r.code, 0, r.stderr);
        const [replaced, created, rest] = r.stdout.split("\n");
        assert.equal(rest, "");
        assert.equal(created, `New: ${JSON.stringify(INITIAL_SEMAPHORE)}`);
        assert.ok(replaced!.length < 1_300, `${replaced!.length} characters`);
        assert.ok(
          replaced!.startsWith(
            `Replaced: ${
              JSON.stringify(MEGABYTE.slice(0, 1_000)).slice(0, -1)
            }`,
          ),
          replaced!.slice(0, 100),
        );
        assert.ok(
          replaced!.endsWith(
            `..." (${MEGABYTE.length} characters); --json prints it all`,
          ),
          replaced!.slice(-100),
        );
        assert.equal(
          await client.get(key).string(),
          JSON.stringify(INITIAL_SEMAPHORE),
        );

        await plant("reset-megabyte", d.bytes);
        const json = await ctl([
          "reset",
          "--force",
          "--json",
          "--group",
          "reset-megabyte",
        ]);
        assert.equal(json.code, 0, json.stderr);
        const out = JSON.parse(json.stdout);
        assert.equal(out.replaced, MEGABYTE);
        assert.deepEqual(out.new, INITIAL_SEMAPHORE);
      },
    );

    await t.step(
      "reset --force prints a short printable document exactly as stored",
      () => {
        const text = '{"semaphore": 1, "max": "one", "holders": []}';
        assert.equal(formatReplaced(text), text);
        assert.equal(formatReplaced(undefined), "(absent)");
        assert.equal(formatReplaced("a\u202eb"), '"a\\u202eb"');
      },
    );

    await t.step(
      "a unicode id within 256 bytes is accepted, stored and listed",
      async () => {
        const ids = ["ünïcødé-节点-🚀", "é".repeat(128)];
        for (const id of ids) {
          const r = await ctl(["lock", id, "--group", "unicode"]);
          assert.deepEqual([r.code, r.stderr], [0, ""], id);
          const status = await ctl(["status", "--group", "unicode"]);
          const [, ...rows] = status.stdout.split("MACHINE ID")[1]!.split("\n");
          assert.ok(rows[0]!.startsWith(`${id}  `), status.stdout);
          assert.equal(
            (await ctl(["unlock", id, "--group", "unicode"])).code,
            0,
          );
        }
      },
    );
  } finally {
    client.close();
    await etcd.close();
  }
});

const EUROS = `{"semaphore":1,"max":1,"holders":[],"x":"${
  "€".repeat(100_000)
}"}`;

Deno.test("more hostile documents are refused with the defect named", () => {
  const key = semaphoreKey("k");
  const cases: [string, string][] = [
    ['{"semaphore":NaN,"max":1,"holders":[]}', "not valid JSON"],
    ['{"semaphore":1,"max":1,"holders":"abc"}', '"holders" is not a list'],
    ['{"semaphore":1,"holders":[]}', 'missing field "max"'],
    [
      '{"semaphore":5,"max":1,"holders":[]}',
      '"semaphore" is 5 but max 1 minus 0 holder(s) is 1',
    ],
    ['{"semaphore":-1,"max":1,"holders":["b","a"]}', '"holders" is not sorted'],
    [
      '{"semaphore":0,"max":1,"holders":["\\ud800"]}',
      "holder #1 is not valid Unicode (a lone surrogate)",
    ],
    ['{"semaphore":0,"max":1,"holders":[""]}', "holder #1 is empty"],
    ['{"semaphore":0,"max":1,"holders":[null]}', "holder #1 is not a string"],
    [
      '{"semaphore":1,"max":1,"holders":[],"__proto__":{"max":2}}',
      'unknown field "__proto__"',
    ],
    [
      `{"semaphore":1,"max":1,"holders":[],"${"k".repeat(100_000)}":1}`,
      `unknown field "${"k".repeat(40)}..." (100000 characters)`,
    ],
    [
      `{"semaphore":1,"max":"${"9".repeat(200_000)}","holders":[]}`,
      `"max" is not an integer: "${"9".repeat(40)}..." (200000 characters)`,
    ],
    [
      '{"semaphore":1,"max":{"a":{"b":1}},"holders":[]}',
      '"max" is not an integer: an object',
    ],
    [
      '{"semaphore":1,"max":9007199254740993,"holders":[]}',
      '"max" is not an integer: 9007199254740992',
    ],
    [
      JSON.stringify({
        semaphore: -4096,
        max: 1,
        holders: Array.from(
          { length: 4097 },
          (_, i) => i.toString().padStart(5, "0"),
        ),
      }),
      '"holders" has 4097 entries, more than 4096',
    ],
    [
      // 100,000 three-byte characters: fewer UTF-16 units than the limit, more bytes.
      EUROS,
      `document is ${
        encoder.encode(EUROS).length
      } bytes, more than ${MAX_DOCUMENT_BYTES}`,
    ],
  ];
  for (const [raw, defect] of cases) {
    assert.throws(
      () => parseSemaphore(raw, key),
      (e: unknown) => {
        assert.ok(e instanceof CorruptDocumentError, String(e));
        assert.equal(
          e.message,
          `semaphore document at ${key} is corrupt: ${defect}`,
        );
        assert.equal(e.raw, raw);
        return true;
      },
      raw.slice(0, 80),
    );
  }
});

Deno.test("a document with invalid UTF-8 inside a holder is refused and left byte-for-byte", async () => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  try {
    const key = semaphoreKey("bad-utf8");
    // {"semaphore":0,"max":1,"holders":["<0xff>"]}: decoded lossily, the
    // holder would read as U+FFFD and a write would replace the byte.
    const bytes = new Uint8Array([
      ...encoder.encode('{"semaphore":0,"max":1,"holders":["'),
      0xff,
      ...encoder.encode('"]}'),
    ]);
    await client.put(key).value(Buffer.from(bytes));
    const before = await rawKey(client, key);
    for (const args of [["set-max", "3"], ["lock", "x"], ["status"]]) {
      const r = await runCtlProcess([
        "--endpoint",
        etcd.endpoint,
        ...args,
        "--group",
        "bad-utf8",
      ]);
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(
        oneLineOf(r.stderr, args.join(" ")),
        new RegExp(
          `semaphore document at ${escapeRegExp(key)} is corrupt: .*UTF-8`,
        ),
      );
    }
    assert.deepEqual(await rawKey(client, key), before);
  } finally {
    client.close();
    await etcd.close();
  }
});

// ---------------------------------------------------------------- command lines

Deno.test("hostile locksmithctl command lines exit 2 with one clear line and no stack trace", async () => {
  // Nothing listens there: a usage error must come before any connection.
  const endpoint = "http://127.0.0.1:1";
  const cases: [string[], RegExp, Record<string, string>?][] = [
    [["status", "--nope"], /Unknown option '--nope'/],
    [["--frobnicate=1", "status"], /Unknown option '--frobnicate'/],
    [["status", "--json=yes"], /'--json' does not take an argument/],
    [["frob"], /unknown command "frob"/],
    [["help", "\u001b[2J"], /unknown help topic "\\u001b\[2J"/],
    [["status", "--group"], /--group needs a value, e\.g\. --group web/],
    [["status", "--timeout"], /--timeout needs a value/],
    [["--endpoint"], /--endpoint needs a value/],
    [["status", "extra"], /status takes 0 arguments, got 1/],
    [["lock", "a", "b"], /lock takes at most 1 argument, got 2/],
    [["set-max"], /set-max takes 1 argument, got 0/],
    ...["three", "-1", "1e3", "99999999999", "1.5", "", "0x10", "1000001"].map(
      (n): [string[], RegExp] => [
        ["set-max", n],
        new RegExp(
          `set-max: ${
            escapeRegExp(JSON.stringify(n))
          } is not a whole number from 0 to 1000000`,
        ),
      ],
    ),
    [["lock", ""], /id "" is empty/],
    [["unlock", ""], /id "" is empty/],
    [["lock", "a\nb"], /id "a\\nb" contains a control character/],
    [["lock", "\u001b[31mred"], /id "\\u001b\[31mred" contains a control/],
    [["unlock", "x\u0085y"], /id "x\\u0085y" contains a control character/],
    [
      ["lock", "x".repeat(257)],
      /id "x{80}\.\.\." \(257 characters\) is longer than 256 bytes/,
    ],
    [["lock", "é".repeat(129)], /is longer than 256 bytes/],
    [["status", "--timeout", "0"], /--timeout "0" is not a positive duration/],
    [
      ["status", "--timeout", "-1s"],
      /--timeout needs a value; a value that starts with "-" must be written --timeout=VALUE/,
    ],
    [["status", "--timeout=-1s"], /--timeout "-1s" is not a positive duration/],
    [["status", "--timeout", "5 s"], /--timeout "5 s" is not a positive/],
    [["status", "--timeout", "30d"], /not a positive duration up to 24d/],
    [["status", "--endpoint", ""], /--endpoint needs a value/],
    [["status", "--endpoint", ","], /--endpoint needs a value/],
    [["status", "--endpoint=", "--json"], /--endpoint needs a value/],
    [
      ["status", "--endpoint", "http://127.0.0.1:2\n379"],
      /endpoint "http:\/\/127\.0\.0\.1:2\\n379" is not a URL/,
    ],
    [
      ["status", "--endpoint", "ftp://h:1"],
      /endpoint "ftp:\/\/h:1" is not a URL/,
    ],
    [["status", "--etcd-cafile", ""], /--etcd-cafile needs a value/],
    [["status", "--group", "a\tb"], /--group "a\\tb" contains a control/],
    [["status", "--group", "g".repeat(300)], /is longer than 256 bytes/],
    [["status"], /LOCKSMITHCTL_TIMEOUT="soon" is not a positive duration/, {
      LOCKSMITHCTL_TIMEOUT: "soon",
    }],
    [["status"], /LOCKSMITHCTL_GROUP="a\\nb" contains a control character/, {
      LOCKSMITHCTL_GROUP: "a\nb",
    }],
  ];
  const failures: string[] = [];
  await pool(cases, 4, async ([args, expected, env]) => {
    const what = JSON.stringify(args).slice(0, 80);
    const needsEndpoint = !args.some((a) => a.startsWith("--endpoint"));
    const r = await runCtlProcess(
      needsEndpoint ? ["--endpoint", endpoint, ...args] : args,
      { env: env ?? {} },
    );
    try {
      assert.equal(r.code, 2, `${what}: exit ${r.code}: ${r.stderr}`);
      const line = oneLineOf(r.stderr, what);
      assert.match(line, /^locksmithctl: /, what);
      assert.match(line, expected, what);
      assert.ok(line.length < 300, `${what}: ${line.length} characters`);
      if (args.includes("--json")) {
        assert.deepEqual(JSON.parse(r.stdout), {
          ok: false,
          command: null,
          error: "usage",
          message: line.replace(/^locksmithctl: /, ""),
        });
      } else {
        assert.equal(r.stdout, "", what);
      }
    } catch (error) {
      failures.push((error as Error).message);
    }
  });
  assert.deepEqual(failures, [], failures.join("\n\n"));
});

Deno.test("an empty LOCKSMITHCTL_ variable means unset, not an empty value", async () => {
  const r = await runCtlProcess(["--version"], {
    env: { LOCKSMITHCTL_ENDPOINT: "", LOCKSMITHCTL_TIMEOUT: "" },
  });
  assert.deepEqual([r.code, r.stderr], [0, ""]);
});

// ---------------------------------------------------------------- config files

const CONF = "/etc/coreos/update.conf";

/** Asserts that `fn` throws a one-line UsageError matching `expected`. */
function assertConfigError(fn: () => unknown, expected: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UsageError, `not a UsageError: ${e}`);
    assert.doesNotMatch(e.message, /\n/);
    assert.doesNotMatch(e.message, RAW_CONTROL, e.message);
    assert.ok(e.message.length < 600, `${e.message.length} characters`);
    assert.match(e.message, expected);
    return true;
  });
}

function conf(text: string) {
  return () => resolveDaemonConfig([{ path: CONF, text }], {});
}

Deno.test("hostile update.conf files are refused with one line naming file:line or the key", () => {
  const where = escapeRegExp(CONF);
  const notAssignment = (line: number) =>
    new RegExp(`^${where}:${line}: line is not KEY=value or a # comment`);
  assertConfigError(
    conf("\u0089PNG\r\n\u001a\n\u0000\u0000\u0000\rIHDR"),
    new RegExp(`${notAssignment(1).source} .*: "\\\\u0089PNG"$`),
  );
  assertConfigError(conf("GROUP=x\n\u0000\u0001\u0002\n"), notAssignment(2));
  assertConfigError(
    conf("REBOOT_STRATEGY=reboot\u0000\n"),
    /^REBOOT_STRATEGY="reboot\\u0000" \(from \/etc\/coreos\/update\.conf:1\) is not one of etcd-lock, fleetlock, reboot, best-effort, off$/,
  );
  assertConfigError(
    conf("LOCKSMITHD_REBOOT_SENTINEL=/run/x\u0000y\n"),
    /^LOCKSMITHD_REBOOT_SENTINEL="\/run\/x\\u0000y" \(from .*:1\) contains a control character$/,
  );
  // Very long lines: the message shows the start of the value and its length.
  assertConfigError(
    conf(`REBOOT_STRATEGY=${"x".repeat(100_000)}\n`),
    /^REBOOT_STRATEGY="x{300}\.\.\." \(100000 characters\) \(from .*:1\) is not one of/,
  );
  assertConfigError(
    conf(`LOCKSMITHD_ENDPOINT=http://${"h".repeat(100_000)}:2379/x\n`),
    /^LOCKSMITHD_ENDPOINT=".*\.\.\." \(100014 characters\) \(from .*:1\) is invalid: endpoint ".*\.\.\." \(100014 characters\) is not a URL/,
  );
  assertConfigError(conf("x".repeat(100_000)), notAssignment(1));
  assertConfigError(conf("=value\n"), notAssignment(1));
  assertConfigError(conf(" = \n"), notAssignment(1));
  // Duplicate keys: the later line wins, and is the one named.
  assertConfigError(
    conf("REBOOT_STRATEGY=reboot\nREBOOT_STRATEGY=fast\n"),
    /^REBOOT_STRATEGY="fast" \(from .*:2\) is not one of/,
  );
  assertConfigError(
    conf("REBOOT_STRATEGY=etcd_lock\n"),
    /^REBOOT_STRATEGY="etcd_lock" \(from .*:1\) is not one of etcd-lock, fleetlock, reboot, best-effort, off$/,
  );
  assertConfigError(
    conf("REBOOT_WINDOW_START=Thursday 4am\nREBOOT_WINDOW_LENGTH=1h\n"),
    /^REBOOT_WINDOW_START="Thursday 4am" \(from .*:1\) is not \[Day \]H:M/,
  );
  assertConfigError(
    conf("LOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\n"),
    /^LOCKSMITHD_REBOOT_WINDOW_START="Thu 04:00" \(from .*:1\) is set but neither LOCKSMITHD_REBOOT_WINDOW_LENGTH nor REBOOT_WINDOW_LENGTH is/,
  );
  assertConfigError(
    conf("REBOOT_WINDOW_START=04:00\nREBOOT_WINDOW_LENGTH=25h\n"),
    /^REBOOT_WINDOW_LENGTH="25h" \(from .*:2\) is not shorter than 24h/,
  );
  assertConfigError(
    conf(
      "REBOOT_WINDOW_START=04:00\nREBOOT_WINDOW_LENGTH=1h\nLOCKSMITHD_REBOOT_WINDOW_TZ=Mars/Olympus_Mons\n",
    ),
    /^LOCKSMITHD_REBOOT_WINDOW_TZ="Mars\/Olympus_Mons" \(from .*:3\) is not a known IANA time zone/,
  );
  assertConfigError(
    conf("LOCKSMITHD_REBOOT_WINDOW_TZ=../../etc/passwd\n"),
    /^LOCKSMITHD_REBOOT_WINDOW_TZ="\.\.\/\.\.\/etc\/passwd" \(from .*:1\) is not a known IANA time zone/,
  );
  for (const bad of ["5 seconds", "-1s", "1e3s", "0x10s", "∞"]) {
    assertConfigError(
      conf(`LOCKSMITHD_ETCD_TIMEOUT=${bad}\n`),
      new RegExp(
        `^LOCKSMITHD_ETCD_TIMEOUT=${
          escapeRegExp(JSON.stringify(bad))
        } \\(from .*:1\\) is not a duration longer than 0`,
      ),
    );
  }
  assertConfigError(
    conf("LOCKSMITHD_LOGIN_DELAY=soon\n"),
    /^LOCKSMITHD_LOGIN_DELAY="soon" \(from .*:1\) is not a duration like 5m/,
  );
  // A timer longer than 2^31-1 ms fires at once: 30d would mean no delay at all.
  assertConfigError(
    conf("LOCKSMITHD_LOGIN_DELAY=30d\n"),
    /^LOCKSMITHD_LOGIN_DELAY="30d" \(from .*:1\) is longer than 24d$/,
  );
  assertConfigError(
    conf("LOCKSMITHD_ETCD_TIMEOUT=99999999999999999999d\n"),
    /^LOCKSMITHD_ETCD_TIMEOUT="99999999999999999999d" \(from .*:1\) is longer than 24d$/,
  );
  // CRLF: accepted, and counted as one line break when naming a line.
  assertConfigError(
    conf("# c\r\nREBOOT_STRATEGY=reboot\r\n\r\nREBOOT_STRATEGY=bad\r\n"),
    /^REBOOT_STRATEGY="bad" \(from .*:4\) is not one of/,
  );
  assertConfigError(
    conf("REBOOT_STRATEGY=reboot\u2028LOCKSMITHD_GROUP=x\n"),
    /^.*:1: line is not KEY=value .*\\u2028/,
  );
  assertConfigError(
    conf('LOCKSMITHD_GROUP="web\n'),
    /^.*:1: value of LOCKSMITHD_GROUP has an unterminated " quote$/,
  );
});

Deno.test("hostile but well-formed update.conf values that are accepted resolve as written", () => {
  const c = resolveDaemonConfig([{
    path: CONF,
    text:
      "\uFEFFREBOOT_STRATEGY=reboot\r\nREBOOT_STRATEGY=off\r\n\tLOCKSMITHD_GROUP = web # c\r\nLOCKSMITHD_LOGIN_DELAY=24d\r\n",
  }], {});
  assert.equal(c.strategy, "off");
  assert.equal(c.group, "web");
  assert.equal(c.loginDelayMs, 24 * 86_400_000);
  assert.equal(c.origins["REBOOT_STRATEGY"], `${CONF}:2`);
});

Deno.test("loadDaemonConfig() refuses a file that is not UTF-8, naming the line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-badconf-" });
  try {
    const path = `${dir}/update.conf`;
    await Deno.writeFile(
      path,
      new Uint8Array([
        ...encoder.encode("REBOOT_STRATEGY=off\nLOCKSMITHD_GROUP=web"),
        0xff,
        0xfe,
        ...encoder.encode("\n"),
      ]),
    );
    await assert.rejects(
      () => loadDaemonConfig({ configFiles: [path], env: {} }),
      (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.equal(
          e.message,
          `${path}:2: line is not valid UTF-8; save the file as UTF-8`,
        );
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseConfigText() never echoes a raw control character or line separator", () => {
  for (
    const line of [
      "\u001b]0;pwned\u0007",
      "\u009b31m",
      "a\u2029b",
      "\u202eevil",
      "\u0085",
    ]
  ) {
    assertConfigError(() => parseConfigText("f", line), /^f:1: /);
  }
});

/** Runs locksmithd as `deno task daemon` would, reading `readDir` too. */
function runDaemonProcess(
  args: string[],
  readDir: string,
  env: Record<string, string> = {},
): Promise<CtlResult> {
  return runProgram("daemon", args, { env, extraRead: [readDir] });
}

Deno.test("locksmithd exits 2 with one locksmithd: line for hostile config files, flags and environment", async () => {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-daemonconf-" });
  try {
    const file = async (name: string, content: string | Uint8Array) => {
      const path = `${dir}/${name}`;
      if (typeof content === "string") await Deno.writeTextFile(path, content);
      else await Deno.writeFile(path, content);
      return path;
    };
    const garbage = new Uint8Array(512);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 131 + 7) % 256;
    const png = await file("garbage.conf", garbage);
    const control = await file(
      "control.conf",
      "REBOOT_STRATEGY=off\n\u001b[2J\u0000\n",
    );
    const crlf = await file(
      "crlf.conf",
      "# fleet\r\nREBOOT_STRATEGY=fast\r\n",
    );
    const delay = await file("delay.conf", "LOCKSMITHD_LOGIN_DELAY=30d\n");
    const long = await file(
      "long.conf",
      `REBOOT_STRATEGY=${"y".repeat(1e6)}\n`,
    );
    const off = await file("off.conf", "REBOOT_STRATEGY=off\n");
    const cases: [string[], Record<string, string>, RegExp][] = [
      [
        ["--config", png],
        {},
        new RegExp(
          `^locksmithd: ${
            escapeRegExp(png)
          }:1: line is not valid UTF-8; save the file as UTF-8$`,
        ),
      ],
      [
        ["--config", control],
        {},
        /^locksmithd: .*control\.conf:2: line is not KEY=value .*"\\u001b\[2J\\u0000"$/,
      ],
      [
        ["--config", crlf],
        {},
        /^locksmithd: REBOOT_STRATEGY="fast" \(from .*crlf\.conf:2\) is not one of etcd-lock, fleetlock, reboot, best-effort, off$/,
      ],
      [
        ["--config", delay],
        {},
        /^locksmithd: LOCKSMITHD_LOGIN_DELAY="30d" \(from .*delay\.conf:1\) is longer than 24d$/,
      ],
      [
        ["--config", long],
        {},
        /^locksmithd: REBOOT_STRATEGY="y{300}\.\.\." \(1000000 characters\) \(from .*long\.conf:1\) is not one of/,
      ],
      [
        ["--config", off],
        { LOCKSMITHD_MACHINE_ID: "node\t1" },
        /^locksmithd: LOCKSMITHD_MACHINE_ID="node\\t1" \(from environment\) contains a control character$/,
      ],
      [
        ["--config", off, "--machine-id", ""],
        {},
        /^locksmithd: --machine-id needs a value/,
      ],
      [
        ["--config", off, "--strategy=reboot\u001b[2J"],
        {},
        /^locksmithd: REBOOT_STRATEGY="reboot\\u001b\[2J" \(from --strategy\) is not one of/,
      ],
    ];
    const failures: string[] = [];
    await pool(cases, 4, async ([args, env, expected]) => {
      const what = JSON.stringify(args).slice(0, 100);
      const r = await runDaemonProcess(args, dir, env);
      try {
        assert.equal(r.code, 2, `${what}: exit ${r.code}: ${r.stderr}`);
        assert.equal(r.stdout, "", what);
        const line = oneLineOf(r.stderr, what);
        assert.match(line, expected, what);
        assert.ok(line.length < 600, `${what}: ${line.length} characters`);
      } catch (error) {
        failures.push((error as Error).message);
      }
    });
    assert.deepEqual(failures, [], failures.join("\n\n"));
    // The harness itself works: a good file with strategy off exits 0.
    const ok = await runDaemonProcess(["--config", off], dir);
    assert.equal(ok.code, 0, ok.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------- ids

Deno.test("ids: empty, control characters, lone surrogates and over 256 bytes are refused wherever they enter", async (t) => {
  await t.step("as an argument", () => {
    assert.equal(validateId("node-1"), "node-1");
    assert.equal(validateId("ü".repeat(128)), "ü".repeat(128));
    for (
      const [id, defect] of [
        ["", "is empty"],
        ["a\u0000b", "contains a control character"],
        ["a\u007fb", "contains a control character"],
        ["a\u009bb", "contains a control character"],
        ["\udc00", "is not valid Unicode (a lone surrogate)"],
        ["ü".repeat(129), "is longer than 256 bytes"],
      ]
    ) {
      assert.throws(
        () => validateId(id as string),
        (e: unknown) =>
          e instanceof UsageError && e.message.endsWith(defect as string) &&
          !RAW_CONTROL.test(e.message),
      );
    }
  });

  await t.step("as LOCKSMITHD_MACHINE_ID or LOCKSMITHD_GROUP", () => {
    const resolve = (env: Record<string, string>) =>
      resolveDaemonConfig([], env);
    // An empty (or blank) value means "the default", like every other key.
    assert.equal(resolve({ LOCKSMITHD_MACHINE_ID: "" }).machineId, undefined);
    assert.equal(resolve({ LOCKSMITHD_MACHINE_ID: "  " }).machineId, undefined);
    assert.equal(resolve({ LOCKSMITHD_MACHINE_ID: " n1 " }).machineId, "n1");
    for (const key of ["LOCKSMITHD_MACHINE_ID", "LOCKSMITHD_GROUP"]) {
      for (
        const [value, defect] of [
          ["a\u001bb", "contains a control character"],
          ["\ud800x", "is not valid Unicode (a lone surrogate)"],
          ["x".repeat(257), "is longer than 256 bytes"],
        ]
      ) {
        assertConfigError(
          () => resolve({ [key]: value as string }),
          new RegExp(
            `^${key}=.* \\(from environment\\) ${
              escapeRegExp(defect as string)
            }$`,
          ),
        );
      }
    }
    assertConfigError(
      () => resolveDaemonConfig([], {}, { LOCKSMITHD_MACHINE_ID: "a\nb" }),
      /^LOCKSMITHD_MACHINE_ID="a\\nb" \(from --machine-id\) contains a control character$/,
    );
  });

  await t.step("from a machine-id file", async () => {
    const dir = await Deno.makeTempDir({ prefix: "locksmith-machineid-" });
    try {
      const read = async (content: string) => {
        await Deno.writeTextFile(`${dir}/machine-id`, content);
        return readMachineId(`${dir}/machine-id`);
      };
      assert.equal(await read("0123abcd\n"), "0123abcd");
      for (
        const [content, defect] of [
          ["", "is empty"],
          ["\n\n", "is empty"],
          ["ab\u0007cd\n", "contains a control character"],
          [`${"f".repeat(257)}\n`, "is longer than 256 bytes"],
        ]
      ) {
        await assert.rejects(
          () => read(content as string),
          (e: unknown) =>
            e instanceof UsageError &&
            e.message.startsWith(`machine id in ${dir}/machine-id `) &&
            e.message.endsWith(defect as string),
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
