/**
 * Builds the compiled binaries with the compile tasks of deno.json and runs
 * them for real: `--version` of each, `locksmithctl status` and `lock`
 * against a fresh etcd (and `status` against one without the JSON gateway,
 * which loads the gRPC client embedded in the binary), and locksmithd from
 * start to a reboot request on a private system bus. `deno compile` needs the `denort` runtime of the same
 * Deno version, which it downloads unless `DENORT_BIN` names a copy; this
 * script builds only with `DENORT_BIN` set (so that CI never depends on a
 * download). Without it, nothing is built and the script says so (exit
 * status 0, with "NOT RUN" on stdout), so that a missing runtime is never
 * mistaken for a pass.
 *
 * Usage: `deno task compiled` (`DENORT_BIN=/path/to/denort deno task compiled`)
 */

import { startEtcd } from "../tests/harness/etcd.ts";
import { startMachine } from "../tests/harness/machine.ts";
import { programFlags } from "../tests/harness/permissions.ts";

const say = (line: string) => console.log(`[compiled] ${line}`);

async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${out.code}: ${
        new TextDecoder().decode(out.stderr).trim()
      }`,
    );
  }
  return text;
}

if (import.meta.main) {
  const denort = Deno.env.get("DENORT_BIN");
  if (!denort) {
    say(
      `NOT RUN: DENORT_BIN is not set, so nothing was built. Set it to a denort of Deno ${Deno.version.deno} (docs/install.md, "Compiled binaries") to build and run the binaries.`,
    );
    Deno.exit(0);
  }
  for (const task of ["compile:ctl", "compile:daemon", "compile:serve"]) {
    say(`deno task ${task}`);
    await run(Deno.execPath(), ["task", task], { DENORT_BIN: denort });
  }
  // The private bus and its config live under the temp dir: a test build
  // of the daemon gets the daemon set plus that directory.
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  say("deno compile (test build of locksmithd with read/write of " + tmp + ")");
  await run(Deno.execPath(), [
    "compile",
    ...programFlags("daemon", { read: [tmp], write: [tmp] }).filter((f) =>
      f !== "-q"
    ),
    "--output",
    "dist/locksmithd-test",
    "daemon.ts",
  ], { DENORT_BIN: denort });
  for (const bin of ["locksmithctl", "locksmithd"]) {
    say(
      `${bin} --version: ${(await run(`dist/${bin}`, ["--version"])).trim()}`,
    );
  }
  const etcd = await startEtcd();
  try {
    const endpoint = ["--endpoint", etcd.endpoint];
    await run("dist/locksmithctl", ["lock", "compiled-1", ...endpoint]);
    say(
      `locksmithctl status: ${
        JSON.stringify(await run("dist/locksmithctl", ["status", ...endpoint]))
      }`,
    );
    await run("dist/locksmithctl", ["unlock", "compiled-1", ...endpoint]);
    // The daemon binary on a private bus, from start to a reboot request.
    const machine = await startMachine({
      id: "compiled-daemon",
      endpoint: etcd.endpoint,
      command: ["dist/locksmithd-test"],
    });
    try {
      machine.startDaemon();
      await machine.waitForLine(/waiting for a reboot to be needed/);
      await machine.needReboot();
      await machine.waitForLine(/reboot requested$/);
      say(`locksmithd: reboot requested (${await machine.reboots()} call)`);
    } finally {
      await machine.close();
    }
  } finally {
    await etcd.close();
  }
  // Without etcd's gateway locksmithctl loads its gRPC client (embedded:
  // its import is a literal); reading the .proto files may then be refused
  // (one line naming them), but never a missing module.
  const noGateway = await startEtcd({
    extraArgs: ["--enable-grpc-gateway=false"],
  });
  try {
    const out = await new Deno.Command("dist/locksmithctl", {
      args: ["status", "--endpoint", noGateway.endpoint],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr).trim();
    if (
      !out.success &&
      !/^locksmithctl: (missing Deno permissions: )?read access to \S+proto/
        .test(stderr)
    ) {
      throw new Error(`locksmithctl status without a gateway: ${stderr}`);
    }
    say(
      `locksmithctl status without a gateway (gRPC): ${
        out.success ? "answered" : stderr
      }`,
    );
  } finally {
    await noGateway.close();
  }
  say("PASS: the compiled binaries build, answer and run");
}
