/**
 * Fuzzing the two parsers that take input from outside the machine's
 * operator: update_engine's StatusUpdate signal (any process on the system
 * bus can emit one) and update.conf files. Random inputs come from a seeded
 * PRNG; the seed is printed, and `LOCKSMITH_FUZZ_SEED=<seed>` replays a run.
 */

import assert from "node:assert/strict";
import dbus from "dbus-next";
import { startDbus } from "./harness/dbus.ts";
import {
  NEED_REBOOT,
  parseStatusUpdate,
  STATUS_SIGNATURE,
  UpdateEngineClient,
} from "../lib/dbus/update_engine.ts";
import {
  type ConfigSource,
  DAEMON_CONFIG_KEYS,
  DAEMON_FLAG_KEYS,
  type DaemonConfig,
  parseConfigText,
  REBOOT_STRATEGIES,
  resolveDaemonConfig,
} from "../lib/config/config.ts";
import { UsageError } from "../lib/common/errors.ts";
import { idDefect } from "../lib/common/machine_id.ts";
import { MAX_DURATION_MS } from "../lib/common/duration.ts";

// ---------------------------------------------------------------- PRNG

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(
  Deno.env.get("LOCKSMITH_FUZZ_SEED") ??
    crypto.getRandomValues(new Uint32Array(1))[0],
) >>> 0;
console.log(
  `fuzz seed ${SEED} (replay with LOCKSMITH_FUZZ_SEED=${SEED})`,
);

/** Random helpers over one PRNG stream. */
class Random {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  /** A bigint of up to `bits` random bits, either sign. */
  bigint(bits: number): bigint {
    let v = 0n;
    for (let i = 0; i < bits; i += 16) {
      v = (v << 16n) | BigInt(this.int(0x10000));
    }
    v &= (1n << BigInt(bits)) - 1n;
    return this.chance(0.5) ? -v : v;
  }
}

/** Characters a hostile string is made of. */
const CHAR_CLASSES: readonly ((r: Random) => string)[] = [
  (r) => String.fromCharCode(r.range(0x20, 0x7e)),
  (r) => String.fromCharCode(r.range(0x20, 0x7e)),
  (r) => String.fromCharCode(r.range(0x00, 0x1f)),
  (r) => String.fromCharCode(r.range(0x7f, 0x9f)),
  (r) => r.pick(["é", "ß", "节", "点", "Ω", "\u00a0", "\ufeff", "\ufffd"]),
  (r) => r.pick(["🚀", "👩‍💻", "\u{10ffff}"]),
  (r) => r.pick(["\u2028", "\u2029", "\u202e", "\u2066", "\u0085"]),
  (r) => String.fromCharCode(r.range(0xd800, 0xdfff)), // lone surrogate
  (r) => r.pick(["=", "#", '"', "'", "`", "\\", " ", "\t", "\r", "\n"]),
];

function randomString(r: Random, maxLength = 40): string {
  if (r.chance(0.005)) return r.pick(["x", "é", "🚀"]).repeat(r.range(1, 1e5));
  const n = r.int(maxLength + 1);
  let s = "";
  for (let i = 0; i < n; i++) s += r.pick(CHAR_CLASSES)(r);
  return s;
}

// ---------------------------------------------------------------- StatusUpdate

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function isInt64(v: unknown): boolean {
  if (typeof v === "bigint") return v >= INT64_MIN && v <= INT64_MAX;
  return typeof v === "number" && Number.isSafeInteger(v);
}

/** The oracle: does `body` (with `signature`) match xdssx with a usable status? */
function statusIsValid(body: unknown, signature: string | undefined): boolean {
  if (signature !== undefined && signature !== STATUS_SIGNATURE) return false;
  if (!Array.isArray(body) || body.length !== 5) return false;
  const [checked, progress, operation, version, size] = body as unknown[];
  return isInt64(checked) &&
    typeof progress === "number" && Number.isFinite(progress) &&
    typeof operation === "string" && operation !== "" &&
    typeof version === "string" &&
    isInt64(size);
}

