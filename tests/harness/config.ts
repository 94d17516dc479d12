/**
 * Helpers of the config tests (`daemon_config_test.ts`,
 * `fleetlock_config_test.ts`, `safety_config_test.ts`): an update.conf
 * text resolved alone, and the check of a one-line `UsageError`.
 */

import assert from "node:assert/strict";
import { UsageError } from "../../lib/common/errors.ts";
import {
  type ConfigSource,
  type DaemonConfig,
  resolveDaemonConfig,
} from "../../lib/config/config.ts";

/** Where {@link conf} says its lines come from. */
export const ETC = "/etc/flatcar/update.conf";

/** The config of `lines` as the text of {@link ETC}, with no environment or flags. */
export function conf(...lines: string[]): DaemonConfig {
  const source: ConfigSource = { path: ETC, text: lines.join("\n") + "\n" };
  return resolveDaemonConfig([source], {});
}

/** Asserts that `fn` throws a one-line UsageError (exit status 2) with exactly `message`, or matching it. */
export function assertUsageError(
  fn: () => unknown,
  message: string | RegExp,
): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UsageError, `not a UsageError: ${error}`);
    assert.equal(error.exitCode, 2);
    assert.ok(!error.message.includes("\n"), "message is one line");
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    return true;
  });
}
