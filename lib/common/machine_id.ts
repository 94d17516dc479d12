/**
 * Holder ids: what makes one acceptable. (Reading this machine's id from
 * `/etc/machine-id` is `lib/host/machine_id_file.ts`.)
 *
 * @module
 */

import { quote, UsageError } from "./errors.ts";

/** Longest accepted holder id, in UTF-8 bytes. */
export const MAX_ID_BYTES = 256;

const encoder = new TextEncoder();

/**
 * Returns what is wrong with a holder id, or `undefined` when it is acceptable:
 * non-empty, no control characters, well-formed Unicode (no lone surrogate,
 * which has no UTF-8 form), at most {@link MAX_ID_BYTES} UTF-8 bytes.
 */
export function idDefect(id: unknown): string | undefined {
  if (typeof id !== "string") return `is not a string`;
  if (id.length === 0) return "is empty";
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(id)) {
    return "contains a control character";
  }
  if (!id.isWellFormed()) return "is not valid Unicode (a lone surrogate)";
  if (encoder.encode(id).length > MAX_ID_BYTES) {
    return `is longer than ${MAX_ID_BYTES} bytes`;
  }
  return undefined;
}

/** Throws a {@link UsageError} naming the id and its defect unless the id is acceptable. */
export function validateId(id: string, what = "id"): string {
  const defect = idDefect(id);
  if (defect !== undefined) {
    throw new UsageError(`${what} ${quote(id)} ${defect}`);
  }
  return id;
}
