/**
 * The shape of a configuration key table: one row per key, from which a
 * program's resolution, its command-line flags, its `--help` and the
 * generated tables of docs/configuration.md (`deno task docs`) follow.
 * locksmithd's keys (`lib/config/config_keys.ts`) and the options of
 * `locksmithd serve` (`lib/serve/serve_options.ts`) are tables of this kind.
 * Pure: types and small helpers only.
 *
 * @module
 */

import { plainText } from "./help_layout.ts";

/** A command-line flag that sets a key (and wins over files and environment). */
export interface KeyFlag {
  /** The flag without its dashes: `strategy` for `--strategy`. */
  readonly name: string;
  /** Placeholder of the value in `--help`, e.g. `NAME`. */
  readonly value: string;
  /** A typical value, for `--help` and "needs a value, e.g." messages. */
  readonly example: string;
  /** The flag may be repeated; the values are joined with `,`. */
  readonly repeatable?: boolean | undefined;
}

/** What every row of a key table has. */
export interface KeyRow {
  /** The key: the environment variable (and, for locksmithd, the `update.conf` key). */
  readonly key: string;
  /** The command-line flag that sets this key, if any. */
  readonly flag?: KeyFlag | undefined;
  /**
   * The default as shown in `--help` and the docs (Markdown: a literal
   * value in backticks, e.g. "`5s`", is checked by the tests to parse to
   * the row's default); absent when there is nothing to show.
   */
  readonly shownDefault?: string | undefined;
  /** What the key does, one line of Markdown for `--help` (backticks removed) and the docs. */
  readonly description: string;
  /**
   * Its value is never shown in a message (a password, tokens); locksmithd
   * also takes a secret value as it is, spaces kept.
   */
  readonly secret?: boolean | undefined;
}

/** `--name VALUE`, the flag of a row as the help and the docs show it. */
export function flagText(flag: KeyFlag): string {
  return `--${flag.name} ${flag.value}`;
}

/**
 * The right-hand column of a key in `--help`: its description, then
 * `extra` (e.g. `. Fallback: X`), then its default, without Markdown.
 */
export function keyHelpText(row: KeyRow, extra = ""): string {
  const shown = row.shownDefault === undefined
    ? ""
    : `. Default: ${row.shownDefault}`;
  return plainText(`${row.description}${extra}${shown}`);
}
