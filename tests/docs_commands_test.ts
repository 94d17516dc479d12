/**
 * Every shell command shown in README.md and docs/*.md works when pasted,
 * in order, after the quick start: tests/harness/docs_commands.ts runs them
 * in a scratch root (see there for what runs, what is not run and why).
 * Needs root (mount and network namespaces).
 */

import assert from "node:assert/strict";
import {
  docCommands,
  isServer,
  unlabeledCommands,
} from "./harness/docs_commands.ts";
import { REPO_ROOT } from "./harness/permissions.ts";

Deno.test("docCommands() takes the sh blocks' commands, joins continued lines, and leaves out the quick start and marked blocks", () => {
  const md = [
    "# x",
    "## Quick start",
    "```sh",
    "bash scripts/dev.sh test",
    "```",
    "## Running it",
    "```sh",
    "deno run --allow-net ctl.ts status   # a comment",
    "deno run --allow-net \\",
    "  daemon.ts",
    "```",
    "```",
    "locksmithctl [flags] COMMAND",
    "```",
    "<!-- not run: needs a denort -->",
    "",
    "  ```sh",
    "  deno compile daemon.ts",
    "  ```",
    "<!-- run by the install test -->",
    "```bash",
    "useradd locksmith",
    "```",
    "```shell",
    "cat > /x <<'EOF'",
    "a",
    "EOF",
    "```",
  ].join("\n");
  assert.deepEqual(docCommands("R.md", md), [
    {
      file: "R.md",
      line: 8,
      command: "deno run --allow-net ctl.ts status   # a comment",
    },
    { file: "R.md", line: 9, command: "deno run --allow-net  daemon.ts" },
    { file: "R.md", line: 25, command: "cat > /x <<'EOF'\na\nEOF" },
  ]);
  assert.ok(isServer("deno run --allow-net daemon.ts"));
  assert.ok(isServer("deno run -A daemon.ts serve --listen 127.0.0.1:0"));
  assert.ok(!isServer("deno run daemon.ts --help"));
  assert.ok(!isServer("deno compile --output dist/locksmithd daemon.ts"));
  assert.ok(!isServer("locksmithctl status"));
});

Deno.test("unlabeledCommands() finds a command in a block without a language, not a synopsis or a transcript", () => {
  const md = [
    "```",
    "locksmithctl pause     # Paused",
    "```",
    "```",
    "locksmithctl [flags] COMMAND [args]",
    "```",
    "```",
    "$ curl -s 127.0.0.1:9101/metrics",
    "locksmithd_slot_held 0",
    "```",
    "```sh",
    "deno task ctl --help",
    "```",
    "```text",
    "DENORT_BIN=/x deno task compile:ctl",
    "```",
  ].join("\n");
  assert.deepEqual(unlabeledCommands("D.md", md), [
    "D.md:1: locksmithctl pause     # Paused",
    "D.md:14: DENORT_BIN=/x deno task compile:ctl",
  ]);
});

Deno.test("every shell command in README.md and docs/*.md runs as pasted, in order, after the quick start", async () => {
  assert.equal(
    Deno.uid(),
    0,
    "this test needs root: it runs the commands in mount and network namespaces (unshare)",
  );
  const scratch = await Deno.makeTempDir({ prefix: "locksmith-docs-" });
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
        `${REPO_ROOT}tests/harness/docs_commands.ts`,
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
    assert.match(text, /^\[docs\] PASS$/m, text);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});
