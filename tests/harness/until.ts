/**
 * Waiting for an event in a test: polls `check` until it holds, and fails
 * naming what was awaited when it does not within `timeoutMs`.
 */

/**
 * Resolves once `check` returns true; throws `timed out waiting for <what>`
 * after `timeoutMs`. A function `what` is called only then, so the message
 * can tell what was seen meanwhile (e.g. a daemon's log).
 */
export async function until(
  what: string | (() => string),
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  pollMs = 20,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) {
      const named = typeof what === "string" ? what : what();
      throw new Error(`timed out waiting for ${named}`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
