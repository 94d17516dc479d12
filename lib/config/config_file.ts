/**
 * locksmithd's config files: reading `update.conf` files and parsing their
 * `KEY=value` lines. What the keys mean is not this module's business (see
 * `config_keys.ts`).
 *
 * @module
 */

import { parse as parseDotenv } from "npm:dotenv@17.2.3";
import { quote, UsageError } from "../common/errors.ts";

/** Config files read when no `--config` is given, in order; a later file wins. */
export const DEFAULT_CONFIG_FILES: readonly string[] = Object.freeze([
  "/usr/share/coreos/update.conf",
  "/etc/coreos/update.conf",
  "/usr/share/flatcar/update.conf",
  "/etc/flatcar/update.conf",
]);

/** One config file's text, already read. */
export interface ConfigSource {
  /** Path of the file, used in messages (`/etc/coreos/update.conf:3`). */
  readonly path: string;
  /** The file's whole text. */
  readonly text: string;
}

/** A `KEY=value` assignment found in a config file. */
export interface ConfigLine {
  /** The key, e.g. `REBOOT_STRATEGY`. */
  readonly key: string;
  /** The value as dotenv parses it (unquoted, trimmed, inline comment removed). */
  readonly value: string;
  /** 1-based line number. */
  readonly line: number;
}

const ASSIGNMENT_RE = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/;
/** A blank line, a `# comment`, or what may follow a closing quote. */
const BLANK_OR_COMMENT_RE = /^\s*(?:#.*)?$/;

/** The line for an error message: quoted, shortened, hidden if it may hold a password. */
function excerpt(line: string): string {
  if (/passw/i.test(line)) return "(not shown: it may hold a password)";
  const short = line.length > 80 ? `${line.slice(0, 77)}...` : line;
  return quote(short);
}

/** Checks that a quoted value is closed and followed by nothing but a comment. */
function quoteDefect(rawValue: string): string | undefined {
  const value = rawValue.trimStart();
  const quote = value[0];
  if (quote !== '"' && quote !== "'" && quote !== "`") return undefined;
  let i = 1;
  while (i < value.length && value[i] !== quote) {
    i += value[i] === "\\" ? 2 : 1;
  }
  if (i >= value.length) return `has an unterminated ${quote} quote`;
  if (!BLANK_OR_COMMENT_RE.test(value.slice(i + 1))) {
    return "has text after its closing quote; quote the whole value";
  }
  return undefined;
}

/**
 * Parses the text of an `update.conf` file into its assignments, in order.
 *
 * Each line is blank, a `#` comment, or `[export ]KEY=value` with KEY made of
 * letters, digits and `_` (not starting with a digit). Values are read by
 * dotenv: they may be unquoted and contain spaces (`KEY=Thu 04:00`), or be
 * quoted with `"`, `'` or `` ` ``; an unquoted ` #` starts a comment. A quoted
 * value must end on its own line. CRLF line endings and a leading byte-order
 * mark are accepted.
 *
 * Throws a {@link UsageError} naming `path` and the line number of the first
 * malformed line, e.g. `update.conf:7: line is not KEY=value or a # comment
 * (...): "oops"`.
 */
export function parseConfigText(path: string, text: string): ConfigLine[] {
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\r|\n/);
  const result: ConfigLine[] = [];
  lines.forEach((line, index) => {
    const where = `${path}:${index + 1}`;
    if (BLANK_OR_COMMENT_RE.test(line)) return;
    const match = ASSIGNMENT_RE.exec(line);
    if (match === null) {
      throw new UsageError(
        `${where}: line is not KEY=value or a # comment (KEY is letters, digits and _, optionally after "export "): ${
          excerpt(line)
        }`,
      );
    }
    const key = match[1] as string;
    const defect = quoteDefect(match[2] as string);
    if (defect !== undefined) {
      throw new UsageError(`${where}: value of ${key} ${defect}`);
    }
    const value = parseDotenv(line)[key];
    if (value === undefined) {
      throw new UsageError(
        `${where}: line is not KEY=value: ${excerpt(line)}`,
      );
    }
    result.push({ key, value, line: index + 1 });
  });
  return result;
}

/**
 * Reads config files in order. Without `paths`, reads the
 * {@link DEFAULT_CONFIG_FILES} and skips the missing ones; a missing file
 * named in `paths`, or any file that cannot be read (a directory, no
 * permission) or is not UTF-8, is a {@link UsageError} naming the file.
 */
export async function readConfigSources(
  paths?: readonly string[] | undefined,
): Promise<ConfigSource[]> {
  const explicit = paths !== undefined;
  const sources: ConfigSource[] = [];
  for (const path of paths ?? DEFAULT_CONFIG_FILES) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound && !explicit) continue;
      const reason = (error as Error).message.replace(/: \w+ '.*'$/, "");
      throw new UsageError(`cannot read config file ${path}: ${reason}`);
    }
    sources.push({ path, text: decodeConfig(path, bytes) });
  }
  return sources;
}

/**
 * Decodes a config file as UTF-8. Invalid bytes are an error naming the
 * line, not U+FFFD: a lossy decode would silently change a value (a group
 * name, a machine id).
 */
export function decodeConfig(path: string, bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let line = 1;
    let start = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i < bytes.length && bytes[i] !== 0x0a) continue;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(
          bytes.subarray(start, i),
        );
      } catch {
        break;
      }
      line++;
      start = i + 1;
    }
    throw new UsageError(
      `${path}:${line}: line is not valid UTF-8; save the file as UTF-8`,
    );
  }
}
