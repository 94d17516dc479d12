/**
 * scripts/compile.sh, which the compile:* tasks run: it refuses a DENORT_BIN
 * that is not a denort of this Deno version before building (the deno CLI
 * itself crashes deno compile with a stack overflow), and removes the
 * temporary output of a failed build.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "./harness/permissions.ts";

async function compile(
  env: Record<string, string>,
  output: string,
): Promise<{ code: number; stderr: string }> {
  const r = await new Deno.Command("bash", {
    args: [
      `${REPO_ROOT}scripts/compile.sh`,
      "-P=ctl",
      "--output",
      output,
      "ctl.ts",
    ],
    cwd: REPO_ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, stderr: new TextDecoder().decode(r.stderr) };
}

const DENO_DIR = Deno.execPath().replace(/\/[^/]+$/, "");
const PATH = `${DENO_DIR}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
const VERSION = Deno.version.deno;

Deno.test("compile: DENORT_BIN pointing at the deno CLI, or at another program, is one line before anything is built", async () => {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-compile-" });
  try {
    const cli = await compile(
      { PATH, DENORT_BIN: Deno.execPath() },
      `${dir}/locksmithctl`,
    );
    assert.equal(cli.code, 2);
    assert.equal(
      cli.stderr,
      `compile: DENORT_BIN=${Deno.execPath()} is the deno CLI, not its denort runtime; use denort-x86_64-unknown-linux-gnu.zip of Deno ${VERSION} (https://dl.deno.land/release/v${VERSION}/)\n`,
    );
    await Deno.copyFile("/bin/true", `${dir}/denort`);
    const other = await compile(
      { PATH, DENORT_BIN: `${dir}/denort` },
      `${dir}/locksmithctl`,
    );
    assert.equal(other.code, 2);
    assert.match(other.stderr, /is not a denort of Deno /);
    const missing = await compile(
      { PATH, DENORT_BIN: `${dir}/nope` },
      `${dir}/locksmithctl`,
    );
    assert.match(missing.stderr, /: no such file; unzip denort-/);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(left, ["denort"], "nothing built");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compile: a failed build leaves no temporary output behind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-compile-" });
  try {
    // A deno whose compile writes its temporary file, then fails (as deno
    // compile does when its runtime crashes or cannot be downloaded).
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(
      `${dir}/bin/deno`,
      `#!/bin/sh
if [ "$1" = "--version" ]; then echo "deno ${VERSION} (stable)"; exit 0; fi
while [ $# -gt 0 ]; do
  if [ "$1" = "--output" ]; then : > "$2.tmp-0123abcd"; fi
  shift
done
exit 1
`,
    );
    await Deno.chmod(`${dir}/bin/deno`, 0o755);
    const r = await compile(
      { PATH: `${dir}/bin:/usr/bin:/bin` },
      `${dir}/locksmithctl`,
    );
    assert.equal(r.code, 1);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(left, ["bin"], "no locksmithctl.tmp-* left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
