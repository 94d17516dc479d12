/**
 * Parsers of configuration values, shared by locksmithd's config keys and
 * locksmithctl's flags: enums, durations with limits, whole numbers, paths,
 * commands, URLs and `HOST:PORT` addresses.
 *
 * A parser takes a value that is not empty (trimmed, unless the key is a
 * secret) and returns it typed, or throws a {@link ValueDefect} whose text
 * says what is wrong and what is accepted, phrased to follow the value:
 * `is not one of etcd-lock, reboot`. The caller names the key, the value and
 * where it came from. Pure: no I/O.
 *
 * @module
 */

import { formatDuration, MAX_DURATION_MS, parseDuration } from "./duration.ts";
import { idDefect } from "./machine_id.ts";

/**
 * What is wrong with a configuration value, thrown by a {@link ValueParser}.
 * Not a complete message: `defect` follows the key and value in the
 * caller's message, e.g. `REBOOT_STRATEGY="fast" (from ...) is not one of ...`.
 */
export class ValueDefect extends Error {
  /** What is wrong and what is accepted, e.g. `is not an absolute path`. */
  readonly defect: string;
  /**
   * Creates a `ValueDefect`.
   *
   * @param defect what is wrong and what is accepted, starting with a verb
   */
  constructor(defect: string) {
    super(defect);
    this.name = "ValueDefect";
    this.defect = defect;
  }
}

/** Turns a non-empty text into a typed value, or throws a {@link ValueDefect}. */
export type ValueParser<T> = (text: string) => T;

// deno-lint-ignore no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

const DURATION_UNITS = "units ms, s, m, h, d";
const DAY_MS = 86_400_000;

/** Any text, as given: a file name, a user name, a password. */
export function anyText(): ValueParser<string> {
  return (text) => text;
}

/** One of `choices`, exactly (case matters): `is not one of a, b, c`. */
export function oneOf<T extends string>(
  choices: readonly T[],
): ValueParser<T> {
  return (text) => {
    if ((choices as readonly string[]).includes(text)) return text as T;
    throw new ValueDefect(`is not one of ${choices.join(", ")}`);
  };
}

/** Limits and wording of a {@link duration} parser. */
export interface DurationOptions {
  /** A typical value for messages, e.g. `5s`. */
  readonly example: string;
  /** `0` is refused (as is any zero duration): "is not a duration longer than 0". */
  readonly positive?: boolean | undefined;
  /** What `0` means, shown in the message, e.g. `disables the delay`. */
  readonly zeroMeans?: string | undefined;
  /** Shortest accepted duration in ms (inclusive), e.g. for a slot TTL. */
  readonly minMs?: number | undefined;
  /**
   * Longest accepted duration in ms (inclusive); at most and by default
   * `MAX_DURATION_MS` (24d), beyond which a timer would fire at once.
   */
  readonly maxMs?: number | undefined;
}

/** Formats a limit for messages: whole days as `24d`, anything else as `1h30m`, `90s`, `500ms`. */
export function limitText(ms: number): string {
  return ms > 0 && ms % DAY_MS === 0 ? `${ms / DAY_MS}d` : formatDuration(ms);
}

/**
 * A Go-style duration (`500ms`, `5s`, `1h30m`, `2d`; a bare `0`), in
 * milliseconds, within limits:
 * `is not a duration [longer than 0, ]like 5s (units ms, s, m, h, d[; 0 ...])`,
 * `is shorter than 1m`, `is longer than 24d`.
 */
export function duration(options: DurationOptions): ValueParser<number> {
  const { example, positive = false, zeroMeans, minMs } = options;
  const maxMs = Math.min(options.maxMs ?? MAX_DURATION_MS, MAX_DURATION_MS);
  const notDuration = `is not a duration${
    positive ? " longer than 0," : ""
  } like ${example} (${DURATION_UNITS}${
    zeroMeans === undefined ? "" : `; 0 ${zeroMeans}`
  })`;
  return (text) => {
    const ms = parseDuration(text);
    if (ms === undefined || (positive && ms <= 0)) {
      throw new ValueDefect(notDuration);
    }
    if (minMs !== undefined && ms < minMs) {
      throw new ValueDefect(`is shorter than ${limitText(minMs)}`);
    }
    if (ms > maxMs) throw new ValueDefect(`is longer than ${limitText(maxMs)}`);
    return ms;
  };
}

