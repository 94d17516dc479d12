/**
 * The rows of locksmithd's key table for the `fleetlock` strategy: the
 * FleetLock server's base URL, the id sent, TLS, a token and the request
 * timeout. They are part of `DAEMON_KEYS` (`config_keys.ts`) and follow the
 * same rules: one row per key, `deno task docs` for docs/configuration.md. The rules
 * that tie them to the strategy are in `config_rules_fleetlock.ts`.
 *
 * @module
 */

import type { DaemonKey } from "./config_keys.ts";
import {
  anyText,
  duration,
  oneOf,
  url,
  ValueDefect,
  type ValueParser,
} from "../common/value_parsers.ts";
import {
  BEARER_TOKEN_PATTERN,
  DEFAULT_FLEETLOCK_TIMEOUT_MS,
} from "../fleetlock/protocol/client_request.ts";

/** Which id the `fleetlock` strategy sends. */
export type FleetLockIdSource = "machine" | "zincati";

/** Every accepted {@link FleetLockIdSource}. */
export const FLEETLOCK_ID_SOURCES: readonly FleetLockIdSource[] = Object
  .freeze(["machine", "zincati"]);

/** An example base URL, for messages and the docs. */
export const FLEETLOCK_URL_EXAMPLE = "http://fleetlock.example.com:8080/";

/** A bearer token: RFC 6750's `b64token`, as `locksmithd serve` accepts it. */
function bearerToken(): ValueParser<string> {
  return (text) => {
    if (!BEARER_TOKEN_PATTERN.test(text)) {
      throw new ValueDefect(
        "is not a token (letters, digits and -._~+/, then = signs)",
      );
    }
    return text;
  };
}

/** The `fleetlock` keys, in the order of `--help` and docs/configuration.md. */
export const FLEETLOCK_KEYS: readonly DaemonKey[] = Object.freeze(
  [
    {
      key: "LOCKSMITHD_FLEETLOCK_URL",
      flag: {
        name: "fleetlock-url",
        value: "URL",
        example: FLEETLOCK_URL_EXAMPLE,
      },
      field: "fleetLockUrl",
      parse: url({
        protocols: ["http:", "https:"],
        example: FLEETLOCK_URL_EXAMPLE,
      }),
      default: undefined,
      // Its userinfo may carry a token: never shown in messages.
      secret: true,
      shownDefault: "none (required with `fleetlock`)",
      description:
        "base URL of the FleetLock server for `REBOOT_STRATEGY=fleetlock`; `v1/pre-reboot` and `v1/steady-state` are resolved against it as Zincati does, so end it with `/` (`http://h/lock` posts to `http://h/v1/pre-reboot`, `http://h/lock/` to `http://h/lock/v1/pre-reboot`); a `user:token@` in it is sent as Basic credentials",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_ID",
      field: "fleetLockId",
      parse: oneOf(FLEETLOCK_ID_SOURCES),
      default: "machine",
      shownDefault: "`machine`",
      description:
        "the FleetLock id: `machine` (the machine id, as `etcd-lock` holds slots) or `zincati` (Zincati's id, derived from the machine id: a machine that moves between Zincati and locksmithd keeps its slot)",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_CAFILE",
      field: "fleetLockCaFile",
      parse: anyText(),
      default: undefined,
      shownDefault: "the system's CA store",
      description:
        "PEM CA certificate of an `https://` FleetLock server, trusted besides the default store",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_TOKEN",
      field: "fleetLockToken",
      parse: bearerToken(),
      default: undefined,
      secret: true,
      shownDefault: "none",
      description:
        "token sent as `Authorization: Bearer` (for a `locksmithd serve` with `--token`; never shown in messages)",
    },
    {
      key: "LOCKSMITHD_FLEETLOCK_TIMEOUT",
      field: "fleetLockTimeoutMs",
      parse: duration({ example: "30s", positive: true }),
      default: DEFAULT_FLEETLOCK_TIMEOUT_MS,
      shownDefault: "`30s`",
      description: "limit of each FleetLock request",
    },
  ] satisfies readonly DaemonKey[],
);