const VALUE_MAKERS: readonly ((r: Random, depth: number) => unknown)[] = [
  (r) => r.bigint(r.pick([8, 32, 63, 64, 65, 128])),
  (r) => r.pick([INT64_MIN, INT64_MAX, INT64_MIN - 1n, INT64_MAX + 1n, 0n]),
  (r) => r.range(-1000, 1000),
  (r) =>
    r.pick([
      Number.MAX_SAFE_INTEGER,
      Number.MIN_SAFE_INTEGER,
      2 ** 53,
      -(2 ** 53),
      2 ** 63,
      1e308,
      -0,
    ]),
  (r) => (r.next() - 0.5) * 10 ** r.range(-5, 20),
  (r) => r.pick([NaN, Infinity, -Infinity]),
  (r) => randomString(r),
  (r) =>
    r.pick([
      NEED_REBOOT,
      "UPDATE_STATUS_IDLE",
      "",
      "0",
      "1700000000",
      "0.5",
    ]),
  () => null,
  () => undefined,
  (r) => r.chance(0.5),
  (r, depth) =>
    depth > 2
      ? []
      : Array.from({ length: r.int(6) }, () => randomValue(r, depth + 1)),
  (r, depth) =>
    depth > 2 ? {} : Object.fromEntries(
      Array.from(
        { length: r.int(4) },
        () => [randomString(r, 8), randomValue(r, depth + 1)],
      ),
    ),
  (r) => r.pick([{ length: 5 }, new Date(0), Symbol("s"), new Uint8Array(5)]),
];

function randomValue(r: Random, depth = 0): unknown {
  return r.pick(VALUE_MAKERS)(r, depth);
}

function validStatusValue(r: Random, index: number): unknown {
  switch (index) {
    case 0:
    case 4:
      return r.chance(0.5) ? r.bigint(63) : r.range(0, 2 ** 31);
    case 1:
      return r.next();
    case 2:
      return r.pick([NEED_REBOOT, "UPDATE_STATUS_IDLE", "x"]);
    default:
      return r.pick(["", "3815.2.0", randomString(r)]);
  }
}

function randomBody(r: Random): unknown {
  const roll = r.next();
  if (roll < 0.05) return randomValue(r);
  if (roll < 0.45) {
    // Near-valid: a valid body with 0 to 2 arguments replaced.
    const body = [0, 1, 2, 3, 4].map((i) => validStatusValue(r, i));
    for (let k = r.int(3); k > 0; k--) body[r.int(5)] = randomValue(r);
    return body;
  }
  return Array.from({ length: r.int(9) }, () => randomValue(r));
}

function randomSignature(r: Random): string | undefined {
  const roll = r.next();
  if (roll < 0.4) return undefined;
  if (roll < 0.7) return STATUS_SIGNATURE;
  if (roll < 0.85) {
    return r.pick(["", "xdss", "xdssxx", "sdssx", "xdisx", "(xdssx)", "v"]);
  }
  return randomString(r, 8);
}

Deno.test(`parseStatusUpdate never throws and accepts exactly the xdssx bodies (10,000 random signals, seed ${SEED})`, () => {
  const r = new Random(SEED);
  let valid = 0;
  const total = 10_000;
  for (let i = 0; i < total; i++) {
    const body = randomBody(r);
    const signature = randomSignature(r);
    const what = () =>
      `seed ${SEED} case ${i}: signature ${JSON.stringify(signature)}, body ${
        describeForFailure(body)
      }`;
    let result: ReturnType<typeof parseStatusUpdate>;
    try {
      result = parseStatusUpdate(body, signature);
    } catch (error) {
      assert.fail(`${what()}: threw ${error}`);
    }
    assert.ok(typeof result === "object" && result !== null, what());
    const expected = statusIsValid(body, signature);
    if ("error" in result) {
      assert.ok(!expected, `${what()}: refused a valid body: ${result.error}`);
      assert.equal(typeof result.error, "string", what());
      assert.doesNotMatch(result.error, /\n/, what());
      assert.ok(result.error.length < 200, what());
      continue;
    }
    assert.ok(expected, `${what()}: accepted an invalid body`);
    valid++;
    const [checked, progress, operation, version, size] = body as unknown[];
    assert.equal(result.lastCheckedTime, BigInt(checked as bigint), what());
    assert.equal(result.progress, progress, what());
    assert.equal(result.currentOperation, operation, what());
    assert.equal(result.newVersion, version, what());
    assert.equal(result.newSize, BigInt(size as bigint), what());
  }
  // Both sides of the oracle were exercised.
  assert.ok(valid > total * 0.02, `only ${valid} valid bodies`);
  assert.ok(valid < total * 0.5, `${valid} valid bodies`);
});

