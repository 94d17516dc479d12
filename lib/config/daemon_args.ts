/**
 * locksmithd's command line and `--help`, both derived from the key table
 * (`config_keys.ts`): every key with a `flag` is a flag, and every key is
 * listed in the help.
 *
 * @module
 */

import { type FlagRules, walkFlags } from "../common/flag_walk.ts";
import { helpColumns } from "../common/help_layout.ts";
import { keyHelpText } from "../common/key_table.ts";
import { DEFAULT_CONFIG_FILES } from "./config_file.ts";
import { DAEMON_KEYS, type DaemonKey } from "./config_keys.ts";

/** locksmithd's parsed command line. */
export interface DaemonArgs {
  /** `--help` or `-h` was given. */
  readonly help: boolean;
  /** `--version` was given. */
  readonly version: boolean;
  /** Files from `--config` (in order), or `undefined` to read the default config files. */
  readonly configFiles: readonly string[] | undefined;
  /**
   * Overrides by config key, for `resolveDaemonConfig`: `--strategy`,
   * `--group`, `--machine-id` and `--endpoint` (repeated ones joined with `,`),
   * or whichever flags the key table defines.
   */
  readonly flags: Readonly<Record<string, string>>;
}

/** The rows that have a flag, by flag name. */
const FLAG_ROWS: ReadonlyMap<string, DaemonKey> = new Map(
  DAEMON_KEYS.flatMap((row) =>
    row.flag === undefined ? [] : [[row.flag.name, row]]
  ),
);

const CONFIG_EXAMPLE = "/etc/flatcar/update.conf";

const ARG_OPTIONS: FlagRules["options"] = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  config: { type: "string", multiple: true },
  ...Object.fromEntries(
    [...FLAG_ROWS].map(([name, row]) => [
      name,
      { type: "string", multiple: row.flag?.repeatable === true },
    ]),
  ),
};

const SEE_HELP = "see locksmithd --help";

/**
 * Parses locksmithd's arguments (without the program name). Throws a
 * {@link UsageError} with one line for an unknown flag, a missing or empty
 * value, a value given to `--help`/`--version`, or a positional argument.
 * Values are not validated here: `resolveDaemonConfig` does that.
 */
export function parseDaemonArgs(args: readonly string[]): DaemonArgs {
  const { help, version, values } = walkFlags(args, {
    options: ARG_OPTIONS,
    seeHelp: SEE_HELP,
    known: (name) => ARG_OPTIONS[name] !== undefined,
    needsValue: (name) =>
      `--${name} needs a value, e.g. --${name} ${
        FLAG_ROWS.get(name)?.flag?.example ?? CONFIG_EXAMPLE
      }`,
  });
  const configFiles: string[] = [];
  const repeated = new Map<string, string[]>();
  const flags: Record<string, string> = {};
  for (const { name, value } of values) {
    const row = FLAG_ROWS.get(name);
    if (row === undefined) configFiles.push(value);
    else if (row.flag?.repeatable) {
      repeated.set(row.key, [...repeated.get(row.key) ?? [], value]);
    } else flags[row.key] = value;
  }
  for (const [key, values] of repeated) flags[key] = values.join(",");
  return {
    help,
    version,
    configFiles: configFiles.length > 0 ? configFiles : undefined,
    flags,
  };
}

/** The right-hand column of a key in `--help`. */
function keyHelp(row: DaemonKey): string {
  return keyHelpText(
    row,
    row.fallback === undefined ? "" : `. Fallback: ${row.fallback}`,
  );
}

function flagHelp(row: DaemonKey): string {
  return `same as ${row.key}${row.flag?.repeatable ? "; repeatable" : ""}`;
}

/** locksmithd's `--help` text. */
export const DAEMON_USAGE: string = `\
Usage: locksmithd [flags]
       locksmithd serve [flags]

Reboots this machine when update_engine says an update needs it, taking a slot
of the etcd reboot semaphore first (unless the strategy says otherwise) and
waiting for the reboot window, if one is set.

Commands:
  serve    serve the FleetLock protocol (Zincati) on the etcd semaphore; see
           locksmithd serve --help

Flags:
${
  helpColumns([
    [
      "--config FILE",
      "read FILE instead of the default config files; repeat for more files (a later file wins); each must exist",
    ],
    ...DAEMON_KEYS.flatMap((row): [string, string][] =>
      row.flag === undefined
        ? []
        : [[`--${row.flag.name} ${row.flag.value}`, flagHelp(row)]]
    ),
    ["-h, --help", "print this help and exit"],
    ["--version", "print the version and exit"],
  ])
}

Config files (KEY=value lines, # comments; missing files are skipped):
  ${DEFAULT_CONFIG_FILES.join("\n  ")}

Precedence: flag > environment variable > later file > earlier file > default.
An empty value means the default.

Config keys:
${helpColumns(DAEMON_KEYS.map((row) => [row.key, keyHelp(row)]))}
GROUP and SERVER belong to update_engine and are ignored.

Exit status: 0 ok, 1 runtime failure, 2 usage or configuration error.
`;

/**
 * locksmithd's synopsis, from the flags of the key table:
 * `locksmithd [--config FILE]... [--strategy NAME] ...`.
 */
export function daemonSynopsis(): string {
  const flags = DAEMON_KEYS.flatMap((row) =>
    row.flag === undefined ? [] : [
      `[--${row.flag.name} ${row.flag.value}]${
        row.flag.repeatable ? "..." : ""
      }`,
    ]
  );
  return ["locksmithd", "[--config FILE]...", ...flags].join(" ");
}
