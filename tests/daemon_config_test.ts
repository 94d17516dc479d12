import assert from "node:assert/strict";
import { UsageError } from "../lib/common/errors.ts";
import { nearestName, unknownEnvWarnings } from "../lib/common/env_names.ts";
import { DEFAULT_ENDPOINT } from "../lib/etcd/client/endpoints.ts";
import {
  type ConfigEnv,
  type ConfigFlags,
  type ConfigSource,
  DAEMON_CONFIG_KEYS,
  DAEMON_FLAG_KEYS,
  DAEMON_USAGE,
  type DaemonConfig,
  DEFAULT_CONFIG_FILES,
  DEFAULT_ETCD_TIMEOUT_MS,
  DEFAULT_LOGIN_DELAY_MS,
  DEFAULT_REBOOT_SENTINEL,
  loadDaemonConfig,
  parseConfigText,
  parseDaemonArgs,
  resolveDaemonConfig,
} from "../lib/config/config.ts";
import { assertUsageError } from "./harness/config.ts";

const USR = "/usr/share/coreos/update.conf";
const ETC = "/etc/coreos/update.conf";

function file(path: string, ...lines: string[]): ConfigSource {
  return { path, text: lines.join("\n") + "\n" };
}

function resolve(
  sources: ConfigSource[],
  env: ConfigEnv = {},
  flags: ConfigFlags = {},
): DaemonConfig {
  return resolveDaemonConfig(sources, env, flags);
}

// ---------------------------------------------------------------- file syntax

Deno.test("parseConfigText() reads unquoted values with spaces", () => {
  assert.deepEqual(
    parseConfigText(
      "update.conf",
      "LOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\nREBOOT_STRATEGY=reboot\n",
    ),
    [
      { key: "LOCKSMITHD_REBOOT_WINDOW_START", value: "Thu 04:00", line: 1 },
      { key: "REBOOT_STRATEGY", value: "reboot", line: 2 },
    ],
  );
});

Deno.test("parseConfigText() unquotes double, single and backtick quoted values", () => {
  assert.deepEqual(
    parseConfigText(
      "f",
      [
        `A="Thu 04:00"`,
        `B='Thu 04:00'`,
        "C=`Thu 04:00`",
        `D="with # hash"`,
        `E="line\\nbreak"`,
        `F="x" # comment after the quote`,
      ].join("\n"),
    ).map(({ key, value }) => [key, value]),
    [
      ["A", "Thu 04:00"],
      ["B", "Thu 04:00"],
      ["C", "Thu 04:00"],
      ["D", "with # hash"],
      ["E", "line\nbreak"],
      ["F", "x"],
    ],
  );
});

Deno.test("parseConfigText() skips comments and blank lines and keeps line numbers", () => {
  const text = [
    "# update.conf",
    "",
    "   ",
    "  # indented comment",
    "GROUP=stable",
    "REBOOT_STRATEGY=off # inline comment",
  ].join("\n");
  assert.deepEqual(parseConfigText("f", text), [
    { key: "GROUP", value: "stable", line: 5 },
    { key: "REBOOT_STRATEGY", value: "off", line: 6 },
  ]);
});

Deno.test("parseConfigText() accepts export, spaces around = and empty values", () => {
  assert.deepEqual(
    parseConfigText("f", "export A=1\n  export   B = two words \nC=\nD=''\n")
      .map(({ key, value }) => [key, value]),
    [["A", "1"], ["B", "two words"], ["C", ""], ["D", ""]],
  );
});

Deno.test("parseConfigText() accepts CRLF line endings and a byte-order mark", () => {
  assert.deepEqual(
    parseConfigText(
      "f",
      "\uFEFFREBOOT_STRATEGY=reboot\r\n# c\r\nLOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00\r\n",
    ),
    [
      { key: "REBOOT_STRATEGY", value: "reboot", line: 1 },
      { key: "LOCKSMITHD_REBOOT_WINDOW_START", value: "Thu 04:00", line: 3 },
    ],
  );
});

Deno.test("parseConfigText() reports a malformed line with file and line number", () => {
  for (
    const [line, shown] of [
      ["this is not an assignment", `"this is not an assignment"`],
      ["1KEY=x", `"1KEY=x"`],
      ["KEY-NAME=x", `"KEY-NAME=x"`],
      ["KEY: value", `"KEY: value"`],
      ["=value", `"=value"`],
      ["export", `"export"`],
    ]
  ) {
    assertUsageError(
      () => parseConfigText(ETC, `# ok\nREBOOT_STRATEGY=reboot\n${line}\n`),
      `${ETC}:3: line is not KEY=value or a # comment (KEY is letters, digits and _, optionally after "export "): ${shown}`,
    );
  }
});

Deno.test("parseConfigText() counts CRLF lines when reporting a malformed line", () => {
  assertUsageError(
    () => parseConfigText("update.conf", "A=1\r\nB=2\r\n\r\noops\r\n"),
    /^update\.conf:4: line is not KEY=value/,
  );
});

