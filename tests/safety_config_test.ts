/**
 * locksmithd's safe-reboot keys: schedules, commands, health check timings,
 * metrics and notifications, resolved from update.conf texts, the
 * environment and flags, with one-line errors naming the key.
 */

import assert from "node:assert/strict";
import { parseDaemonArgs, resolveDaemonConfig } from "../lib/config/config.ts";
import { formatSchedule } from "../lib/schedule/schedule.ts";
import { assertUsageError, conf, ETC } from "./harness/config.ts";

Deno.test("LOCKSMITHD_REBOOT_SCHEDULE gives a schedule of several windows in the window's zone", () => {
  const config = conf(
    "LOCKSMITHD_REBOOT_SCHEDULE=Mon-Fri 02:00 2h, Sat 04:00 4h",
    "LOCKSMITHD_REBOOT_WINDOW_TZ=europe/berlin",
  );
  assert.equal(config.rebootWindow, undefined);
  assert.ok(config.rebootSchedule);
  assert.equal(
    formatSchedule(config.rebootSchedule),
    "Mon-Fri 02:00 for 2h, Sat 04:00 for 4h (Europe/Berlin)",
  );
  assert.equal(config.rebootSchedule.windows.length, 6);
  assert.deepEqual(config.warnings, []);
});

Deno.test("a reboot window becomes a one-entry schedule", () => {
  const config = conf(
    "REBOOT_WINDOW_START=Thu 04:00",
    "REBOOT_WINDOW_LENGTH=1h30m",
    "LOCKSMITHD_REBOOT_WINDOW_TZ=UTC",
  );
  assert.equal(config.rebootWindow?.day, 4);
  assert.ok(config.rebootSchedule);
  assert.equal(
    formatSchedule(config.rebootSchedule),
    "Thu 04:00 for 1h30m (UTC)",
  );
  assert.equal(conf().rebootSchedule, undefined);
});

Deno.test("a schedule and a reboot window together are a configuration error naming both", () => {
  assertUsageError(
    () =>
      conf(
        "LOCKSMITHD_REBOOT_WINDOW_START=04:00",
        "LOCKSMITHD_REBOOT_WINDOW_LENGTH=1h",
        "LOCKSMITHD_REBOOT_SCHEDULE=Sat 04:00 4h",
      ),
    `LOCKSMITHD_REBOOT_SCHEDULE (from ${ETC}:3) and LOCKSMITHD_REBOOT_WINDOW_START (from ${ETC}:1) are both set; a schedule replaces the reboot window: set one or the other`,
  );
  assertUsageError(
    () =>
      resolveDaemonConfig([], {
        REBOOT_WINDOW_START: "04:00",
        REBOOT_WINDOW_LENGTH: "1h",
        LOCKSMITHD_REBOOT_SCHEDULE: "Sat 04:00 4h",
      }),
    /^LOCKSMITHD_REBOOT_SCHEDULE \(from environment\) and REBOOT_WINDOW_START \(from environment\) are both set/,
  );
});

Deno.test("an invalid schedule names the key, the value, the file line and the faulty part", () => {
  assertUsageError(
    () => conf("# x", "LOCKSMITHD_REBOOT_SCHEDULE=Mon-Fry 02:00 2h"),
    `LOCKSMITHD_REBOOT_SCHEDULE="Mon-Fry 02:00 2h" (from ${ETC}:2) is invalid: "Mon-Fry" is not a day or day range; days are Sun, Mon, Tue, Wed, Thu, Fri, Sat, e.g. Mon-Fri, Fri-Mon or Sun,Wed`,
  );
  assertUsageError(
    () => conf("LOCKSMITHD_REBOOT_SCHEDULE=02:00 25h"),
    /^LOCKSMITHD_REBOOT_SCHEDULE="02:00 25h" \(from .*:1\) is invalid: "25h" is not shorter than 24h/,
  );
});

Deno.test("the three commands are split without a shell, as update.conf gives them", () => {
  const config = conf(
    "LOCKSMITHD_HEALTH_CHECK=/usr/local/bin/check-services --quick",
    "LOCKSMITHD_PRE_REBOOT_CHECK=/usr/bin/test ! -e /run/maintenance",
    `LOCKSMITHD_REBOOT_COMMAND=/bin/sh -c 'kubectl drain "$(hostname)" --ignore-daemonsets && systemctl reboot'`,
  );
  assert.deepEqual(
    [config.healthCheck?.program, config.healthCheck?.args],
    ["/usr/local/bin/check-services", ["--quick"]],
  );
  assert.deepEqual(config.preRebootCheck?.args, [
    "!",
    "-e",
    "/run/maintenance",
  ]);
  assert.equal(config.preRebootCheck?.key, "LOCKSMITHD_PRE_REBOOT_CHECK");
  assert.deepEqual(config.rebootCommand?.args, [
    "-c",
    `kubectl drain "$(hostname)" --ignore-daemonsets && systemctl reboot`,
  ]);
});

