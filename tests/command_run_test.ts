/** Running commands without a shell: real programs, real scripts, a real permission refusal. */
import assert from "node:assert/strict";
import {
  CommandStartError,
  commandSucceeded,
  describeResult,
  parseCommand,
} from "../lib/host/command.ts";
import {
  commandEnv,
  DEFAULT_COMMAND_ENV,
  DEFAULT_OUTPUT_LIMIT,
  runCommand,
} from "../lib/host/command_run.ts";
import { programFlags, REPO_ROOT } from "./harness/permissions.ts";

const KEY = "LOCKSMITHD_HEALTH_CHECK";

/** Writes an executable /bin/sh script into a temporary directory; returns its path. */
async function script(
  dir: string,
  name: string,
  body: string,
): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-command-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function run(text: string, timeoutMs = 10_000, extra = {}) {
  return runCommand(parseCommand(KEY, text), { timeoutMs, ...extra });
}

Deno.test("runCommand() reports exit 0 of /bin/true and exit 1 of /bin/false", async () => {
  const ok = await run("/bin/true");
  assert.equal(ok.exitCode, 0);
  assert.equal(ok.signal, null);
  assert.equal(ok.timedOut, false);
  assert.equal(ok.output, "");
  assert.ok(commandSucceeded(ok));
  const failed = await run("/bin/false");
  assert.equal(failed.exitCode, 1);
  assert.ok(!commandSucceeded(failed));
  assert.match(describeResult(failed), /^exited 1 after [\dhms]+, no output$/);
});

Deno.test("runCommand() passes arguments verbatim, with no shell in between", async () => {
  await withTempDir(async (dir) => {
    const args = await script(
      dir,
      "args",
      'for a in "$@"; do echo "[$a]"; done',
    );
    const r = await run(`${args} 'a b' '$HOME' '*' "x;y" ''`);
    assert.equal(r.output, "[a b]\n[$HOME]\n[*]\n[x;y]\n[]\n");
  });
});

Deno.test("runCommand() captures stdout and stderr together, in order", async () => {
  await withTempDir(async (dir) => {
    const chatty = await script(
      dir,
      "both",
      "echo out1; sleep 0.05; echo err1 >&2; sleep 0.05; echo out2; exit 3",
    );
    const r = await run(chatty);
    assert.equal(r.exitCode, 3);
    assert.equal(r.output, "out1\nerr1\nout2\n");
    assert.equal(r.outputBytes, 15);
    assert.equal(r.cutBytes, 0);
    assert.equal(
      describeResult(r).replace(/\d+ms/, "Nms"),
      "exited 3 after Nms: output: out1 err1 out2",
    );
  });
});

Deno.test("runCommand() gives exactly the caller's environment, / as directory and no stdin", async () => {
  await withTempDir(async (dir) => {
    const show = await script(
      dir,
      "env",
      'echo "PATH=$PATH HOME=${HOME-unset} MACHINE=${LOCKSMITH_MACHINE_ID-unset}"; pwd; cat; echo end',
    );
    const byDefault = await run(show);
    assert.equal(
      byDefault.output,
      `PATH=${DEFAULT_COMMAND_ENV.PATH} HOME=unset MACHINE=unset\n/\nend\n`,
    );
    const given = await run(show, 10_000, {
      env: { PATH: "/bin", LOCKSMITH_MACHINE_ID: "abc" },
    });
    assert.equal(given.output, "PATH=/bin HOME=unset MACHINE=abc\n/\nend\n");
    const daemons = await run(show, 10_000, {
      env: commandEnv("0123abcd", ""),
    });
    assert.equal(
      daemons.output,
      `PATH=${DEFAULT_COMMAND_ENV.PATH} HOME=unset MACHINE=0123abcd\n/\nend\n`,
    );
    assert.deepEqual(commandEnv("m", "prod"), {
      PATH: DEFAULT_COMMAND_ENV.PATH,
      LOCKSMITH_MACHINE_ID: "m",
      LOCKSMITH_GROUP: "prod",
    });
  });
});

Deno.test("runCommand() keeps the last 4 KiB of a chatty program and says how much was cut", async () => {
  await withTempDir(async (dir) => {
    const chatty = await script(
      dir,
      "chatty",
      'i=0; while [ $i -lt 2000 ]; do echo "line $i of noise to fill the pipe"; i=$((i+1)); done; echo LAST',
    );
    const r = await run(chatty);
    assert.equal(r.exitCode, 0);
    assert.ok(r.outputBytes > 50_000, `${r.outputBytes} bytes`);
    assert.equal(
      new TextEncoder().encode(r.output).length,
      DEFAULT_OUTPUT_LIMIT,
    );
    assert.equal(r.cutBytes, r.outputBytes - DEFAULT_OUTPUT_LIMIT);
    assert.ok(r.output.endsWith("line 1999 of noise to fill the pipe\nLAST\n"));
    assert.match(
      describeResult(r),
      new RegExp(`output \\(last 4096 of ${r.outputBytes} bytes\\): `),
    );
  });
});

