/**
 * The rules that tie the `fleetlock` strategy to its keys: a base URL is
 * required, the group must be a FleetLock group, TLS needs `https://`, one
 * kind of credentials; the keys do nothing with another strategy, and a
 * base URL whose last segment Zincati's joining would replace is worth a
 * warning. Checked by `resolveDaemonConfig` with the other rules
 * (`config_rules.ts`). Messages never show the URL's userinfo or the token.
 *
 * @module
 */

import { quote, UsageError } from "../common/errors.ts";
import { resolveBaseUrl } from "../fleetlock/protocol/client_request.ts";
import {
  FLEETLOCK_GROUP_PATTERN,
  groupDefect,
} from "../fleetlock/protocol/protocol.ts";
import type { Resolution, Rule } from "./config_rules.ts";
import { FLEETLOCK_URL_EXAMPLE } from "./config_keys_fleetlock.ts";

const STRATEGY = "REBOOT_STRATEGY";
const URL_KEY = "LOCKSMITHD_FLEETLOCK_URL";
const CLIENT_KEYS = [
  URL_KEY,
  "LOCKSMITHD_FLEETLOCK_ID",
  "LOCKSMITHD_FLEETLOCK_CAFILE",
  "LOCKSMITHD_FLEETLOCK_TOKEN",
  "LOCKSMITHD_FLEETLOCK_TIMEOUT",
];

function isFleetLock(r: Resolution): boolean {
  return r.value(STRATEGY) === "fleetlock";
}

/** `fleetlock` needs a server. */
const needsUrl: Rule = (r) => {
  if (!isFleetLock(r) || r.setting(URL_KEY) !== undefined) return;
  const origin = r.setting(STRATEGY)?.origin ?? "the default";
  throw new UsageError(
    `REBOOT_STRATEGY=fleetlock (from ${origin}) needs ${URL_KEY}, the base URL of the FleetLock server, e.g. ${FLEETLOCK_URL_EXAMPLE}`,
  );
};

/** The group is sent as FleetLock's `group`, which the protocol restricts. */
const groupIsFleetLockGroup: Rule = (r) => {
  const group = r.setting("LOCKSMITHD_GROUP");
  if (!isFleetLock(r) || group === undefined) return;
  if (groupDefect(group.value) !== undefined) {
    throw new UsageError(
      `LOCKSMITHD_GROUP=${
        quote(group.value)
      } (from ${group.origin}) is not a FleetLock group: with REBOOT_STRATEGY=fleetlock it is sent as client_params.group, which must match ${FLEETLOCK_GROUP_PATTERN.source}`,
    );
  }
};

/** A CA file asks for TLS, which an `http://` server cannot give. */
const caNeedsHttps: Rule = (r) => {
  const ca = r.setting("LOCKSMITHD_FLEETLOCK_CAFILE");
  const base = r.setting(URL_KEY);
  if (ca === undefined || base === undefined) return;
  if (new URL(base.value).protocol === "http:") {
    throw new UsageError(
      `LOCKSMITHD_FLEETLOCK_CAFILE (from ${ca.origin}) asks for TLS but ${URL_KEY} (from ${base.origin}) uses http://; use an https:// URL`,
    );
  }
};

/** A token and a URL's userinfo are two kinds of credentials: one must go. */
const oneKindOfCredentials: Rule = (r) => {
  const token = r.setting("LOCKSMITHD_FLEETLOCK_TOKEN");
  const base = r.setting(URL_KEY);
  if (token === undefined || base === undefined) return;
  if (resolveBaseUrl(base.value).basic !== undefined) {
    throw new UsageError(
      `LOCKSMITHD_FLEETLOCK_TOKEN (from ${token.origin}) and the user:password in ${URL_KEY} (from ${base.origin}) are both credentials; give one of them`,
    );
  }
};

/** The client's keys do nothing with another strategy. */
const keysNeedStrategy: Rule = (r) => {
  if (isFleetLock(r)) return;
  for (const key of CLIENT_KEYS) {
    const setting = r.setting(key);
    if (setting !== undefined) {
      r.warn(
        `${key} (from ${setting.origin}) has no effect without REBOOT_STRATEGY=fleetlock`,
      );
    }
  }
};

/** Zincati's joining drops a last segment without a trailing slash, and any query: say so. */
const urlSurprises: Rule = (r) => {
  const base = r.setting(URL_KEY);
  if (!isFleetLock(r) || base === undefined) return;
  for (const warning of resolveBaseUrl(base.value).warnings) r.warn(warning);
};

/** The `fleetlock` rules, in the order they are checked. */
export const FLEETLOCK_RULES: readonly Rule[] = Object.freeze([
  needsUrl,
  groupIsFleetLockGroup,
  caNeedsHttps,
  oneKindOfCredentials,
  keysNeedStrategy,
  urlSurprises,
]);
