/**
 * Whether a guarded write that went out more than once landed: a hedged or
 * re-sent copy may commit first, so the copy that answers fails its guard on
 * the caller's own write, and by then other writers may have changed the key
 * again. The key's history says it exactly: the write of version `v + 1`
 * after the guard's version `v` was ours if it holds exactly our bytes.
 *
 * @module
 */

import { EtcdUnavailableError, oneLine } from "../../common/errors.ts";
import type { EtcdPort } from "../client/port.ts";
import { type StoredDocument, storedFrom } from "./stored_document.ts";

/** The write whose fate is asked: its text, and the key's version it makes. */
export interface SentWrite {
  /** The text written. */
  readonly raw: string;
  /** The key's version after the write (the guard's version plus one). */
  readonly version: number;
}

/** Where to look: the key, the guard's revision, and what the failed guard read. */
export interface WriteTrace {
  /** The key written. */
  readonly key: Uint8Array;
  /** The key's text, for messages. */
  readonly name: string;
  /** The `mod_revision` the write was guarded on (the key then had version `written.version - 1`). */
  readonly guardRevision: number;
  /** The key as the failed guard read it. */
  readonly current: StoredDocument;
  /** The operation's deadline (epoch ms). */
  readonly deadline: number;
}

/**
 * The revision of `written` if it landed, `undefined` if another write took
 * its version. Reads the key's history only when later writes hid it (a
 * binary search over historic reads, a few reads at most). Throws
 * `EtcdUnavailableError` (the outcome is unknown) when the history cannot
 * tell (compacted away).
 */
export async function ownWriteRevision(
  port: EtcdPort,
  written: SentWrite,
  trace: WriteTrace,
): Promise<number | undefined> {
  const { current } = trace;
  if (current.version <= written.version) {
    return current.version === written.version && current.raw === written.raw
      ? current.revision
      : undefined;
  }
  // Invariant: the key had a version below `written.version` at `low` and
  // above it at `high`; one revision writes a key once, so they never meet.
  let low = trace.guardRevision;
  let high = current.revision;
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2);
    const seen = await historicRead(port, trace, middle);
    if (seen.version === written.version) {
      return seen.raw === written.raw ? seen.revision : undefined;
    }
    if (seen.version > written.version) high = seen.revision;
    else low = middle;
  }
  throw unknownOutcome(trace, "its version is missing from the key's history");
}

async function historicRead(
  port: EtcdPort,
  trace: WriteTrace,
  revision: number,
): Promise<StoredDocument> {
  try {
    const res = await port.range({ key: trace.key, revision }, {
      deadline: trace.deadline,
    });
    // Absent (version 0): before the key's first write.
    return storedFrom(res.kvs[0]);
  } catch (error) {
    throw unknownOutcome(trace, oneLine(error), error);
  }
}

function unknownOutcome(
  trace: WriteTrace,
  why: string,
  cause?: unknown,
): EtcdUnavailableError {
  return new EtcdUnavailableError(
    `the outcome of a write to ${trace.name} is unknown (it went out twice and later writes hide it): ${why}`,
    cause === undefined ? undefined : { cause },
  );
}