/** A whole number from `min` to `max` (decimal digits only): `is not a whole number from 0 to 10`. */
export function wholeNumber(min: number, max: number): ValueParser<number> {
  return (text) => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) {
      throw new ValueDefect(`is not a whole number from ${min} to ${max}`);
    }
    return n;
  };
}

/** An absolute file path without control characters. */
export function absolutePath(): ValueParser<string> {
  return (text) => {
    if (!text.startsWith("/")) throw new ValueDefect("is not an absolute path");
    if (CONTROL_RE.test(text)) {
      throw new ValueDefect("contains a control character");
    }
    return text;
  };
}

/** A holder id or group name: not empty, no control characters, at most 256 UTF-8 bytes. */
export function holderId(): ValueParser<string> {
  return (text) => {
    const defect = idDefect(text);
    if (defect !== undefined) throw new ValueDefect(defect);
    return text;
  };
}

/**
 * A command line, as one string (run by the caller, e.g. with `sh -c`): any
 * text on one line, without control characters (a tab is refused too).
 */
export function command(): ValueParser<string> {
  return (text) => {
    if (CONTROL_RE.test(text)) {
      throw new ValueDefect(
        "contains a control character; give the command on one line",
      );
    }
    return text;
  };
}

/** Options of a {@link url} parser. */
export interface UrlOptions {
  /** Accepted schemes with their colon, e.g. `["http:", "https:"]`. */
  readonly protocols: readonly string[];
  /** A typical value for messages, e.g. `https://fleetlock.example.com`. */
  readonly example: string;
}

/**
 * An absolute URL with a host and one of the given schemes, as written
 * (`is not a URL like https://...`). Control characters are refused rather
 * than silently dropped, as the URL parser would.
 */
export function url(options: UrlOptions): ValueParser<string> {
  const defect = `is not a URL like ${options.example} (scheme ${
    options.protocols.map((p) => p.replace(/:$/, "")).join(" or ")
  })`;
  return (text) => {
    let parsed: URL | undefined;
    try {
      parsed = CONTROL_RE.test(text) ? undefined : new URL(text);
    } catch {
      parsed = undefined;
    }
    if (
      parsed === undefined || !options.protocols.includes(parsed.protocol) ||
      parsed.hostname === ""
    ) {
      throw new ValueDefect(defect);
    }
    return text;
  };
}

/** A listening or connecting address: host name or IP, and port. */
export interface HostPort {
  /** Host name or IP address; an IPv6 address without its brackets. */
  readonly hostname: string;
  /** Port, 0 to 65535 (0: any free port, where a listener allows it). */
  readonly port: number;
}

const HOST_PORT_RE = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/;

/**
 * Splits `HOST:PORT` or `[IPv6]:PORT` (brackets dropped); `:PORT` only
 * when `emptyHost` says what an empty host means (e.g. `0.0.0.0`, every
 * interface). `undefined` when the text is not one; the port is any of
 * 0 to 99999, for the caller to check against its own range. Pure.
 */
export function splitHostPort(
  text: string,
  emptyHost?: string,
): HostPort | undefined {
  const match = HOST_PORT_RE.exec(text);
  if (match === null) return undefined;
  let hostname = match[1] ?? match[2] ?? "";
  if (hostname === "") {
    if (emptyHost === undefined) return undefined;
    hostname = emptyHost;
  }
  try {
    new URL(`http://${match[1] === undefined ? hostname : `[${hostname}]`}/`);
  } catch {
    return undefined;
  }
  return { hostname, port: Number(match[3]) };
}

/** An error that says what is wrong with a value without naming it again, as a `defect`. */
interface HasDefect {
  /** What is wrong and what is accepted, e.g. `is not HOST:PORT like ...`. */
  readonly defect: string;
}

function hasDefect(error: unknown): error is HasDefect {
  return error instanceof Error &&
    typeof (error as Partial<HasDefect>).defect === "string";
}

/**
 * A parser from a function that takes the key as well as the text and
 * names the key in its own errors (e.g. a command parser that must say
 * which key a command came from): its errors' `defect` becomes a
 * {@link ValueDefect}, so that the caller names the key, the value and
 * where it came from, as for every other key. Errors without a `defect`
 * pass through.
 *
 * @param key the key passed to `parse`
 * @param parse the keyed parser, e.g. `parseCommand`
 */
export function keyed<T>(
  key: string,
  parse: (key: string, text: string) => T,
): ValueParser<T> {
  return (text) => {
    try {
      return parse(key, text);
    } catch (error) {
      if (error instanceof ValueDefect || !hasDefect(error)) throw error;
      throw new ValueDefect(error.defect);
    }
  };
}
