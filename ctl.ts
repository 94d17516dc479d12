/**
 * locksmithctl: inspect and control the reboot semaphore of a locksmith fleet.
 *
 * Run it with the narrow permissions of the `ctl` set in `deno.json`:
 * `deno run -q -P=ctl ctl.ts status` (or `deno task ctl status`).
 *
 * @module
 */

import { runCtl } from "./lib/ctl/ctl_main.ts";

export { runCtl };

if (import.meta.main) {
  Deno.exit(await runCtl(Deno.args));
}