Deno.test("parseConfigText() shortens a long malformed line in the message", () => {
  assertUsageError(
    () => parseConfigText("f", "x".repeat(500)),
    new RegExp(`^f:1: .*: "${"x".repeat(77)}\\.\\.\\."$`),
  );
});

Deno.test("parseConfigText() does not show a malformed line that may hold a password", () => {
  assertUsageError(
    () => parseConfigText("f", "LOCKSMITHD_ETCD_PASSWORD: hunter2"),
    /^f:1: line is not KEY=value .*: \(not shown: it may hold a password\)$/,
  );
});

Deno.test("parseConfigText() rejects an unterminated quote", () => {
  assertUsageError(
    () => parseConfigText("f", `A=1\nLOCKSMITHD_GROUP="web\n`),
    `f:2: value of LOCKSMITHD_GROUP has an unterminated " quote`,
  );
  assertUsageError(
    () => parseConfigText("f", `LOCKSMITHD_GROUP='web\\'`),
    `f:1: value of LOCKSMITHD_GROUP has an unterminated ' quote`,
  );
});

Deno.test("parseConfigText() rejects text after a closing quote", () => {
  assertUsageError(
    () => parseConfigText("f", `LOCKSMITHD_REBOOT_WINDOW_START="Thu" 04:00`),
    "f:1: value of LOCKSMITHD_REBOOT_WINDOW_START has text after its closing quote; quote the whole value",
  );
});

// ---------------------------------------------------------------- defaults

Deno.test("resolveDaemonConfig() returns the defaults when nothing is set", () => {
  assert.deepEqual(resolve([]), {
    strategy: "best-effort",
    etcd: {
      endpoints: [DEFAULT_ENDPOINT],
      caFile: undefined,
      certFile: undefined,
      keyFile: undefined,
      username: undefined,
      password: undefined,
      timeoutMs: DEFAULT_ETCD_TIMEOUT_MS,
    },
    group: undefined,
    rebootWindow: undefined,
    machineId: undefined,
    rebootSchedule: undefined,
    rebootSentinel: DEFAULT_REBOOT_SENTINEL,
    loginDelayMs: DEFAULT_LOGIN_DELAY_MS,
    bestEffortWaitMs: 30_000,
    rebootRetryLimitMs: 30 * 60_000,
    bootId: undefined,
    slotTtlSeconds: 0,
    preRebootCheck: undefined,
    rebootCommand: undefined,
    healthCheck: undefined,
    healthCheckIntervalMs: 30_000,
    healthCheckTimeoutMs: 15 * 60_000,
    commandTimeoutMs: 5 * 60_000,
    metricsAddress: undefined,
    notifyUrl: undefined,
    fleetLockUrl: undefined,
    fleetLockId: "machine",
    fleetLockCaFile: undefined,
    fleetLockToken: undefined,
    fleetLockTimeoutMs: 30_000,
    configFiles: [],
    origins: {},
    warnings: [],
  });
  assert.equal(DEFAULT_REBOOT_SENTINEL, "/run/reboot-required");
  assert.equal(DEFAULT_LOGIN_DELAY_MS, 5 * 60_000);
  assert.equal(DEFAULT_ETCD_TIMEOUT_MS, 5_000);
});

Deno.test("resolveDaemonConfig() reads every key", () => {
  const config = resolve([file(
    ETC,
    "REBOOT_STRATEGY=etcd-lock",
    "LOCKSMITHD_ENDPOINT=https://10.0.0.1:2379, https://10.0.0.2:2379",
    "LOCKSMITHD_ETCD_CAFILE=/etc/ssl/etcd/ca.pem",
    "LOCKSMITHD_ETCD_CERTFILE=/etc/ssl/etcd/cert.pem",
    "LOCKSMITHD_ETCD_KEYFILE=/etc/ssl/etcd/key.pem",
    "LOCKSMITHD_ETCD_USERNAME=root",
    "LOCKSMITHD_ETCD_PASSWORD=s3cret",
    "LOCKSMITHD_ETCD_TIMEOUT=2s",
    "LOCKSMITHD_GROUP=web servers",
    "LOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00",
    "LOCKSMITHD_REBOOT_WINDOW_LENGTH=1h30m",
    "LOCKSMITHD_REBOOT_WINDOW_TZ=Europe/Berlin",
    "LOCKSMITHD_MACHINE_ID=node-1",
    "LOCKSMITHD_REBOOT_SENTINEL=/var/run/reboot-needed",
    "LOCKSMITHD_LOGIN_DELAY=90s",
  )]);
  assert.equal(config.strategy, "etcd-lock");
  assert.deepEqual(config.etcd, {
    endpoints: ["https://10.0.0.1:2379", "https://10.0.0.2:2379"],
    caFile: "/etc/ssl/etcd/ca.pem",
    certFile: "/etc/ssl/etcd/cert.pem",
    keyFile: "/etc/ssl/etcd/key.pem",
    username: "root",
    password: "s3cret",
    timeoutMs: 2_000,
  });
  assert.equal(config.group, "web servers");
  assert.deepEqual(config.rebootWindow, {
    day: 4,
    hour: 4,
    minute: 0,
    lengthMs: 90 * 60_000,
    timeZone: "Europe/Berlin",
  });
  assert.equal(config.machineId, "node-1");
  assert.equal(config.rebootSentinel, "/var/run/reboot-needed");
  assert.equal(config.loginDelayMs, 90_000);
  assert.deepEqual(config.configFiles, [ETC]);
  assert.equal(config.origins["LOCKSMITHD_GROUP"], `${ETC}:9`);
  assert.equal(Object.keys(config.origins).length, 15);
  assert.deepEqual(config.warnings, []);
});

