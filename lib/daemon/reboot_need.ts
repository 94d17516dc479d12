/**
 * Combining reboot-needed sources: update_engine on the bus and a sentinel
 * file. Either one saying "reboot needed" is enough, so a host where
 * update_engine appears (or disappears) later is still served.
 *
 * @module
 */

import type { RebootNeed } from "../dbus/update_engine.ts";

/** A {@link RebootNeed} that is needed as soon as any of `sources` is. */
export function anyRebootNeed(sources: readonly RebootNeed[]): RebootNeed {
  return {
    name: sources.map((s) => s.name).join(" or "),
    async isNeeded(): Promise<boolean> {
      const answers = await Promise.allSettled(
        sources.map((s) => s.isNeeded()),
      );
      const needed = answers.some((a) => a.status === "fulfilled" && a.value);
      if (!needed && answers.every((a) => a.status === "rejected")) {
        throw (answers[0] as PromiseRejectedResult).reason;
      }
      return needed;
    },
    async waitUntilNeeded(signal: AbortSignal): Promise<boolean> {
      const done = new AbortController();
      const onAbort = () => done.abort();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        return await Promise.any(
          sources.map(async (s) => {
            if (await s.waitUntilNeeded(done.signal)) return true;
            throw new Error("stopped");
          }),
        ).catch(() => false);
      } finally {
        done.abort();
        signal.removeEventListener("abort", onAbort);
      }
    },
  };
}
