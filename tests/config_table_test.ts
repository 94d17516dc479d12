/**
 * The key tables of locksmithd and `locksmithd serve` and the flag table of
 * locksmithctl: every row is read, parsed, flagged, documented and
 * permitted as the row says, so that adding a row is enough.
 */

import assert from "node:assert/strict";
import { UsageError } from "../lib/common/errors.ts";
import { oneOf } from "../lib/common/value_parsers.ts";
import { plainText } from "../lib/common/help_layout.ts";
import {
  DAEMON_CONFIG_KEYS,
  DAEMON_FLAG_KEYS,
  DAEMON_KEYS,
  DAEMON_USAGE,
  type DaemonKey,
  parseDaemonArgs,
  parseKeySetting,
  resolveDaemonConfig,
} from "../lib/config/config.ts";
import {
  CTL_FLAGS,
  ctlEnvNames,
  envNameOf,
  valueFlags,
} from "../lib/ctl/flags.ts";
import { parseCtlArgs } from "../lib/ctl/args.ts";
import { ctlHelp } from "../lib/ctl/ctl_help.ts";
import {
  parseServeArgs,
  resolveServeOptions,
  SERVE_ENV_KEYS,
  SERVE_OPTIONS,
  type ServeOptions,
} from "../lib/serve/serve_options.ts";
import { SERVE_USAGE } from "../lib/serve/serve_help.ts";

const denoJson = JSON.parse(
  await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
);

/** Whether a Deno `env` permission list (exact names or `PREFIX*`) lets a program read `name`. */
function permits(list: readonly string[], name: string): boolean {
  return list.some((entry) =>
    entry.endsWith("*") ? name.startsWith(entry.slice(0, -1)) : entry === name
  );
}

/** Collapses runs of spaces and line breaks, to find wrapped help text. */
function flat(text: string): string {
  return text.replace(/\s+/g, " ");
}

/** The literal in a shown default that is one code span, e.g. "`5s`" gives "5s". */
function literal(shown: string | undefined): string | undefined {
  return /^`([^`]+)`$/.exec(shown ?? "")?.[1];
}

/** A DaemonConfig property by a row's field name (`etcd.timeoutMs` reaches into `etcd`). */
function fieldOf(config: object, field: string): unknown {
  return field.split(".").reduce<unknown>(
    (value, name) => (value as Record<string, unknown>)[name],
    config,
  );
}

// ---------------------------------------------------------------- locksmithd

Deno.test("every daemon key, fallback key and flag is named once", () => {
  assert.equal(new Set(DAEMON_CONFIG_KEYS).size, DAEMON_CONFIG_KEYS.length);
  const flags = DAEMON_KEYS.flatMap((k) => k.flag ? [k.flag.name] : []);
  assert.equal(new Set(flags).size, flags.length);
  assert.ok(!flags.includes("config") && !flags.includes("help"));
  assert.deepEqual(
    DAEMON_CONFIG_KEYS,
    DAEMON_KEYS.flatMap((k) => k.fallback ? [k.key, k.fallback] : [k.key]),
  );
});

Deno.test("every daemon key with a literal default shows what its parser makes of it", () => {
  let checked = 0;
  for (const row of DAEMON_KEYS) {
    const text = literal(row.shownDefault);
    if (text === undefined) continue;
    assert.deepEqual(row.parse(text), row.default, row.key);
    checked++;
  }
  assert.ok(checked >= 4, `only ${checked} literal defaults`);
});

Deno.test("every daemon flag sets its key, and its example resolves into the key's field", () => {
  for (const row of DAEMON_KEYS) {
    if (row.flag === undefined) continue;
    const { name, example } = row.flag;
    assert.equal(DAEMON_FLAG_KEYS[name], row.key);
    const { flags } = parseDaemonArgs([`--${name}`, example]);
    assert.deepEqual(flags, { [row.key]: example });
    const config = resolveDaemonConfig([], {}, flags);
    assert.equal(config.origins[row.key], `--${name}`);
    if (row.field !== undefined) {
      assert.deepEqual(fieldOf(config, row.field), row.parse(example), name);
    }
  }
});

Deno.test("every daemon flag without its value names the flag's example", () => {
  for (const row of DAEMON_KEYS) {
    if (row.flag === undefined) continue;
    const { name, example } = row.flag;
    assert.throws(
      () => parseDaemonArgs([`--${name}`]),
      new UsageError(
        `--${name} needs a value, e.g. --${name} ${example}; see locksmithd --help`,
      ),
    );
  }
});

Deno.test("a repeatable daemon flag joins its values with commas", () => {
  const row = DAEMON_KEYS.find((k) => k.flag?.repeatable);
  assert.ok(row?.flag !== undefined);
  const flag = `--${row.flag.name}`;
  const { flags } = parseDaemonArgs([flag, "http://a:1", `${flag}=http://b:2`]);
  assert.equal(flags[row.key], "http://a:1,http://b:2");
});