Deno.test("resolveDaemonConfig() accepts each strategy", () => {
  for (const strategy of ["etcd-lock", "reboot", "best-effort", "off"]) {
    assert.equal(
      resolve([], { REBOOT_STRATEGY: strategy }).strategy,
      strategy,
    );
  }
});

Deno.test("resolveDaemonConfig() accepts a login delay of 0 to disable it", () => {
  assert.equal(
    resolve([], { LOCKSMITHD_LOGIN_DELAY: "0" }).loginDelayMs,
    0,
  );
});

// ---------------------------------------------------------------- precedence

Deno.test("resolveDaemonConfig() applies flag > environment > later file > earlier file > default", () => {
  const early = file(USR, "REBOOT_STRATEGY=off");
  const late = file(ETC, "# comment", "REBOOT_STRATEGY=reboot");
  const env = { REBOOT_STRATEGY: "etcd-lock" };
  const flags = { REBOOT_STRATEGY: "best-effort" };

  const byDefault = resolve([]);
  assert.equal(byDefault.strategy, "best-effort");
  assert.equal(byDefault.origins["REBOOT_STRATEGY"], undefined);

  const byEarly = resolve([early]);
  assert.equal(byEarly.strategy, "off");
  assert.equal(byEarly.origins["REBOOT_STRATEGY"], `${USR}:1`);

  const byLate = resolve([early, late]);
  assert.equal(byLate.strategy, "reboot");
  assert.equal(byLate.origins["REBOOT_STRATEGY"], `${ETC}:2`);

  const byEnv = resolve([early, late], env);
  assert.equal(byEnv.strategy, "etcd-lock");
  assert.equal(byEnv.origins["REBOOT_STRATEGY"], "environment");

  const byFlag = resolve([early, late], env, flags);
  assert.equal(byFlag.strategy, "best-effort");
  assert.equal(byFlag.origins["REBOOT_STRATEGY"], "--strategy");
});

Deno.test("resolveDaemonConfig() lets the later of two lines in one file win", () => {
  const config = resolve([
    file(ETC, "REBOOT_STRATEGY=off", "REBOOT_STRATEGY=reboot"),
  ]);
  assert.equal(config.strategy, "reboot");
  assert.equal(config.origins["REBOOT_STRATEGY"], `${ETC}:2`);
});

Deno.test("resolveDaemonConfig() merges keys from different levels", () => {
  const config = resolve(
    [
      file(USR, "REBOOT_STRATEGY=off", "LOCKSMITHD_GROUP=a"),
      file(ETC, "LOCKSMITHD_LOGIN_DELAY=1m"),
    ],
    { LOCKSMITHD_MACHINE_ID: "env-id" },
    { LOCKSMITHD_GROUP: "b" },
  );
  assert.equal(config.strategy, "off");
  assert.equal(config.group, "b");
  assert.equal(config.loginDelayMs, 60_000);
  assert.equal(config.machineId, "env-id");
});

Deno.test("resolveDaemonConfig() treats an empty value as the default and lets it hide lower levels", () => {
  const config = resolve(
    [file(USR, "REBOOT_STRATEGY=reboot", "LOCKSMITHD_GROUP=web")],
    { REBOOT_STRATEGY: "" },
    { LOCKSMITHD_GROUP: "  " },
  );
  assert.equal(config.strategy, "best-effort");
  assert.equal(config.group, undefined);
  assert.equal(config.origins["REBOOT_STRATEGY"], undefined);
});

Deno.test("resolveDaemonConfig() ignores undefined values in the environment and flags", () => {
  const config = resolve(
    [file(ETC, "REBOOT_STRATEGY=reboot")],
    { REBOOT_STRATEGY: undefined },
    { REBOOT_STRATEGY: undefined },
  );
  assert.equal(config.strategy, "reboot");
});

Deno.test("resolveDaemonConfig() trims values but not the etcd password", () => {
  const config = resolve([], {
    REBOOT_STRATEGY: "  reboot ",
    LOCKSMITHD_ETCD_USERNAME: " root ",
    LOCKSMITHD_ETCD_PASSWORD: " pass word ",
  });
  assert.equal(config.strategy, "reboot");
  assert.equal(config.etcd.username, "root");
  assert.equal(config.etcd.password, " pass word ");
});