function describeForFailure(value: unknown): string {
  try {
    return JSON.stringify(
      value,
      (_, v) =>
        typeof v === "bigint"
          ? `${v}n`
          : typeof v === "number" && !Number.isFinite(v)
          ? String(v)
          : typeof v === "symbol"
          ? String(v)
          : v === undefined
          ? "undefined"
          : v,
    ).slice(0, 300);
  } catch {
    return String(value).slice(0, 300);
  }
}

// ---------------------------------------------------------------- live D-Bus

/** D-Bus string: valid UTF-8 without NUL (dbus-daemon drops a sender that breaks this). */
function dbusString(r: Random, maxLength = 12): string {
  let s = "";
  for (let i = r.int(maxLength + 1); i > 0; i--) {
    s += r.pick([
      () => String.fromCharCode(r.range(0x20, 0x7e)),
      () => String.fromCharCode(r.range(0x01, 0x1f)),
      () => r.pick(["é", "节", "🚀", "\u2028", "\u202e", "\u0085"]),
    ])();
  }
  return s;
}

const BASIC_TYPES = [
  "y",
  "b",
  "n",
  "q",
  "i",
  "u",
  "x",
  "t",
  "d",
  "s",
  "o",
  "g",
];

/** One random complete D-Bus type (no unix fds), nested at most `depth` deep. */
function randomType(r: Random, depth = 0): string {
  const roll = r.next();
  if (depth >= 3 || roll < 0.6) return r.pick(BASIC_TYPES);
  if (roll < 0.7) return "v";
  if (roll < 0.82) return `a${randomType(r, depth + 1)}`;
  if (roll < 0.9) return `a{s${randomType(r, depth + 1)}}`;
  const n = r.range(1, 3);
  return `(${
    Array.from({ length: n }, () => randomType(r, depth + 1)).join("")
  })`;
}

/** Splits a signature into its complete types. */
function completeTypes(signature: string): string[] {
  const types: string[] = [];
  let i = 0;
  while (i < signature.length) {
    const start = i;
    const skip = (): void => {
      const c = signature[i++];
      if (c === "a") skip();
      else if (c === "(" || c === "{") {
        while (signature[i] !== ")" && signature[i] !== "}") skip();
        i++;
      }
    };
    skip();
    types.push(signature.slice(start, i));
  }
  return types;
}

/** A value dbus-next can marshal as `type`. */
function valueOf(r: Random, type: string): unknown {
  switch (type[0]) {
    case "y":
      return r.range(0, 255);
    case "b":
      return r.chance(0.5);
    case "n":
      return r.range(-32768, 32767);
    case "q":
      return r.range(0, 65535);
    case "i":
      return r.range(-(2 ** 31), 2 ** 31 - 1);
    case "u":
      return r.range(0, 2 ** 32 - 1);
    case "x":
      return r.bigint(63);
    case "t": {
      const v = r.bigint(64);
      return v < 0n ? -v : v;
    }
    case "d":
      return r.chance(0.2) ? r.pick([0, -0, 1e308, -1e-308]) : r.next() * 1e6;
    case "s":
      return dbusString(r);
    case "o":
      return r.chance(0.2) ? "/" : `/${
        Array.from(
          { length: r.range(1, 3) },
          () => `p${r.int(1000)}_${r.pick(["a", "B", "9"])}`,
        ).join("/")
      }`;
    case "g":
      return Array.from({ length: r.int(3) }, () => randomType(r, 1)).join("");
    case "v": {
      const inner = randomType(r, 1);
      return new dbus.Variant(inner, valueOf(r, inner));
    }
    case "a": {
      if (type[1] === "{") {
        const valueType = type.slice(3, -1);
        return Object.fromEntries(
          Array.from(
            { length: r.int(3) },
            () => [dbusString(r, 6), valueOf(r, valueType)],
          ),
        );
      }
      const element = type.slice(1);
      return Array.from({ length: r.int(3) }, () => valueOf(r, element));
    }
    case "(":
      return completeTypes(type.slice(1, -1)).map((t) => valueOf(r, t));
    default:
      throw new Error(`no value for type ${type}`);
  }
}

interface RandomSignal {
  signature: string;
  body: unknown[];
  /** The current operation the client must report, or undefined when the signal must be ignored. */
  expected: string | undefined;
}

