/**
 * locksmithd: the reboot daemon (being built).
 *
 * @module
 */

/** Runs locksmithd; returns its exit status. */
export function runDaemon(_args: readonly string[]): Promise<number> {
  return Promise.resolve(1);
}

if (import.meta.main) {
  Deno.exit(await runDaemon(Deno.args));
}