Deno.test("resolveDaemonConfig() names the flag an override came from", () => {
  const flags = parseDaemonArgs([
    "--strategy",
    "reboot",
    "--endpoint",
    "http://a:2379",
    "--group",
    "g",
    "--machine-id",
    "m",
  ]).flags;
  const config = resolve([], {}, flags);
  assert.deepEqual(config.origins, {
    REBOOT_STRATEGY: "--strategy",
    LOCKSMITHD_ENDPOINT: "--endpoint",
    LOCKSMITHD_GROUP: "--group",
    LOCKSMITHD_MACHINE_ID: "--machine-id",
  });
});

Deno.test("resolveDaemonConfig() rejects flags for keys it does not know", () => {
  assert.throws(
    () => resolve([], {}, { NOT_A_KEY: "x" }),
    TypeError,
  );
});

// ---------------------------------------------------------------- ignored and unknown keys

Deno.test("resolveDaemonConfig() ignores update_engine's GROUP and SERVER", () => {
  const config = resolve(
    [file(
      ETC,
      "GROUP=beta",
      "SERVER=https://public.update.flatcar-linux.net/v1/update/",
    )],
    { GROUP: "alpha", SERVER: "https://example.com" },
  );
  assert.equal(config.group, undefined);
  assert.deepEqual(config.warnings, []);
  assert.deepEqual(config.origins, {});
});

Deno.test("resolveDaemonConfig() ignores unrelated environment variables", () => {
  const config = resolve([], {
    PATH: "/usr/bin",
    HOME: "/root",
    LOCKSMITHCTL_ENDPOINT: "http://ctl:2379",
  });
  assert.deepEqual(config.warnings, []);
  assert.deepEqual(config.etcd.endpoints, [DEFAULT_ENDPOINT]);
});

Deno.test("resolveDaemonConfig() warns about unknown LOCKSMITHD_ keys from files and the environment", () => {
  const config = resolve(
    [file(ETC, "REBOOT_STRATEGY=reboot", "LOCKSMITHD_ENDPIONT=http://x:2379")],
    { LOCKSMITHD_FOO: "1" },
  );
  assert.equal(config.strategy, "reboot");
  assert.deepEqual(config.warnings, [
    `unknown key LOCKSMITHD_ENDPIONT (from ${ETC}:2) is ignored (did you mean LOCKSMITHD_ENDPOINT?)`,
    "unknown key LOCKSMITHD_FOO (from environment) is ignored",
  ]);
});

Deno.test("resolveDaemonConfig() warns once about an unknown key set at several levels", () => {
  const config = resolve([file(ETC, "LOCKSMITHD_FOO=1")], {
    LOCKSMITHD_FOO: "2",
  });
  assert.deepEqual(config.warnings, [
    "unknown key LOCKSMITHD_FOO (from environment) is ignored",
  ]);
});

// ---------------------------------------------------------------- reboot window

Deno.test("resolveDaemonConfig() reads an unquoted window start with a space", () => {
  const config = resolve([file(
    ETC,
    "LOCKSMITHD_REBOOT_WINDOW_START=thu 4:00",
    "LOCKSMITHD_REBOOT_WINDOW_LENGTH=1h",
    "LOCKSMITHD_REBOOT_WINDOW_TZ=UTC",
  )]);
  assert.deepEqual(config.rebootWindow, {
    day: 4,
    hour: 4,
    minute: 0,
    lengthMs: 3_600_000,
    timeZone: "UTC",
  });
});

Deno.test("resolveDaemonConfig() reads a quoted window start with a space", () => {
  const config = resolve([file(
    ETC,
    `LOCKSMITHD_REBOOT_WINDOW_START="Sat 22:30"`,
    "LOCKSMITHD_REBOOT_WINDOW_LENGTH='2h'",
    "LOCKSMITHD_REBOOT_WINDOW_TZ=UTC",
  )]);
  assert.equal(config.rebootWindow?.day, 6);
  assert.equal(config.rebootWindow?.hour, 22);
  assert.equal(config.rebootWindow?.minute, 30);
});

Deno.test("resolveDaemonConfig() falls back to REBOOT_WINDOW_START and REBOOT_WINDOW_LENGTH", () => {
  const config = resolve([file(
    ETC,
    "REBOOT_WINDOW_START=Mon 01:00",
    "REBOOT_WINDOW_LENGTH=45m",
    "LOCKSMITHD_REBOOT_WINDOW_TZ=UTC",
  )]);
  assert.equal(config.rebootWindow?.day, 1);
  assert.equal(config.rebootWindow?.lengthMs, 45 * 60_000);
});

Deno.test("resolveDaemonConfig() prefers the LOCKSMITHD_ window keys over the unprefixed ones", () => {
  const config = resolve(
    [file(ETC, "REBOOT_WINDOW_START=Mon 01:00", "REBOOT_WINDOW_LENGTH=45m")],
    {
      LOCKSMITHD_REBOOT_WINDOW_START: "Tue 02:00",
      LOCKSMITHD_REBOOT_WINDOW_TZ: "UTC",
    },
  );
  assert.equal(config.rebootWindow?.day, 2);
  assert.equal(config.rebootWindow?.hour, 2);
  assert.equal(config.rebootWindow?.lengthMs, 45 * 60_000);
});