function randomSignal(r: Random): RandomSignal {
  if (r.chance(0.3)) {
    // The right signature with a wrong value: an empty current_operation.
    // (Never NEED_REBOOT: that one marks the end of the run.)
    const operation = r.chance(0.8)
      ? ""
      : r.pick(["UPDATE_STATUS_IDLE", "x", "\u202e"]);
    return {
      signature: STATUS_SIGNATURE,
      body: [r.bigint(63), r.next(), operation, dbusString(r), r.bigint(63)],
      expected: operation === "" ? undefined : operation,
    };
  }
  let signature = "";
  do {
    signature = Array.from({ length: r.int(9) }, () => randomType(r)).join("");
  } while (signature === STATUS_SIGNATURE || signature.length > 255);
  return {
    signature,
    body: completeTypes(signature).map((t) => valueOf(r, t)),
    expected: undefined,
  };
}

Deno.test(`200 random malformed StatusUpdate signals on a real bus: no crash, no unhandled rejection, a good signal still arrives (seed ${SEED})`, async () => {
  const r = new Random(SEED ^ 0x5eed);
  const unhandled: unknown[] = [];
  const onUnhandled = (event: PromiseRejectionEvent) => {
    unhandled.push(event.reason);
    event.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  const h = await startDbus({ logind: false });
  try {
    const logged: string[] = [];
    const engine = new UpdateEngineClient(await h.connect(), {
      log: (line) => logged.push(line),
    });
    const seen: string[] = [];
    let sawNeedReboot = (): void => {};
    const needReboot = new Promise<void>((resolve) => sawNeedReboot = resolve);
    const unsubscribe = await engine.subscribe((operation) => {
      seen.push(operation);
      if (operation === NEED_REBOOT) sawNeedReboot();
    });
    const signals = Array.from({ length: 200 }, () => randomSignal(r));
    try {
      for (const [i, signal] of signals.entries()) {
        try {
          await h.updateEngine.emitRaw({
            signature: signal.signature,
            body: signal.body,
          });
        } catch (error) {
          assert.fail(
            `seed ${SEED} signal ${i} (${signal.signature}) was not sent: ${error}`,
          );
        }
      }
      await h.updateEngine.emit({ currentOperation: NEED_REBOOT });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        needReboot,
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error("no NEED_REBOOT within 5 s")),
            5_000,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    } finally {
      await unsubscribe();
    }
    const expectedSeen = signals.flatMap((s) =>
      s.expected === undefined ? [] : [s.expected]
    );
    assert.deepEqual(
      seen,
      [...expectedSeen, NEED_REBOOT],
      `seed ${SEED}: wrong operations reported`,
    );
    const malformed = signals.length - expectedSeen.length;
    assert.ok(malformed >= 150, `only ${malformed} malformed signals`);
    assert.equal(logged.length, malformed, logged.slice(0, 5).join("\n"));
    for (const line of logged) {
      assert.match(line, /^ignoring a malformed StatusUpdate signal from :/);
      assert.doesNotMatch(line, /\n/);
    }
  } finally {
    await h.close();
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
  }
  assert.deepEqual(unhandled, []);
});

// ---------------------------------------------------------------- update.conf

const EXTRA_KEYS = [
  "GROUP",
  "SERVER",
  "LOCKSMITHD_FROB",
  "reboot_strategy",
  "_X",
  "A1",
];
const BAD_KEYS = ["1KEY", "KEY-NAME", "", "KEY NAME", "ÄKEY", "A.B", "export"];

const GOOD_VALUES = [
  ...REBOOT_STRATEGIES,
  "0",
  "500ms",
  "5s",
  "1h30m",
  "24d",
  "1.5s",
  "Thu 04:00",
  "04:00",
  "Sun 23:59",
  "1h",
  "6d",
  "UTC",
  "Europe/Berlin",
  "America/New_York",
  "http://127.0.0.1:2379",
  "https://a:1,https://b:2",
  "node-1",
  "ünïcødé",
  "/run/reboot-required",
  "/etc/ssl/ca.pem",
];
const BAD_VALUES = [
  " ",
  "fast",
  "-1s",
  "25h",
  "7d",
  "30d",
  "1e3s",
  "Mars/Base",
  "ftp://x",
  "http://a\tb",
  "run/relative",
  "x".repeat(300),
  "a\tb",
  "\u0000",
  "\ud800",
  "\u2028",
  "🚀".repeat(100),
  "Thursday 4am",
  "99:99",
];