Deno.test("a command that needs a shell is refused at start, naming the key, the file line and the culprit", () => {
  assertUsageError(
    () =>
      resolveDaemonConfig([], {
        LOCKSMITHD_HEALTH_CHECK:
          "/usr/bin/curl -sf localhost/health | /bin/grep ok",
      }),
    `LOCKSMITHD_HEALTH_CHECK="/usr/bin/curl -sf localhost/health | /bin/grep ok" (from environment) uses the shell operator "|", which is not allowed: commands run without a shell (to use one, write /bin/sh -c '…')`,
  );
  assertUsageError(
    () => conf("LOCKSMITHD_REBOOT_COMMAND=systemctl reboot"),
    `LOCKSMITHD_REBOOT_COMMAND="systemctl reboot" (from ${ETC}:1) names the program "systemctl", which is not an absolute path (write e.g. /usr/bin/systemctl)`,
  );
  assertUsageError(
    () => conf("LOCKSMITHD_PRE_REBOOT_CHECK=/usr/bin/test -e $HOME/x"),
    /^LOCKSMITHD_PRE_REBOOT_CHECK="\/usr\/bin\/test -e \$HOME\/x" \(from .*:1\) uses the expansion "\$HOME", which is not allowed/,
  );
});

Deno.test("health check timings, the command timeout, metrics and notifications are read and checked", () => {
  const config = conf(
    "LOCKSMITHD_HEALTH_CHECK=/bin/true",
    "LOCKSMITHD_HEALTH_CHECK_INTERVAL=10s",
    "LOCKSMITHD_HEALTH_CHECK_TIMEOUT=5m",
    "LOCKSMITHD_COMMAND_TIMEOUT=90s",
    "LOCKSMITHD_METRICS_ADDR=:9101",
    "LOCKSMITHD_NOTIFY_URL=https://hooks.example.com/locksmith?token=x",
  );
  assert.equal(config.healthCheckIntervalMs, 10_000);
  assert.equal(config.healthCheckTimeoutMs, 300_000);
  assert.equal(config.commandTimeoutMs, 90_000);
  assert.deepEqual(config.metricsAddress, { hostname: "0.0.0.0", port: 9101 });
  assert.equal(
    config.notifyUrl,
    "https://hooks.example.com/locksmith?token=x",
  );
  assertUsageError(
    () => conf("LOCKSMITHD_METRICS_ADDR=localhost"),
    /^LOCKSMITHD_METRICS_ADDR="localhost" \(from .*:1\) is not HOST:PORT with a port 1-65535/,
  );
  assertUsageError(
    () => conf("LOCKSMITHD_NOTIFY_URL=ftp://example.com/x"),
    /^LOCKSMITHD_NOTIFY_URL="ftp:\/\/example\.com\/x" \(from .*:1\) is not a URL like https:\/\/hooks\.example\.com\/locksmith \(scheme http or https\)$/,
  );
  assertUsageError(
    () => conf("LOCKSMITHD_HEALTH_CHECK_INTERVAL=0"),
    /^LOCKSMITHD_HEALTH_CHECK_INTERVAL="0" \(from .*:1\) is not a duration longer than 0/,
  );
});

Deno.test("settings that do nothing without their feature are warned about", () => {
  const config = conf(
    "LOCKSMITHD_HEALTH_CHECK_TIMEOUT=5m",
    "LOCKSMITHD_REBOOT_WINDOW_TZ=UTC",
  );
  assert.deepEqual(config.warnings, [
    `LOCKSMITHD_REBOOT_WINDOW_TZ (from ${ETC}:2) has no effect without a reboot window or schedule`,
    `LOCKSMITHD_HEALTH_CHECK_TIMEOUT (from ${ETC}:1) has no effect without LOCKSMITHD_HEALTH_CHECK`,
  ]);
  assert.deepEqual(
    conf("REBOOT_STRATEGY=reboot", "LOCKSMITHD_HEALTH_CHECK=/bin/true")
      .warnings,
    [
      `LOCKSMITHD_HEALTH_CHECK (from ${ETC}:2) has no effect with REBOOT_STRATEGY=reboot: no slot is held to release after boot`,
    ],
  );
});

Deno.test("the commands, metrics and notifications have flags", () => {
  const { flags } = parseDaemonArgs([
    "--health-check",
    "/usr/local/bin/healthy --quick",
    "--metrics-addr=127.0.0.1:9101",
    "--notify-url",
    "http://127.0.0.1:8080/hook",
  ]);
  const config = resolveDaemonConfig([], {}, flags);
  assert.deepEqual(config.healthCheck?.args, ["--quick"]);
  assert.equal(config.origins["LOCKSMITHD_HEALTH_CHECK"], "--health-check");
  assert.deepEqual(config.metricsAddress, {
    hostname: "127.0.0.1",
    port: 9101,
  });
  assert.equal(config.notifyUrl, "http://127.0.0.1:8080/hook");
});

Deno.test("the daemon permission set runs nothing: commands need --allow-run added for their programs", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  assert.ok(config.permissions.daemon, "permission set daemon");
  assert.equal(config.permissions.daemon.run, undefined);
  assert.doesNotMatch(config.tasks.daemon, /--allow-run/);
});
