/**
 * A misspelled LOCKSMITHCTL_* or LOCKSMITHD_* variable is warned about with
 * the nearest known name, when the environment may be listed
 * (`--allow-env`), the same as an unknown key in update.conf.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "./harness/permissions.ts";

async function run(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "--no-prompt", ...args],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      NO_COLOR: "1",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: r.code,
    stdout: d.decode(r.stdout),
    stderr: d.decode(r.stderr),
  };
}

Deno.test("locksmithctl warns about LOCKSMITHCTL_ENDPIONT, naming LOCKSMITHCTL_ENDPOINT", async () => {
  const r = await run(["--allow-env", "ctl.ts", "--version"], {
    LOCKSMITHCTL_ENDPIONT: "http://10.0.0.1:2379",
  });
  assert.equal(r.code, 0);
  assert.equal(
    r.stderr,
    "locksmithctl: warning: unknown variable LOCKSMITHCTL_ENDPIONT is ignored (did you mean LOCKSMITHCTL_ENDPOINT?)\n",
  );
  // Without --allow-env the names cannot be listed: nothing is said.
  const quiet = await run(["ctl.ts", "--version"], {
    LOCKSMITHCTL_ENDPIONT: "http://10.0.0.1:2379",
  });
  assert.equal(quiet.stderr, "");
});

Deno.test("locksmithd warns about LOCKSMITHD_ENDPIONT, naming LOCKSMITHD_ENDPOINT", async () => {
  const r = await run(["--allow-env", "--allow-read", "daemon.ts"], {
    REBOOT_STRATEGY: "off",
    LOCKSMITHD_ENDPIONT: "http://10.0.0.1:2379",
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /WARN {2}unknown key LOCKSMITHD_ENDPIONT \(from environment\) is ignored \(did you mean LOCKSMITHD_ENDPOINT\?\)\n/,
  );
});
