/**
 * One deadline for a whole operation (a read, or an update with its
 * retries): the operation gets the time by which every request must be
 * answered, and the caller gets an answer by then at the latest.
 *
 * @module
 */

import { formatDuration } from "../../common/duration.ts";
import { EtcdUnavailableError } from "../../common/errors.ts";

/**
 * Runs `operation` with a deadline `timeoutMs` from now, and rejects with
 * an {@link EtcdUnavailableError} naming `endpoints` when it has not
 * answered by then (a late answer is dropped: the requests themselves
 * carry the deadline, so nothing is sent after it).
 */
export async function withDeadline<T>(
  timeoutMs: number,
  endpoints: readonly string[],
  operation: (deadline: number) => Promise<T>,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new EtcdUnavailableError(
            `etcd at ${endpoints.join(",")} did not answer within ${
              formatDuration(timeoutMs)
            }`,
          ),
        ),
      timeoutMs,
    );
  });
  const running = operation(Date.now() + timeoutMs);
  running.catch(() => {}); // a late failure after the deadline answered is expected
  try {
    return await Promise.race([running, expired]);
  } finally {
    clearTimeout(timer);
  }
}
