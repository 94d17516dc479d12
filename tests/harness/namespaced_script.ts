/**
 * Runs one of the harness scripts that play a guide in a scratch root
 * (tests/harness/scratch_root.ts, tests/harness/docs_commands.ts) under
 * `unshare --mount --net --propagation private`, and checks that it ends in
 * its `[tag] PASS` line. Needs root.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "./permissions.ts";

/**
 * Runs `tests/harness/<script>` with a fresh scratch directory (named after
 * `prefix`, removed afterwards) and the repository root as its arguments, in
 * its own mount and network namespaces; asserts that it exits 0 and prints
 * `[tag] PASS`. `what` names what runs in the namespaces, for the message
 * when the test is not run as root.
 */
export async function runNamespacedScript(
  script: string,
  options: { prefix: string; tag: string; what: string },
): Promise<void> {
  assert.equal(
    Deno.uid(),
    0,
    `this test needs root: it runs ${options.what} in mount and network namespaces (unshare)`,
  );
  const scratch = await Deno.makeTempDir({ prefix: options.prefix });
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
        `${REPO_ROOT}tests/harness/${script}`,
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
    assert.match(text, new RegExp(`^\\[${options.tag}\\] PASS$`, "m"), text);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}