/**
 * A value as written after `KEY=`. With `clean`, only well-formed forms
 * (so that the value checks, not the line syntax, are exercised).
 */
/** Values that fit each key, so that whole well-formed configurations occur. */
const GOOD_BY_KEY: Record<string, readonly string[]> = {
  REBOOT_STRATEGY: REBOOT_STRATEGIES,
  LOCKSMITHD_ENDPOINT: ["http://127.0.0.1:2379", "http://a:1, http://b:2", ""],
  LOCKSMITHD_ETCD_TIMEOUT: ["5s", "500ms", "1m", "24d"],
  LOCKSMITHD_GROUP: ["web", "prod/db", "ünï"],
  LOCKSMITHD_MACHINE_ID: ["node-1", "0123abcd"],
  LOCKSMITHD_REBOOT_WINDOW_START: ["Thu 04:00", "04:00"],
  REBOOT_WINDOW_START: ["Sun 23:59", "0:0"],
  LOCKSMITHD_REBOOT_WINDOW_LENGTH: ["1h", "30m", "23h59m"],
  REBOOT_WINDOW_LENGTH: ["2h", "6d"],
  LOCKSMITHD_REBOOT_WINDOW_TZ: ["UTC", "Europe/Berlin", "america/new_york"],
  LOCKSMITHD_REBOOT_SENTINEL: ["/run/reboot-required", "/tmp/x y"],
  LOCKSMITHD_LOGIN_DELAY: ["0", "5m", "24d"],
};

