/**
 * Something opened for one piece of work and closed after it.
 *
 * @module
 */

/** Runs `body` on what `opened` resolves to, and closes it afterwards, whatever `body` did. */
export async function withClosing<R extends { close(): Promise<void> }, T>(
  opened: Promise<R>,
  body: (resource: R) => Promise<T>,
): Promise<T> {
  const resource = await opened;
  try {
    return await body(resource);
  } finally {
    await resource.close();
  }
}
