/**
 * Reading a FleetLock request's body within a size and a time limit.
 *
 * @module
 */

import { formatDuration } from "../common/duration.ts";
import { FleetLockError } from "../fleetlock/protocol/protocol.ts";

/**
 * Reads a body of at most `limit` bytes within `timeoutMs`. Throws
 * `payload_too_large` (a declared or actual size past the limit, before
 * reading further), `request_timeout`, or `bad_request` when the body
 * stream fails (the client went away).
 */
export async function readBody(
  request: Request,
  limit: number,
  timeoutMs: number,
): Promise<Uint8Array> {
  const tooLarge = () =>
    new FleetLockError(
      "payload_too_large",
      `the body is larger than ${limit} bytes`,
    );
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw tooLarge();
  if (request.body === null) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    while (true) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === "timeout") {
        throw new FleetLockError(
          "request_timeout",
          `the body did not arrive within ${formatDuration(timeoutMs)}`,
        );
      }
      if (next.done) break;
      size += next.value.length;
      if (size > limit) throw tooLarge();
      chunks.push(next.value);
    }
  } catch (error) {
    if (error instanceof FleetLockError) throw error;
    throw new FleetLockError("bad_request", "the body could not be read");
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}