function randomValueText(
  r: Random,
  clean: boolean,
  key?: string,
): string {
  const fitting = key === undefined ? undefined : GOOD_BY_KEY[key];
  if (clean && fitting !== undefined && r.chance(0.6)) return r.pick(fitting);
  const roll = r.next();
  let raw = roll < 0.45
    ? r.pick(GOOD_VALUES)
    : roll < 0.75
    ? r.pick(BAD_VALUES)
    : randomString(r, 20);
  if (clean) {
    raw = raw.replace(/[\r\n\u2028\u2029"'`#\\]/g, " ");
    switch (r.int(6)) {
      case 0:
        return `"${raw}"`;
      case 1:
        return `'${raw}'`;
      case 2:
        return `${raw} # comment`;
      default:
        return raw;
    }
  }
  switch (r.int(10)) {
    case 0:
      return `"${raw}"`;
    case 1:
      return `'${raw}'`;
    case 2:
      return `\`${raw}\``;
    case 3:
      return `"${raw}`; // unterminated
    case 4:
      return `"${raw}" trailing`;
    case 5:
      return `${raw} # comment`;
    case 6:
      return `"${raw}\\n${raw}"`;
    default:
      return raw;
  }
}

function randomLine(r: Random, clean: boolean): string {
  const roll = r.next();
  if (roll < (clean ? 0.8 : 0.6)) {
    const key = clean || r.chance(0.85)
      ? r.pick([...DAEMON_CONFIG_KEYS, ...EXTRA_KEYS])
      : r.pick(BAD_KEYS);
    const prefix = r.chance(0.1) ? r.pick(["export ", "  ", "\t"]) : "";
    const separator = clean
      ? r.pick(["=", "=", " = "])
      : r.pick(["=", "=", "=", " = ", "==", ":", ": ", ""]);
    return `${prefix}${key}${separator}${randomValueText(r, clean, key)}`;
  }
  if (roll < (clean ? 0.9 : 0.7)) {
    const comment = randomString(r, 20);
    return `# ${clean ? comment.replace(/[\r\n\u2028\u2029]/g, " ") : comment}`;
  }
  if (clean || roll < 0.8) return r.pick(["", " ", "\t", "   # x"]);
  if (roll < 0.9) return randomString(r, 30);
  if (roll < 0.95) return `=${randomValueText(r, false)}`;
  return r.pick([...DAEMON_CONFIG_KEYS, "export"]);
}

function randomConfigFile(
  r: Random,
  path: string,
  clean: boolean,
): ConfigSource {
  const lines = Array.from({ length: r.int(12) }, () => randomLine(r, clean));
  let text = "";
  for (const line of lines) {
    text += line + r.pick(["\n", "\n", "\n", "\r\n", "\r"]);
  }
  if (r.chance(0.05)) text = `\uFEFF${text}`;
  if (r.chance(0.1)) text = text.replace(/\n$/, "");
  return { path, text };
}

/** Where a value may come from, as messages name it. */
const ORIGIN = String.raw`(?:f\d\.conf:\d+|environment|--[a-z-]+|the default)`;
const KEY_MESSAGE = new RegExp(
  String
    .raw`^([A-Z][A-Z0-9_]*)(?:=.* \(from ${ORIGIN}\) | is set \(from ${ORIGIN}\) but | \(from ${ORIGIN}\) asks for TLS | \(from ${ORIGIN}\) )`,
);
const FILE_MESSAGE = /^(f\d\.conf):(\d+): /;
// deno-lint-ignore no-control-regex
const UNSAFE = /[\n\r\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/;

function checkConfig(config: DaemonConfig, what: string): void {
  assert.ok(REBOOT_STRATEGIES.includes(config.strategy), what);
  const { timeoutMs, endpoints } = config.etcd;
  assert.ok(timeoutMs > 0 && timeoutMs <= MAX_DURATION_MS, what);
  assert.ok(
    config.loginDelayMs >= 0 && config.loginDelayMs <= MAX_DURATION_MS,
    what,
  );
  for (const id of [config.machineId, config.group]) {
    if (id !== undefined) assert.equal(idDefect(id), undefined, what);
  }
  assert.ok(config.rebootSentinel.startsWith("/"), what);
  assert.doesNotMatch(config.rebootSentinel, UNSAFE, what);
  for (const endpoint of endpoints) {
    assert.match(new URL(endpoint).protocol, /^https?:$/, what);
  }
  for (const warning of config.warnings) {
    assert.doesNotMatch(warning, /\n/, what);
  }
}

Deno.test(`parseConfigText and resolveDaemonConfig throw only one-line UsageErrors naming file:line or key (10,000 random update.conf files, seed ${SEED})`, () => {
  const r = new Random(SEED ^ 0xc0f1);
  const total = 10_000;
  let accepted = 0;
  const flagKeys = Object.values(DAEMON_FLAG_KEYS);
  for (let i = 0; i < total; i++) {
    // Half the files are well-formed line by line, so that values get checked.
    const clean = r.chance(0.5);
    const sources = Array.from(
      { length: r.range(1, 3) },
      (_, n) => randomConfigFile(r, `f${n + 1}.conf`, clean),
    );
    const env: Record<string, string | undefined> = {};
    if (r.chance(0.3)) {
      for (let k = r.range(1, 3); k > 0; k--) {
        env[r.pick([...DAEMON_CONFIG_KEYS, ...EXTRA_KEYS])] = r.chance(0.1)
          ? undefined
          : randomValueText(r, r.chance(0.5));
      }
    }
    const flags: Record<string, string> = {};
    if (r.chance(0.2)) {
      flags[r.pick(flagKeys)] = randomValueText(r, r.chance(0.5));
    }
    const what = `seed ${SEED} case ${i}: ${
      JSON.stringify({ sources, env, flags }).slice(0, 2000)
    }`;
    let config: DaemonConfig;
    try {
      for (const s of sources) parseConfigText(s.path, s.text);
      config = resolveDaemonConfig(sources, env, flags);
    } catch (error) {
      assert.ok(error instanceof UsageError, `${what}: threw ${error}`);
      const message = error.message;
      assert.doesNotMatch(message, UNSAFE, `${what}: unsafe: ${message}`);
      assert.ok(message.length < 1_000, `${what}: ${message.length} chars`);
      const file = FILE_MESSAGE.exec(message);
      if (file !== null) {
        const source = sources.find((s) => s.path === file[1]);
        assert.ok(source !== undefined, `${what}: ${message}`);
        const lines = source.text.split(/\r\n|\r|\n/).length;
        assert.ok(Number(file[2]) <= lines, `${what}: ${message}`);
        continue;
      }
      const key = KEY_MESSAGE.exec(message);
      assert.ok(key !== null, `${what}: names no file:line or key: ${message}`);
      assert.ok(DAEMON_CONFIG_KEYS.includes(key[1] as string), message);
      continue;
    }
    accepted++;
    checkConfig(config, what);
  }
  // Both outcomes were exercised.
  assert.ok(accepted > total * 0.02, `only ${accepted} accepted`);
  assert.ok(accepted < total * 0.9, `${accepted} accepted`);
});
