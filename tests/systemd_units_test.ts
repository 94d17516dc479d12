/**
 * The systemd units in systemd/: `systemd-analyze verify` finds nothing to
 * say about any of them, and `systemd-analyze security` rates each as
 * docs/install.md says (the FleetLock server at most 2.5, locksmithd at
 * most 4.5). verify checks that ExecStart's program exists: it runs in a
 * mount namespace whose /usr/local/bin holds stand-ins for deno and the
 * compiled binaries.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "./harness/permissions.ts";

const UNITS = [
  "locksmithd.service",
  "locksmithd-deno.service",
  "locksmith-fleetlock.service",
  "locksmith-fleetlock-deno.service",
];

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(cmd, {
    args,
    cwd: REPO_ROOT,
    env: { SYSTEMD_COLORS: "0", SYSTEMD_PAGER: "" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout) + d.decode(r.stderr) };
}

Deno.test("systemd/ holds exactly the units docs/install.md describes", async () => {
  const present: string[] = [];
  for await (const e of Deno.readDir(`${REPO_ROOT}systemd`)) {
    if (e.name.endsWith(".service")) present.push(e.name);
  }
  assert.deepEqual(present.sort(), [...UNITS].sort());
});

Deno.test("systemd-analyze verify finds nothing to say about any unit", async () => {
  const stubs = ["deno", "locksmithd", "locksmith-fleetlock"].map((b) =>
    `printf '#!/bin/sh\\n' > /usr/local/bin/${b}; chmod 755 /usr/local/bin/${b}`
  ).join("; ");
  const r = await run("unshare", [
    "--mount",
    "--propagation",
    "private",
    "bash",
    "-euc",
    `mount -t tmpfs tmpfs /usr/local/bin; ${stubs}; systemd-analyze verify ${
      UNITS.map((u) => `systemd/${u}`).join(" ")
    }`,
  ]);
  assert.equal(r.out, "");
  assert.equal(r.code, 0);
});

Deno.test("systemd-analyze security rates each unit as docs/install.md says: serve at most 2.5, locksmithd at most 4.5", async () => {
  const guide = await Deno.readTextFile(`${REPO_ROOT}docs/install.md`);
  for (const unit of UNITS) {
    const r = await run("systemd-analyze", [
      "security",
      "--offline=true",
      `systemd/${unit}`,
    ]);
    assert.equal(r.code, 0, r.out);
    const figure = /Overall exposure level for \S+: (\d+\.\d) (\w+)/.exec(
      r.out,
    );
    assert.ok(figure, r.out);
    const [, level, word] = figure;
    const limit = unit.startsWith("locksmith-fleetlock") ? 2.5 : 4.5;
    assert.ok(Number(level) <= limit, `${unit}: ${level} > ${limit}`);
    const row = guide.split("\n").find((l) =>
      l.includes(`\`${unit}\``) && l.includes("**")
    );
    assert.ok(row, `docs/install.md has a row for ${unit}`);
    assert.ok(
      row.includes(`**${level} ${word}**`),
      `docs/install.md says ${row}, systemd-analyze ${level} ${word}`,
    );
  }
});