Deno.test("every daemon key fills its field from the environment, and its default when unset", () => {
  const defaults = resolveDaemonConfig([], {});
  for (const row of DAEMON_KEYS) {
    if (row.field === undefined) continue;
    assert.deepEqual(fieldOf(defaults, row.field), row.default, row.key);
  }
  const config = resolveDaemonConfig([], {
    LOCKSMITHD_ETCD_TIMEOUT: "750ms",
    LOCKSMITHD_REBOOT_SENTINEL: "/run/x",
    LOCKSMITHD_ETCD_USERNAME: "u",
    LOCKSMITHD_ETCD_PASSWORD: "p",
  });
  assert.equal(config.etcd.timeoutMs, 750);
  assert.equal(config.rebootSentinel, "/run/x");
  assert.equal(config.etcd.username, "u");
});

Deno.test("every daemon key can be read under the daemon permission set of deno.json", () => {
  const env: string[] = denoJson.permissions.daemon.env;
  for (const key of DAEMON_CONFIG_KEYS) {
    assert.ok(permits(env, key), `${key} is not in permissions.daemon.env`);
  }
});

Deno.test("a secret key's value is never shown, even when its parser refuses it", () => {
  const row: DaemonKey = {
    key: "LOCKSMITHD_TEST_TOKEN",
    parse: oneOf(["a"]),
    secret: true,
    description: "a test token",
  };
  assert.throws(
    () =>
      parseKeySetting(row, {
        key: row.key,
        value: "hunter2",
        origin: "environment",
      }),
    new UsageError("LOCKSMITHD_TEST_TOKEN (from environment) is not one of a"),
  );
  assert.throws(
    () =>
      parseKeySetting({ ...row, secret: false }, {
        key: row.key,
        value: "b",
        origin: "environment",
      }),
    new UsageError(
      `LOCKSMITHD_TEST_TOKEN="b" (from environment) is not one of a`,
    ),
  );
});

Deno.test("DAEMON_USAGE shows every key's description, fallback and default, and every flag", () => {
  const usage = flat(DAEMON_USAGE);
  for (const row of DAEMON_KEYS) {
    assert.ok(usage.includes(flat(plainText(row.description))), row.key);
    if (row.fallback !== undefined) {
      assert.ok(usage.includes(`Fallback: ${row.fallback}`), row.key);
    }
    if (row.shownDefault !== undefined) {
      assert.ok(
        usage.includes(`Default: ${flat(plainText(row.shownDefault))}`),
        row.key,
      );
    }
    if (row.flag !== undefined) {
      assert.ok(
        usage.includes(
          `--${row.flag.name} ${row.flag.value} same as ${row.key}`,
        ),
        row.key,
      );
    }
  }
});

// ---------------------------------------------------------------- serve

/** The resolved option a serve row's field ends up in (the TLS files in `tls`). */
function serveField(options: ServeOptions, field: string): unknown {
  if (field === "tlsCertFile") return options.tls?.certFile;
  if (field === "tlsKeyFile") return options.tls?.keyFile;
  return (options as unknown as Record<string, unknown>)[field];
}