Deno.test("runCommand() never starts the kept output inside a cut UTF-8 character", async () => {
  await withTempDir(async (dir) => {
    // "é" is two bytes: 11 of them are 22 bytes; keeping 9 would split one.
    const accents = await script(dir, "accents", "printf 'ééééééééééé'");
    const r = await run(accents, 10_000, { outputLimit: 9 });
    assert.equal(r.output, "éééé");
    assert.equal(r.outputBytes, 22);
    assert.equal(r.cutBytes, 14);
  });
});

Deno.test("runCommand() ends a sleeper with SIGTERM at the timeout", async () => {
  const started = performance.now();
  const r = await run("/bin/sleep 30", 300);
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, null);
  assert.equal(r.signal, "SIGTERM");
  assert.ok(r.durationMs >= 250 && r.durationMs < 5_000, `${r.durationMs} ms`);
  assert.ok(performance.now() - started < 5_000);
  assert.match(
    describeResult(r),
    /^timed out after \d+ms \(ended by SIGTERM\), no output$/,
  );
});

Deno.test("runCommand() sends SIGKILL after the grace period when SIGTERM is ignored", async () => {
  await withTempDir(async (dir) => {
    const stubborn = await script(
      dir,
      "stubborn",
      "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    );
    const r = await run(stubborn, 300, { graceMs: 300 });
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, "SIGKILL");
    assert.equal(r.output, "ready\n");
    assert.ok(
      r.durationMs >= 550 && r.durationMs < 5_000,
      `${r.durationMs} ms`,
    );
  });
});

Deno.test("runCommand() returns when the program ends even if a background child keeps its output open", async () => {
  const started = performance.now();
  const r = await run("/bin/sh -c 'sleep 3 & echo started'");
  assert.equal(r.exitCode, 0);
  assert.equal(r.output, "started\n");
  assert.ok(
    performance.now() - started < 2_000,
    `${performance.now() - started} ms`,
  );
});

Deno.test("runCommand() stops the program when the caller aborts, and starts nothing when already aborted", async () => {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 200);
  const r = await run("/bin/sleep 30", 10_000, { signal: controller.signal });
  assert.equal(r.aborted, true);
  assert.equal(r.timedOut, false);
  assert.equal(r.signal, "SIGTERM");
  assert.ok(!commandSucceeded(r));
  const early = await run("/bin/true", 10_000, { signal: AbortSignal.abort() });
  assert.equal(early.aborted, true);
  assert.equal(early.exitCode, null);
  assert.equal(early.durationMs, 0);
});

Deno.test("runCommand() throws one line for a missing program and for a file that is not executable", async () => {
  await assert.rejects(
    run("/nonexistent/healthy --quick"),
    (error: unknown) => {
      assert.ok(error instanceof CommandStartError);
      assert.equal(error.reason, "not-found");
      assert.equal(error.key, KEY);
      assert.equal(
        error.message,
        `${KEY}: the program /nonexistent/healthy does not exist`,
      );
      return true;
    },
  );
  await withTempDir(async (dir) => {
    const plain = `${dir}/plain`;
    await Deno.writeTextFile(plain, "#!/bin/sh\nexit 0\n");
    await Deno.chmod(plain, 0o644);
    await assert.rejects(run(plain), (error: unknown) => {
      assert.ok(error instanceof CommandStartError);
      assert.equal(error.reason, "not-executable");
      assert.match(
        error.message,
        /^LOCKSMITHD_HEALTH_CHECK: the program .*\/plain cannot be executed \(permission denied/,
      );
      return true;
    });
  });
});

/** Runs tests/harness/run_command.ts with the daemon's permission set plus `allowRun`. */
async function runAsDaemon(
  allowRun: string,
  text: string,
): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...programFlags("daemon"),
      allowRun,
      `${REPO_ROOT}tests/harness/run_command.ts`,
      "LOCKSMITHD_REBOOT_COMMAND",
      text,
    ],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("under the daemon's permissions, a program missing from --allow-run is refused with the flag to add", async () => {
  const refused = await runAsDaemon(
    "--allow-run=/bin/true",
    "/bin/false --now",
  );
  const expected =
    "LOCKSMITHD_REBOOT_COMMAND: not allowed to run /bin/false; start locksmithd with --allow-run=/bin/false (one list naming every command's program)";
  assert.equal(refused.permission, expected);
  assert.equal(refused.name, "CommandStartError");
  assert.equal(refused.error, expected);

  const allowed = await runAsDaemon("--allow-run=/bin/true", "/bin/true");
  assert.equal(allowed.permission, null);
  assert.equal((allowed.result as { exitCode: number }).exitCode, 0);
});
