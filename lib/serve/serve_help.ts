/**
 * The help text of `locksmithd serve`, built from the option table
 * (`SERVE_OPTIONS`), as locksmithd's is built from its key table.
 *
 * @module
 */

import { helpColumns } from "../common/help_layout.ts";
import { flagText, keyHelpText } from "../common/key_table.ts";
import { SERVE_OPTIONS } from "./serve_options.ts";

/** The help of `locksmithd serve`. */
export const SERVE_USAGE: string = `\
Usage: locksmithd serve [flags]

Serves the FleetLock protocol (what Fedora CoreOS's Zincati speaks) on the
etcd reboot semaphore, so machines running Zincati and machines running
locksmithd share the same slots. FleetLock group "default" is locksmithd's
default semaphore; any other group G is locksmithd's group G.

Endpoints: POST /v1/pre-reboot, POST /v1/steady-state, GET /-/healthy,
GET /metrics.

Flags:
${
  helpColumns([
    [
      "--config FILE",
      "read FILE instead of the default update.conf files (for the etcd settings); repeatable",
    ],
    ["--endpoint URL", "same as LOCKSMITHD_ENDPOINT; repeatable"],
    ...SERVE_OPTIONS.map((row): [string, string] => [
      flagText(row.flag),
      keyHelpText(
        row,
        ` (${row.key}${row.flag.repeatable ? ", comma separated" : ""})`,
      ),
    ]),
    ["-h, --help", "print this help and exit"],
    ["--version", "print the version and exit"],
  ])
}

etcd is reached as locksmithd reaches it: LOCKSMITHD_ENDPOINT,
LOCKSMITHD_ETCD_CAFILE, _CERTFILE, _KEYFILE, _USERNAME, _PASSWORD and
LOCKSMITHD_ETCD_TIMEOUT from update.conf or the environment.

Precedence: flag > environment variable > default. SIGTERM or SIGINT stops
the server after the requests in flight are answered.

Exit status: 0 after a clean stop, 1 on a runtime failure, 2 on a usage or
configuration error.
`;