Deno.test("resolveDaemonConfig() uses the system's zone for a window without LOCKSMITHD_REBOOT_WINDOW_TZ", () => {
  const config = resolve([], {
    REBOOT_WINDOW_START: "04:00",
    REBOOT_WINDOW_LENGTH: "1h",
  });
  assert.equal(config.rebootWindow?.timeZone, Temporal.Now.timeZoneId());
});

Deno.test("resolveDaemonConfig() canonicalises the window's time zone", () => {
  const config = resolve([], {
    REBOOT_WINDOW_START: "04:00",
    REBOOT_WINDOW_LENGTH: "1h",
    LOCKSMITHD_REBOOT_WINDOW_TZ: "america/new_york",
  });
  assert.equal(config.rebootWindow?.timeZone, "America/New_York");
});

Deno.test("resolveDaemonConfig() requires window start and length together", () => {
  assertUsageError(
    () => resolve([file(ETC, "LOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00")]),
    `LOCKSMITHD_REBOOT_WINDOW_START="Thu 04:00" (from ${ETC}:1) is set but neither LOCKSMITHD_REBOOT_WINDOW_LENGTH nor REBOOT_WINDOW_LENGTH is; set both start and length, or neither`,
  );
  assertUsageError(
    () => resolve([], { REBOOT_WINDOW_LENGTH: "1h" }),
    `REBOOT_WINDOW_LENGTH="1h" (from environment) is set but neither LOCKSMITHD_REBOOT_WINDOW_START nor REBOOT_WINDOW_START is; set both start and length, or neither`,
  );
});

Deno.test("resolveDaemonConfig() warns when a time zone is set without a window", () => {
  const config = resolve([file(ETC, "LOCKSMITHD_REBOOT_WINDOW_TZ=UTC")]);
  assert.equal(config.rebootWindow, undefined);
  assert.deepEqual(config.warnings, [
    `LOCKSMITHD_REBOOT_WINDOW_TZ (from ${ETC}:1) has no effect without a reboot window or schedule`,
  ]);
});

// ---------------------------------------------------------------- invalid values

Deno.test("resolveDaemonConfig() rejects an unknown strategy, naming key, value and file:line", () => {
  assertUsageError(
    () => resolve([file(ETC, "# c", "", "REBOOT_STRATEGY=fast")]),
    `REBOOT_STRATEGY="fast" (from ${ETC}:3) is not one of etcd-lock, fleetlock, reboot, best-effort, off`,
  );
});

Deno.test("resolveDaemonConfig() rejects an unknown strategy from the environment and from a flag", () => {
  assertUsageError(
    () => resolve([], { REBOOT_STRATEGY: "Reboot" }),
    `REBOOT_STRATEGY="Reboot" (from environment) is not one of etcd-lock, fleetlock, reboot, best-effort, off`,
  );
  assertUsageError(
    () => resolve([], {}, { REBOOT_STRATEGY: "now" }),
    `REBOOT_STRATEGY="now" (from --strategy) is not one of etcd-lock, fleetlock, reboot, best-effort, off`,
  );
});

Deno.test("resolveDaemonConfig() rejects a bad endpoint, naming the key and the endpoint", () => {
  assertUsageError(
    () =>
      resolve([], {
        LOCKSMITHD_ENDPOINT: "http://ok:2379,ftp://bad:2379",
      }),
    `LOCKSMITHD_ENDPOINT="http://ok:2379,ftp://bad:2379" (from environment) is invalid: endpoint "ftp://bad:2379" is not a URL like http://127.0.0.1:2379`,
  );
});

Deno.test("resolveDaemonConfig() rejects a certificate without a key and a user without a password", () => {
  assertUsageError(
    () =>
      resolve([file(ETC, "LOCKSMITHD_ETCD_CERTFILE=/c.pem")], {
        LOCKSMITHD_ENDPOINT: "https://e:2379",
      }),
    `LOCKSMITHD_ETCD_CERTFILE is set (from ${ETC}:1) but LOCKSMITHD_ETCD_KEYFILE is not; set both or neither`,
  );
  assertUsageError(
    () => resolve([], { LOCKSMITHD_ETCD_PASSWORD: "hunter2" }),
    "LOCKSMITHD_ETCD_PASSWORD is set (from environment) but LOCKSMITHD_ETCD_USERNAME is not; set both or neither",
  );
});

Deno.test("resolveDaemonConfig() never shows the etcd password in a message", () => {
  try {
    resolve([], { LOCKSMITHD_ETCD_PASSWORD: "hunter2" });
    assert.fail("expected an error");
  } catch (error) {
    assert.ok(!(error as Error).message.includes("hunter2"));
  }
});

