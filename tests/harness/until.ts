/**
 * Waiting for an event in a test: polls `check` until it holds, and fails
 * naming what was awaited when it does not within `timeoutMs`.
 */

/** Resolves once `check` returns true; throws `timed out waiting for <what>` after `timeoutMs`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  pollMs = 20,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