/** The other TLS file, so that a TLS row resolves alone. */
const TLS_PAIR: Record<string, Record<string, string>> = {
  tlsCertFile: { LOCKSMITHD_FLEETLOCK_TLS_KEY: "/k.pem" },
  tlsKeyFile: { LOCKSMITHD_FLEETLOCK_TLS_CERT: "/c.pem" },
};

Deno.test("every serve key and flag is named once, as a LOCKSMITHD_FLEETLOCK_ variable", () => {
  assert.equal(new Set(SERVE_ENV_KEYS).size, SERVE_OPTIONS.length);
  const flags = SERVE_OPTIONS.map((row) => row.flag.name);
  assert.equal(new Set(flags).size, flags.length);
  for (const row of SERVE_OPTIONS) {
    assert.match(row.key, /^LOCKSMITHD_FLEETLOCK_[A-Z_]+$/);
    assert.ok(!DAEMON_CONFIG_KEYS.includes(row.key), row.key);
  }
});

Deno.test("every serve key with a literal default shows what its parser makes of it", () => {
  let checked = 0;
  for (const row of SERVE_OPTIONS) {
    const text = literal(row.shownDefault);
    if (text === undefined) continue;
    assert.deepEqual(row.parse(text), row.default, row.key);
    checked++;
  }
  assert.ok(checked >= 2, `only ${checked} literal defaults`);
});

Deno.test("every serve flag's example resolves into its field, as does its variable, and the default when unset", () => {
  const defaults = resolveServeOptions({}, {});
  for (const row of SERVE_OPTIONS) {
    assert.deepEqual(serveField(defaults, row.field), row.default, row.key);
    const { name, example } = row.flag;
    const { values } = parseServeArgs([`--${name}`, example]);
    assert.deepEqual(values, { [row.key]: example });
    const pair = TLS_PAIR[row.field] ?? {};
    const fromFlag = resolveServeOptions(values, pair);
    const fromEnv = resolveServeOptions({}, { ...pair, [row.key]: example });
    assert.deepEqual(serveField(fromFlag, row.field), row.parse(example));
    assert.deepEqual(serveField(fromEnv, row.field), row.parse(example));
  }
});

Deno.test("every serve key can be read under the serve permission set of deno.json", () => {
  const env: string[] = denoJson.permissions.serve.env;
  for (const key of SERVE_ENV_KEYS) {
    assert.ok(permits(env, key), `${key} is not in permissions.serve.env`);
  }
});

Deno.test("a secret serve key's value is never shown when its parser refuses it", () => {
  const secrets = SERVE_OPTIONS.filter((row) => row.secret);
  assert.ok(secrets.length > 0);
  for (const row of secrets) {
    assert.throws(
      () => resolveServeOptions({}, { [row.key]: "web=hunter 2" }),
      (error: Error) =>
        error instanceof UsageError && !error.message.includes("hunter"),
    );
  }
});

Deno.test("SERVE_USAGE shows every serve key's flag, variable, description and default", () => {
  const usage = flat(SERVE_USAGE);
  for (const row of SERVE_OPTIONS) {
    assert.ok(
      usage.includes(`--${row.flag.name} ${row.flag.value}`),
      row.key,
    );
    assert.ok(usage.includes(flat(plainText(row.description))), row.key);
    assert.ok(usage.includes(row.key), row.key);
    if (row.shownDefault !== undefined) {
      assert.ok(
        usage.includes(`Default: ${flat(plainText(row.shownDefault))}`),
        row.key,
      );
    }
  }
});

// ---------------------------------------------------------------- locksmithctl

Deno.test("every ctl flag is named once, and so is its short form", () => {
  const names = CTL_FLAGS.map((f) => f.name);
  assert.equal(new Set(names).size, names.length);
  const shorts = CTL_FLAGS.flatMap((f) => f.short ? [f.short] : []);
  assert.equal(new Set(shorts).size, shorts.length);
});

