/**
 * The keys of locksmithd's `fleetlock` strategy, resolved from update.conf
 * texts, the environment and flags: the URL required with the strategy,
 * the FleetLock group, TLS, one kind of credentials, warnings, secrets
 * never shown; and the id sent (the machine id or Zincati's).
 */

import assert from "node:assert/strict";
import { UsageError } from "../lib/common/errors.ts";
import { parseDaemonArgs, resolveDaemonConfig } from "../lib/config/config.ts";
import {
  fleetLockHolderId,
  openFleetLockClient,
} from "../lib/daemon/wiring/fleetlock_wiring.ts";
import { daemonPermissionNeeds } from "../lib/daemon/wiring/daemon_permissions.ts";
import { assertUsageError, conf, ETC } from "./harness/config.ts";

Deno.test("REBOOT_STRATEGY=fleetlock reads the server, id, CA file, token and timeout", () => {
  const config = conf(
    "REBOOT_STRATEGY=fleetlock",
    "LOCKSMITHD_FLEETLOCK_URL=https://fleetlock.example.com/lock/",
    "LOCKSMITHD_FLEETLOCK_ID=zincati",
    "LOCKSMITHD_FLEETLOCK_CAFILE=/etc/locksmith/ca.pem",
    "LOCKSMITHD_FLEETLOCK_TOKEN=s3cr3t-t0ken",
    "LOCKSMITHD_FLEETLOCK_TIMEOUT=10s",
    "LOCKSMITHD_GROUP=web.eu-1",
  );
  assert.equal(config.strategy, "fleetlock");
  assert.equal(config.fleetLockUrl, "https://fleetlock.example.com/lock/");
  assert.equal(config.fleetLockId, "zincati");
  assert.equal(config.fleetLockCaFile, "/etc/locksmith/ca.pem");
  assert.equal(config.fleetLockToken, "s3cr3t-t0ken");
  assert.equal(config.fleetLockTimeoutMs, 10_000);
  assert.equal(config.group, "web.eu-1");
  assert.deepEqual(config.warnings, []);
});

Deno.test("the URL has a flag, and the defaults are the machine id and 30s", () => {
  const { flags } = parseDaemonArgs([
    "--strategy",
    "fleetlock",
    "--fleetlock-url",
    "http://127.0.0.1:8080/",
  ]);
  const config = resolveDaemonConfig([], {}, flags);
  assert.equal(config.fleetLockUrl, "http://127.0.0.1:8080/");
  assert.equal(config.origins["LOCKSMITHD_FLEETLOCK_URL"], "--fleetlock-url");
  assert.equal(config.fleetLockId, "machine");
  assert.equal(config.fleetLockTimeoutMs, 30_000);
});

Deno.test("fleetlock without a URL is a one-line configuration error naming the key", () => {
  assertUsageError(
    () => conf("REBOOT_STRATEGY=fleetlock"),
    `REBOOT_STRATEGY=fleetlock (from ${ETC}:1) needs LOCKSMITHD_FLEETLOCK_URL, the base URL of the FleetLock server, e.g. http://fleetlock.example.com:8080/`,
  );
  assertUsageError(
    () =>
      resolveDaemonConfig([], {
        REBOOT_STRATEGY: "fleetlock",
        LOCKSMITHD_FLEETLOCK_URL: "",
      }),
    /^REBOOT_STRATEGY=fleetlock \(from environment\) needs LOCKSMITHD_FLEETLOCK_URL/,
  );
});

Deno.test("a URL that is not http(s) is refused without showing it (it may carry a token)", () => {
  assertUsageError(
    () =>
      conf(
        "REBOOT_STRATEGY=fleetlock",
        "LOCKSMITHD_FLEETLOCK_URL=ftp://user:hunter2@h/",
      ),
    `LOCKSMITHD_FLEETLOCK_URL (from ${ETC}:2) is not a URL like http://fleetlock.example.com:8080/ (scheme http or https)`,
  );
});

Deno.test("a base URL without a trailing slash is accepted with a warning naming where requests go", () => {
  const config = conf(
    "REBOOT_STRATEGY=fleetlock",
    "LOCKSMITHD_FLEETLOCK_URL=http://zincati:tok@h:8080/fleetlock",
  );
  assert.deepEqual(config.warnings, [
    'LOCKSMITHD_FLEETLOCK_URL "http://h:8080/fleetlock" does not end in "/": its last path segment "fleetlock" is replaced, so requests go to http://h:8080/v1/pre-reboot (Zincati resolves it the same way); end it with "/" to keep the segment',
  ]);
});

Deno.test("the group must be a FleetLock group with the fleetlock strategy", () => {
  assertUsageError(
    () =>
      conf(
        "REBOOT_STRATEGY=fleetlock",
        "LOCKSMITHD_FLEETLOCK_URL=http://h/",
        "LOCKSMITHD_GROUP=web servers",
      ),
    `LOCKSMITHD_GROUP="web servers" (from ${ETC}:3) is not a FleetLock group: with REBOOT_STRATEGY=fleetlock it is sent as client_params.group, which must match ^[a-zA-Z0-9.-]+$`,
  );
  assert.equal(
    conf("REBOOT_STRATEGY=etcd-lock", "LOCKSMITHD_GROUP=web servers").group,
    "web servers",
  );
});