Deno.test("resolveDaemonConfig() rejects TLS files with an http:// endpoint", () => {
  assertUsageError(
    () => resolve([], { LOCKSMITHD_ETCD_CAFILE: "/ca.pem" }),
    `LOCKSMITHD_ETCD_CAFILE (from environment) asks for TLS but endpoint "http://127.0.0.1:2379" (from the default) uses http://; use https:// endpoints in LOCKSMITHD_ENDPOINT`,
  );
  assert.deepEqual(
    resolve([], {
      LOCKSMITHD_ETCD_CAFILE: "/ca.pem",
      LOCKSMITHD_ENDPOINT: "https://e:2379",
    }).etcd.endpoints,
    ["https://e:2379"],
  );
});

Deno.test("resolveDaemonConfig() rejects a bad etcd timeout", () => {
  for (const value of ["0", "soon", "-1s"]) {
    assertUsageError(
      () => resolve([file(ETC, `LOCKSMITHD_ETCD_TIMEOUT=${value}`)]),
      `LOCKSMITHD_ETCD_TIMEOUT=${
        JSON.stringify(value)
      } (from ${ETC}:1) is not a duration longer than 0, like 5s (units ms, s, m, h, d)`,
    );
  }
});

Deno.test("resolveDaemonConfig() rejects a group or machine id with a control character", () => {
  assertUsageError(
    () => resolve([], { LOCKSMITHD_GROUP: "a\tb" }),
    `LOCKSMITHD_GROUP="a\\tb" (from environment) contains a control character`,
  );
  assertUsageError(
    () => resolve([file(ETC, `LOCKSMITHD_MACHINE_ID="a\\nb"`)]),
    `LOCKSMITHD_MACHINE_ID="a\\nb" (from ${ETC}:1) contains a control character`,
  );
});

Deno.test("resolveDaemonConfig() rejects a machine id longer than 256 bytes", () => {
  assertUsageError(
    () => resolve([], {}, { LOCKSMITHD_MACHINE_ID: "x".repeat(257) }),
    /^LOCKSMITHD_MACHINE_ID="x+" \(from --machine-id\) is longer than 256 bytes$/,
  );
});

Deno.test("resolveDaemonConfig() rejects a relative reboot sentinel path", () => {
  assertUsageError(
    () => resolve([], { LOCKSMITHD_REBOOT_SENTINEL: "run/reboot-required" }),
    `LOCKSMITHD_REBOOT_SENTINEL="run/reboot-required" (from environment) is not an absolute path`,
  );
});

Deno.test("resolveDaemonConfig() rejects a login delay that is not a duration", () => {
  assertUsageError(
    () => resolve([file(USR, "LOCKSMITHD_LOGIN_DELAY=5 minutes")]),
    `LOCKSMITHD_LOGIN_DELAY="5 minutes" (from ${USR}:1) is not a duration like 5m (units ms, s, m, h, d; 0 disables the delay)`,
  );
});

Deno.test("resolveDaemonConfig() rejects a bad window start, naming the key it came from", () => {
  assertUsageError(
    () =>
      resolve([file(
        ETC,
        "LOCKSMITHD_REBOOT_WINDOW_START=Thursday 04:00",
        "LOCKSMITHD_REBOOT_WINDOW_LENGTH=1h",
      )]),
    /^LOCKSMITHD_REBOOT_WINDOW_START="Thursday 04:00" \(from \/etc\/coreos\/update\.conf:1\) is not \[Day \]H:M with Day one of Sun, .* e\.g\. "Thu 04:00" or "04:00"$/,
  );
  assertUsageError(
    () =>
      resolve([], { REBOOT_WINDOW_START: "25:00", REBOOT_WINDOW_LENGTH: "1h" }),
    /^REBOOT_WINDOW_START="25:00" \(from environment\) is not \[Day \]H:M/,
  );
});

Deno.test("resolveDaemonConfig() rejects a bad window length, naming the key it came from", () => {
  assertUsageError(
    () =>
      resolve([], {
        LOCKSMITHD_REBOOT_WINDOW_START: "04:00",
        REBOOT_WINDOW_LENGTH: "25h",
      }),
    /^REBOOT_WINDOW_LENGTH="25h" \(from environment\) is not shorter than 24h, the limit for a daily window/,
  );
  assertUsageError(
    () =>
      resolve([file(
        ETC,
        "LOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00",
        "LOCKSMITHD_REBOOT_WINDOW_LENGTH=1 hour",
      )]),
    `LOCKSMITHD_REBOOT_WINDOW_LENGTH="1 hour" (from ${ETC}:2) is not a duration like 1h30m (units ms, s, m, h, d)`,
  );
});

Deno.test("resolveDaemonConfig() rejects an unknown window time zone, with or without a window", () => {
  assertUsageError(
    () =>
      resolve([file(
        ETC,
        "REBOOT_WINDOW_START=04:00",
        "REBOOT_WINDOW_LENGTH=1h",
        "LOCKSMITHD_REBOOT_WINDOW_TZ=Mars/Olympus",
      )]),
    `LOCKSMITHD_REBOOT_WINDOW_TZ="Mars/Olympus" (from ${ETC}:3) is not a known IANA time zone, e.g. Europe/Berlin, America/New_York or UTC`,
  );
  assertUsageError(
    () => resolve([], { LOCKSMITHD_REBOOT_WINDOW_TZ: "Mars/Olympus" }),
    /^LOCKSMITHD_REBOOT_WINDOW_TZ="Mars\/Olympus" \(from environment\) is not a known IANA time zone/,
  );
});