Deno.test("ctlEnvNames() lists one LOCKSMITHCTL_ variable per flag with a value, each permitted by deno.json", () => {
  const env: string[] = denoJson.permissions.ctl.env;
  assert.deepEqual(ctlEnvNames(), valueFlags().map((f) => envNameOf(f.name)));
  assert.ok(ctlEnvNames().includes("LOCKSMITHCTL_ETCD_CAFILE"));
  for (const name of ctlEnvNames()) {
    assert.ok(permits(env, name), `${name} is not in permissions.ctl.env`);
  }
});

Deno.test("every ctl flag with a value is filled from the command line or its variable, the flag winning", () => {
  for (const flag of valueFlags()) {
    const expected = flag.parse(flag.example);
    const fromArgs = parseCtlArgs(["status", `--${flag.name}`, flag.example]);
    assert.deepEqual(fromArgs[flag.field], expected, flag.name);
    const env = { [envNameOf(flag.name)]: flag.example };
    assert.deepEqual(parseCtlArgs(["status"], env)[flag.field], expected);
    const unset = parseCtlArgs(["status"], { [envNameOf(flag.name)]: "" });
    assert.deepEqual(unset[flag.field], flag.default, flag.name);
  }
  const both = parseCtlArgs(["status", "--timeout", "2s"], {
    LOCKSMITHCTL_TIMEOUT: "3s",
  });
  assert.equal(both.timeoutMs, 2_000);
});

Deno.test("every ctl flag without a value sets its field", () => {
  for (const flag of CTL_FLAGS) {
    if (flag.value !== undefined || flag.field === undefined) continue;
    assert.equal(parseCtlArgs(["status"])[flag.field], false, flag.name);
    assert.equal(
      parseCtlArgs(["status", `--${flag.name}`])[flag.field],
      true,
      flag.name,
    );
  }
});

Deno.test("every ctl flag without its value names the flag's example", () => {
  for (const flag of valueFlags()) {
    assert.throws(
      () => parseCtlArgs(["status", `--${flag.name}`]),
      new UsageError(
        `--${flag.name} needs a value, e.g. --${flag.name} ${flag.example}; run 'locksmithctl help'`,
      ),
    );
  }
});

Deno.test("a ctl value refused by its parser names the flag or variable it came from", () => {
  assert.throws(
    () => parseCtlArgs(["status"], { LOCKSMITHCTL_GROUP: "a\u0007b" }),
    new UsageError(
      `LOCKSMITHCTL_GROUP="a\\u0007b" contains a control character`,
    ),
  );
  assert.throws(
    () => parseCtlArgs(["status", "--timeout", "25d"]),
    new UsageError(
      `--timeout "25d" is not a positive duration up to 24d, such as 5s or 500ms`,
    ),
  );
});

Deno.test("every ctl flag with a literal default shows what its parser makes of it", () => {
  const invocation = parseCtlArgs(["status"]);
  for (const flag of valueFlags()) {
    assert.deepEqual(invocation[flag.field], flag.default, flag.name);
    const text = literal(flag.shownDefault);
    if (text !== undefined) {
      assert.deepEqual(flag.parse(text), flag.default, flag.name);
    }
  }
});

Deno.test("ctlHelp() lists every global flag with its description and default, within 80 columns", () => {
  const help = ctlHelp();
  const text = flat(help);
  for (const flag of CTL_FLAGS) {
    const listed = text.includes(flat(plainText(flag.description)));
    assert.equal(listed, flag.command === undefined, flag.name);
    if (flag.value !== undefined && flag.shownDefault !== undefined) {
      assert.ok(
        text.includes(`Default: ${flat(plainText(flag.shownDefault))}`),
        flag.name,
      );
    }
  }
  assert.match(help, /^ {2}-h, --help {12}show help$/m);
  for (const line of help.split("\n")) {
    assert.ok(line.length <= 80, `longer than 80 columns: ${line}`);
  }
});
