/**
 * docs/install.md, followed as written in a scratch root: see
 * tests/harness/scratch_root.ts for what stands in for what. Needs root (for
 * the mount and network namespaces), like the rest of the suite's servers.
 */

import { runNamespacedScript } from "./harness/namespaced_script.ts";

Deno.test("docs/install.md, followed in a scratch root from an empty host, installs units whose programs take a slot, ask logind to reboot and answer FleetLock through an etcd without its gateway", async () => {
  await runNamespacedScript("scratch_root.ts", {
    prefix: "locksmith-scratch-",
    tag: "scratch",
    what: "the guide",
  });
});