Deno.test("resolveDaemonConfig() reports a malformed line with file:line before any value", () => {
  assertUsageError(
    () =>
      resolve([
        file(USR, "REBOOT_STRATEGY=reboot"),
        file(ETC, "REBOOT_STRATEGY=reboot", "", "", "", "", "", "garbage here"),
      ]),
    /^\/etc\/coreos\/update\.conf:7: line is not KEY=value/,
  );
});

// ---------------------------------------------------------------- loading files

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "locksmith_config_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadDaemonConfig() reads the given files in order, the later one winning", async () => {
  await withTempDir(async (dir) => {
    const a = `${dir}/a.conf`;
    const b = `${dir}/b.conf`;
    await Deno.writeTextFile(
      a,
      "REBOOT_STRATEGY=off\r\nLOCKSMITHD_GROUP=web\r\n",
    );
    await Deno.writeTextFile(b, "# override\nREBOOT_STRATEGY=reboot\n");
    const config = await loadDaemonConfig({
      configFiles: [a, b],
      env: {},
      flags: {},
    });
    assert.equal(config.strategy, "reboot");
    assert.equal(config.group, "web");
    assert.deepEqual(config.configFiles, [a, b]);
    assert.equal(config.origins["REBOOT_STRATEGY"], `${b}:2`);
  });
});

Deno.test("loadDaemonConfig() applies the environment and flags over the files", async () => {
  await withTempDir(async (dir) => {
    const a = `${dir}/update.conf`;
    await Deno.writeTextFile(a, "REBOOT_STRATEGY=off\nLOCKSMITHD_GROUP=web\n");
    const config = await loadDaemonConfig({
      configFiles: [a],
      env: { REBOOT_STRATEGY: "reboot", LOCKSMITHD_GROUP: "db" },
      flags: { LOCKSMITHD_GROUP: "cache" },
    });
    assert.equal(config.strategy, "reboot");
    assert.equal(config.group, "cache");
  });
});

Deno.test("loadDaemonConfig() rejects a missing file given with --config, naming it", async () => {
  await withTempDir(async (dir) => {
    const missing = `${dir}/missing.conf`;
    await assert.rejects(
      loadDaemonConfig({ configFiles: [missing], env: {} }),
      (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.match(
          error.message,
          new RegExp(
            `^cannot read config file ${missing}: No such file or directory`,
          ),
        );
        return true;
      },
    );
  });
});

Deno.test("loadDaemonConfig() rejects an unreadable file such as a directory, naming it", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      loadDaemonConfig({ configFiles: [dir], env: {} }),
      (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.ok(!error.message.includes("\n"));
        assert.match(
          error.message,
          new RegExp(`^cannot read config file ${dir}: `),
        );
        return true;
      },
    );
  });
});