Deno.test("a CA file needs an https:// URL, and a token excludes a user:password in the URL", () => {
  assertUsageError(
    () =>
      conf(
        "REBOOT_STRATEGY=fleetlock",
        "LOCKSMITHD_FLEETLOCK_URL=http://h/",
        "LOCKSMITHD_FLEETLOCK_CAFILE=/etc/locksmith/ca.pem",
      ),
    `LOCKSMITHD_FLEETLOCK_CAFILE (from ${ETC}:3) asks for TLS but LOCKSMITHD_FLEETLOCK_URL (from ${ETC}:2) uses http://; use an https:// URL`,
  );
  assertUsageError(
    () =>
      conf(
        "REBOOT_STRATEGY=fleetlock",
        "LOCKSMITHD_FLEETLOCK_URL=https://z:pw@h/",
        "LOCKSMITHD_FLEETLOCK_TOKEN=abc",
      ),
    `LOCKSMITHD_FLEETLOCK_TOKEN (from ${ETC}:3) and the user:password in LOCKSMITHD_FLEETLOCK_URL (from ${ETC}:2) are both credentials; give one of them`,
  );
});

Deno.test("a bad token or id choice is refused; the token is never shown", () => {
  assertUsageError(
    () =>
      conf(
        "REBOOT_STRATEGY=fleetlock",
        "LOCKSMITHD_FLEETLOCK_URL=http://h/",
        "LOCKSMITHD_FLEETLOCK_TOKEN=not a token",
      ),
    `LOCKSMITHD_FLEETLOCK_TOKEN (from ${ETC}:3) is not a token (letters, digits and -._~+/, then = signs)`,
  );
  assertUsageError(
    () =>
      conf(
        "REBOOT_STRATEGY=fleetlock",
        "LOCKSMITHD_FLEETLOCK_URL=http://h/",
        "LOCKSMITHD_FLEETLOCK_ID=hostname",
      ),
    `LOCKSMITHD_FLEETLOCK_ID="hostname" (from ${ETC}:3) is not one of machine, zincati`,
  );
});

Deno.test("the FleetLock keys without the fleetlock strategy are warned about", () => {
  const config = conf(
    "REBOOT_STRATEGY=etcd-lock",
    "LOCKSMITHD_FLEETLOCK_URL=http://h/",
    "LOCKSMITHD_FLEETLOCK_TIMEOUT=5s",
  );
  assert.deepEqual(config.warnings, [
    `LOCKSMITHD_FLEETLOCK_URL (from ${ETC}:2) has no effect without REBOOT_STRATEGY=fleetlock`,
    `LOCKSMITHD_FLEETLOCK_TIMEOUT (from ${ETC}:3) has no effect without REBOOT_STRATEGY=fleetlock`,
  ]);
});

Deno.test("the id sent is the machine id, or Zincati's id of it; Zincati's needs a 128-bit machine id", async () => {
  const machine = "1c09ca98649c4c7abc779cd04c96812e";
  assert.equal(
    await fleetLockHolderId(
      { fleetLockId: "machine", machineId: undefined },
      machine,
    ),
    machine,
  );
  assert.equal(
    await fleetLockHolderId(
      { fleetLockId: "zincati", machineId: undefined },
      machine,
    ),
    "978a225b3d7b40e9acd7ce9b62f68444",
  );
  await assert.rejects(
    fleetLockHolderId(
      { fleetLockId: "zincati", machineId: "node-1" },
      "node-1",
    ),
    (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.equal(
        error.message,
        'LOCKSMITHD_FLEETLOCK_ID=zincati derives Zincati\'s id from the machine id, but LOCKSMITHD_MACHINE_ID "node-1" is not 32 hexadecimal digits (a systemd machine id)',
      );
      return true;
    },
  );
});

Deno.test("the client sends the group, `default` without one, and a CA file that cannot be read is one line naming it", async () => {
  const config = conf(
    "REBOOT_STRATEGY=fleetlock",
    "LOCKSMITHD_FLEETLOCK_URL=http://h:8080/",
  );
  const client = await openFleetLockClient(config, "node-1");
  assert.equal(
    client.name,
    "FleetLock server http://h:8080/ (group default, id node-1)",
  );
  await client.close();
  await assert.rejects(
    openFleetLockClient({
      ...conf(
        "REBOOT_STRATEGY=fleetlock",
        "LOCKSMITHD_FLEETLOCK_URL=https://h/",
      ),
      fleetLockCaFile: "/nonexistent/ca.pem",
    }, "node-1"),
    /^UsageError: LOCKSMITHD_FLEETLOCK_CAFILE "\/nonexistent\/ca\.pem" cannot be read: /,
  );
});

Deno.test("fleetlock needs the network to the server and the CA file, and no etcd", () => {
  const config = conf(
    "REBOOT_STRATEGY=fleetlock",
    "LOCKSMITHD_FLEETLOCK_URL=https://fleetlock.example.com/",
    "LOCKSMITHD_FLEETLOCK_CAFILE=/etc/locksmith/ca.pem",
    "LOCKSMITHD_MACHINE_ID=node-1",
  );
  const needs = daemonPermissionNeeds(config, []).map((n) => n.descriptor);
  assert.deepEqual(needs, [
    { name: "read", path: "/run/reboot-required" },
    { name: "sys", kind: "osUptime" },
    { name: "net", host: "fleetlock.example.com:443" },
    { name: "read", path: "/etc/locksmith/ca.pem" },
  ]);
});
