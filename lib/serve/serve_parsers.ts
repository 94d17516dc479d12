/**
 * The parsers of `locksmithd serve`'s options (rows of `SERVE_OPTIONS` in
 * `options.ts`): a listen address, group lists, slot counts and tokens per
 * group. Each takes a trimmed, non-empty value and returns it typed, or
 * throws a `ValueDefect` that follows the key and value in the caller's
 * message. Pure.
 *
 * @module
 */

import { quote } from "../common/errors.ts";
import {
  splitHostPort,
  ValueDefect,
  type ValueParser,
} from "../common/value_parsers.ts";
import { MAX_SLOTS } from "../semaphore/document.ts";
import { groupDefect, TOKEN_PATTERN } from "../fleetlock/protocol/protocol.ts";
import { ANY_GROUP } from "./auth.ts";

/** Default of `--listen`. */
export const DEFAULT_LISTEN = "127.0.0.1:8080";

/** An address to listen on. */
export interface ListenOn {
  /** Host name or IP address (IPv6 without brackets). */
  readonly hostname: string;
  /** Port; 0 picks a free one. */
  readonly port: number;
}

/** Parses `HOST:PORT` or `[IPv6]:PORT`; returns a defect message or the address. */
export function parseListen(text: string): ListenOn | string {
  const address = splitHostPort(text);
  if (address === undefined) {
    return `is not HOST:PORT, e.g. ${DEFAULT_LISTEN}, 0.0.0.0:8080 or [::1]:8080`;
  }
  if (address.port > 65535) {
    return `has port ${address.port}, outside 0..65535`;
  }
  return address;
}

/** {@link parseListen} as a parser. */
export function listenAddress(): ValueParser<ListenOn> {
  return (text) => {
    const address = parseListen(text);
    if (typeof address === "string") throw new ValueDefect(address);
    return address;
  };
}

/** Comma-separated items, trimmed, empty ones left out. */
function items(text: string): string[] {
  return text.split(",").map((item) => item.trim()).filter((item) =>
    item !== ""
  );
}

/** Throws the defect of a group name (`*` allowed when `anyGroup`). */
function checkGroup(group: string, anyGroup: boolean): void {
  if (anyGroup && group === ANY_GROUP) return;
  const defect = groupDefect(group);
  if (defect !== undefined) {
    throw new ValueDefect(`has a group that ${defect}`);
  }
}

/** `G1,G2`: distinct valid group names. */
export function groupList(): ValueParser<string[]> {
  return (text) => {
    const groups = [...new Set(items(text))];
    for (const group of groups) checkGroup(group, false);
    return groups;
  };
}

/** Splits `GROUP=VALUE,GROUP=VALUE`; checks the group names (and `*` when allowed). */
function pairs(
  text: string,
  anyGroup: boolean,
): [group: string, value: string][] {
  return items(text).map((item) => {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new ValueDefect(`has an item that is not GROUP=VALUE`);
    const group = item.slice(0, eq).trim();
    checkGroup(group, anyGroup);
    return [group, item.slice(eq + 1).trim()];
  });
}

/** `GROUP=N,...`: a slot count from 0 to {@link MAX_SLOTS} per group, each group once. */
export function slotCounts(): ValueParser<Map<string, number>> {
  return (text) => {
    const slots = new Map<string, number>();
    for (const [group, count] of pairs(text, false)) {
      const n = /^\d{1,7}$/.test(count) ? Number(count) : NaN;
      if (!(n <= MAX_SLOTS)) {
        throw new ValueDefect(
          `gives group ${group} ${
            quote(count, 20)
          } slots; expected an integer from 0 to ${MAX_SLOTS}`,
        );
      }
      if (slots.has(group)) {
        throw new ValueDefect(`gives group ${group} slots twice`);
      }
      slots.set(group, n);
    }
    return slots;
  };
}

/** `GROUP=TOKEN,...` (`*` for every group): RFC 6750 tokens, several per group. */
export function groupTokens(): ValueParser<Map<string, string[]>> {
  return (text) => {
    const tokens = new Map<string, string[]>();
    for (const [group, token] of pairs(text, true)) {
      if (!TOKEN_PATTERN.test(token)) {
        throw new ValueDefect(
          `has a token for group ${group} that is empty or not made of A-Z a-z 0-9 - . _ ~ + / (then =)`,
        );
      }
      tokens.set(group, [...(tokens.get(group) ?? []), token]);
    }
    return tokens;
  };
}