Deno.test("loadDaemonConfig() reports a malformed line with the file's path and line", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/update.conf`;
    await Deno.writeTextFile(path, "GROUP=stable\nSERVER=x\nnot valid\n");
    await assert.rejects(
      loadDaemonConfig({ configFiles: [path], env: {} }),
      (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.ok(error.message.startsWith(`${path}:3: line is not KEY=value`));
        return true;
      },
    );
  });
});

Deno.test("loadDaemonConfig() skips missing default files", async () => {
  const present: string[] = [];
  for (const path of DEFAULT_CONFIG_FILES) {
    try {
      if ((await Deno.stat(path)).isFile) present.push(path);
    } catch {
      // missing: skipped by loadDaemonConfig too
    }
  }
  const config = await loadDaemonConfig({ env: {} });
  assert.deepEqual(config.configFiles, present);
});

Deno.test("DEFAULT_CONFIG_FILES lists the CoreOS files, then the Flatcar ones", () => {
  assert.deepEqual(DEFAULT_CONFIG_FILES, [
    "/usr/share/coreos/update.conf",
    "/etc/coreos/update.conf",
    "/usr/share/flatcar/update.conf",
    "/etc/flatcar/update.conf",
  ]);
});

// ---------------------------------------------------------------- command line

Deno.test("parseDaemonArgs() returns no overrides and the default files for no arguments", () => {
  assert.deepEqual(parseDaemonArgs([]), {
    help: false,
    version: false,
    configFiles: undefined,
    flags: {},
  });
});

Deno.test("parseDaemonArgs() maps the override flags onto config keys", () => {
  assert.deepEqual(
    parseDaemonArgs([
      "--strategy",
      "etcd-lock",
      "--group=web",
      "--machine-id",
      "node-1",
      "--endpoint",
      "http://a:2379",
      "--endpoint=http://b:2379,http://c:2379",
    ]).flags,
    {
      REBOOT_STRATEGY: "etcd-lock",
      LOCKSMITHD_GROUP: "web",
      LOCKSMITHD_MACHINE_ID: "node-1",
      LOCKSMITHD_ENDPOINT: "http://a:2379,http://b:2379,http://c:2379",
    },
  );
});

Deno.test("parseDaemonArgs() collects repeated --config files in order", () => {
  assert.deepEqual(
    parseDaemonArgs(["--config", "/a.conf", "--config=/b.conf"]).configFiles,
    ["/a.conf", "/b.conf"],
  );
});

Deno.test("parseDaemonArgs() reads --help, -h and --version", () => {
  assert.equal(parseDaemonArgs(["--help"]).help, true);
  assert.equal(parseDaemonArgs(["-h"]).help, true);
  assert.equal(parseDaemonArgs(["--version"]).version, true);
  assert.equal(parseDaemonArgs(["--version"]).help, false);
});

Deno.test("parseDaemonArgs() lets the last of a repeated single flag win", () => {
  assert.equal(
    parseDaemonArgs(["--strategy", "off", "--strategy", "reboot"]).flags
      .REBOOT_STRATEGY,
    "reboot",
  );
});

Deno.test("parseDaemonArgs() rejects unknown flags", () => {
  assertUsageError(
    () => parseDaemonArgs(["--reboot-now"]),
    "unknown flag --reboot-now; see locksmithd --help",
  );
  assertUsageError(
    () => parseDaemonArgs(["-x"]),
    "unknown flag -x; see locksmithd --help",
  );
});

Deno.test("parseDaemonArgs() rejects a flag without its value", () => {
  assertUsageError(
    () => parseDaemonArgs(["--config"]),
    "--config needs a value, e.g. --config /etc/flatcar/update.conf; see locksmithd --help",
  );
  assertUsageError(
    () => parseDaemonArgs(["--strategy", "--group", "web"]),
    "--strategy needs a value, e.g. --strategy etcd-lock; see locksmithd --help",
  );
  assertUsageError(
    () => parseDaemonArgs(["--endpoint="]),
    /^--endpoint needs a value/,
  );
});

Deno.test("parseDaemonArgs() rejects a value given to --help or --version", () => {
  assertUsageError(
    () => parseDaemonArgs(["--version=2"]),
    "--version takes no value; see locksmithd --help",
  );
});

Deno.test("parseDaemonArgs() rejects positional arguments", () => {
  assertUsageError(
    () => parseDaemonArgs(["reboot"]),
    `unexpected argument "reboot"; see locksmithd --help`,
  );
  assertUsageError(
    () => parseDaemonArgs(["--", "--strategy"]),
    `unexpected argument "--strategy"; see locksmithd --help`,
  );
});

Deno.test("DAEMON_USAGE lists every flag, config key, default file and exit status", () => {
  for (const flag of Object.keys(DAEMON_FLAG_KEYS)) {
    assert.ok(DAEMON_USAGE.includes(`--${flag} `), flag);
  }
  for (const flag of ["--config FILE", "--help", "--version"]) {
    assert.ok(DAEMON_USAGE.includes(flag), flag);
  }
  for (const key of DAEMON_CONFIG_KEYS) {
    assert.ok(DAEMON_USAGE.includes(key), key);
  }
  for (const path of DEFAULT_CONFIG_FILES) {
    assert.ok(DAEMON_USAGE.includes(path), path);
  }
  assert.match(
    DAEMON_USAGE,
    /0 ok, 1 runtime failure, 2 usage or configuration error/,
  );
  for (const line of DAEMON_USAGE.split("\n")) {
    assert.ok(line.length <= 80, `line longer than 80 columns: ${line}`);
  }
});

Deno.test("nearestName() names the known key a typo is near, and none for a name near nothing", () => {
  assert.equal(
    nearestName("LOCKSMITHD_ENDPIONT", DAEMON_CONFIG_KEYS),
    "LOCKSMITHD_ENDPOINT",
  );
  assert.equal(
    nearestName("REBOOT_STRATEGIE", DAEMON_CONFIG_KEYS),
    "REBOOT_STRATEGY",
  );
  assert.equal(nearestName("LOCKSMITHD_FOO", DAEMON_CONFIG_KEYS), undefined);
  assert.deepEqual(
    unknownEnvWarnings(
      { LOCKSMITHCTL_ENDPOINT: "x", LOCKSMITHCTL_ENDPIONT: "y" },
      ["LOCKSMITHCTL_ENDPOINT", "LOCKSMITHCTL_GROUP"],
    ),
    [
      "unknown variable LOCKSMITHCTL_ENDPIONT is ignored (did you mean LOCKSMITHCTL_ENDPOINT?)",
    ],
  );
});

Deno.test("DAEMON_USAGE names the serve command", () => {
  assert.match(DAEMON_USAGE, /^ {7}locksmithd serve \[flags\]$/m);
  assert.match(DAEMON_USAGE, /^ {2}serve {4}serve the FleetLock protocol/m);
});
