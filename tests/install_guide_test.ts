/**
 * docs/install.md, followed as written in a scratch root: see
 * tests/harness/scratch_root.ts for what stands in for what. Needs root (for
 * the mount and network namespaces), like the rest of the suite's servers.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "./harness/permissions.ts";

Deno.test("docs/install.md, followed in a scratch root from an empty host, installs units whose programs take a slot, ask logind to reboot and answer FleetLock through an etcd without its gateway", async () => {
  assert.equal(
    Deno.uid(),
    0,
    "this test needs root: it runs the guide in mount and network namespaces (unshare)",
  );
  const scratch = await Deno.makeTempDir({ prefix: "locksmith-scratch-" });
  try {
    const out = await new Deno.Command("unshare", {
      args: [
        "--mount",
        "--net",
        "--propagation",
        "private",
        Deno.execPath(),
        "run",
        "-A",
        `${REPO_ROOT}tests/harness/scratch_root.ts`,
        scratch,
        REPO_ROOT.replace(/\/$/, ""),
      ],
      env: {
        NO_COLOR: "1",
        ...(Deno.env.get("DENO_DIR")
          ? { DENO_DIR: Deno.env.get("DENO_DIR")! }
          : {}),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const d = new TextDecoder();
    const text = d.decode(out.stdout) + d.decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /^\[scratch\] PASS$/m, text);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});
