/** The health gate: decisions with a fake clock and a scripted runner; one run with real commands. */
import assert from "node:assert/strict";
import type { SafetyClock } from "../lib/host/clock.ts";
import {
  type CommandResult,
  CommandStartError,
  parseCommand,
} from "../lib/host/command.ts";
import type { CommandRunner, RunOptions } from "../lib/host/command_run.ts";
import {
  type HealthGateOptions,
  type HealthGateResult,
  runCheck,
  runHealthGate,
} from "../lib/daemon/safety/health_gate.ts";
import type { CommandRunResult } from "../lib/daemon/observe/metrics_port.ts";

const SECOND = 1_000;
const CHECK = parseCommand(
  "LOCKSMITHD_HEALTH_CHECK",
  "/usr/local/bin/healthy --quick",
);

/** A clock that starts at 0 and moves only when slept on (or by the runner). */
class FakeClock implements SafetyClock {
  t = 0;
  sleeps: number[] = [];
  now(): Date {
    return new Date(this.t);
  }
  sleep(ms: number, signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    this.sleeps.push(ms);
    this.t += ms;
    return Promise.resolve(true);
  }
}

function exited(code: number, output = "", durationMs = 0): CommandResult {
  return {
    exitCode: code,
    signal: null,
    timedOut: false,
    aborted: false,
    output,
    outputBytes: new TextEncoder().encode(output).length,
    cutBytes: 0,
    durationMs,
  };
}

/** A runner answering `results` in turn (the last one again when they run out), taking `durationMs` of fake time. */
function scripted(
  clock: FakeClock,
  results: (CommandResult | Error)[],
): { run: CommandRunner; calls: { at: number; options: RunOptions }[] } {
  const calls: { at: number; options: RunOptions }[] = [];
  const run: CommandRunner = (_command, options) => {
    calls.push({ at: clock.t, options });
    const next = results[Math.min(calls.length, results.length) - 1] as
      | CommandResult
      | Error;
    if (next instanceof Error) return Promise.reject(next);
    clock.t += next.durationMs;
    return Promise.resolve(next);
  };
  return { run, calls };
}

function logs() {
  const lines: string[] = [];
  return {
    lines,
    log: {
      info: (m: string) => lines.push(`INFO ${m}`),
      warn: (m: string) => lines.push(`WARN ${m}`),
      error: (m: string) => lines.push(`ERROR ${m}`),
    },
  };
}

async function gate(
  clock: FakeClock,
  run: CommandRunner,
  extra: Partial<HealthGateOptions> = {},
): Promise<
  { result: HealthGateResult; lines: string[]; attempts: CommandRunResult[] }
> {
  const { lines, log } = logs();
  const attempts: CommandRunResult[] = [];
  const result = await runHealthGate({
    command: CHECK,
    intervalMs: 10 * SECOND,
    timeoutMs: 35 * SECOND,
    commandTimeoutMs: 5 * SECOND,
    log,
    run,
    clock,
    onAttempt: (r) => attempts.push(r),
    ...extra,
  });
  return { result, lines, attempts };
}

Deno.test("runHealthGate() is healthy at once when the check exits 0 on the first run", async () => {
  const clock = new FakeClock();
  const { run, calls } = scripted(clock, [exited(0)]);
  const { result, lines, attempts } = await gate(clock, run, {
    env: { PATH: "/bin" },
  });
  assert.deepEqual(result, { outcome: "healthy", attempts: 1, elapsedMs: 0 });
  assert.equal(calls.length, 1);
  assert.equal(calls[0]?.options.timeoutMs, 5 * SECOND);
  assert.deepEqual(calls[0]?.options.env, { PATH: "/bin" });
  assert.deepEqual(clock.sleeps, []);
  assert.deepEqual(lines, [
    "INFO health check LOCKSMITHD_HEALTH_CHECK (/usr/local/bin/healthy) passed (attempt 1, after 0s)",
  ]);
  assert.deepEqual(attempts, ["success"]);
});

Deno.test("runHealthGate() retries at the interval and is healthy when a later run exits 0", async () => {
  const clock = new FakeClock();
  const { run, calls } = scripted(clock, [
    exited(1, "db not ready\n"),
    exited(2, "still syncing"),
    exited(0),
  ]);
  const { result, lines, attempts } = await gate(clock, run);
  assert.deepEqual(result, {
    outcome: "healthy",
    attempts: 3,
    elapsedMs: 20 * SECOND,
  });
  assert.deepEqual(calls.map((c) => c.at), [0, 10 * SECOND, 20 * SECOND]);
  assert.deepEqual(lines, [
    "WARN health check LOCKSMITHD_HEALTH_CHECK (/usr/local/bin/healthy) failed (attempt 1): exited 1 after 0s: output: db not ready; next attempt in 10s, giving up in 35s",
    "WARN health check LOCKSMITHD_HEALTH_CHECK (/usr/local/bin/healthy) failed (attempt 2): exited 2 after 0s: output: still syncing; next attempt in 10s, giving up in 25s",
    "INFO health check LOCKSMITHD_HEALTH_CHECK (/usr/local/bin/healthy) passed (attempt 3, after 20s)",
  ]);
  assert.deepEqual(attempts, ["failure", "failure", "success"]);
});

Deno.test("runHealthGate() is unhealthy after the timeout, with a last attempt at the deadline and an error line", async () => {
  const clock = new FakeClock();
  const { run, calls } = scripted(clock, [exited(1, "disk full")]);
  const { result, lines } = await gate(clock, run);
  assert.deepEqual(result, {
    outcome: "unhealthy",
    attempts: 5,
    elapsedMs: 35 * SECOND,
    lastFailure: "exited 1 after 0s: output: disk full",
  });
  // 0, 10, 20, 30 s, then the rest of the timeout: 35 s.
  assert.deepEqual(calls.map((c) => c.at / SECOND), [0, 10, 20, 30, 35]);
  assert.deepEqual(clock.sleeps.map((ms) => ms / SECOND), [10, 10, 10, 5]);
  assert.equal(lines.length, 5);
  assert.equal(
    lines[4],
    "ERROR health check LOCKSMITHD_HEALTH_CHECK (/usr/local/bin/healthy) still fails after 35s and 5 attempt(s), giving up: keeping the slot so that the rollout stops; last failure: exited 1 after 0s: output: disk full",
  );
});

Deno.test("runHealthGate() counts the check's own run time towards the deadline", async () => {
  const clock = new FakeClock();
  const { run, calls } = scripted(clock, [exited(1, "", 8 * SECOND)]);
  const { result } = await gate(clock, run, { timeoutMs: 30 * SECOND });
  // Runs start at 0, 18 and 36 s (8 s run + 10 s interval); the second ends at 26 s,
  // the third would start after the deadline, so it starts at 30 s instead.
  assert.deepEqual(calls.map((c) => c.at / SECOND), [0, 18, 30]);
  assert.equal(result.outcome, "unhealthy");
  assert.equal(result.elapsedMs, 38 * SECOND);
});

Deno.test("runHealthGate() counts a timed-out run and a program that cannot start as failures", async () => {
  const clock = new FakeClock();
  const timedOut: CommandResult = {
    ...exited(0),
    exitCode: null,
    signal: "SIGTERM",
    timedOut: true,
    durationMs: 5 * SECOND,
  };
  const refused = new CommandStartError(
    CHECK,
    "not-permitted",
    "LOCKSMITHD_HEALTH_CHECK: not allowed to run /usr/local/bin/healthy; start locksmithd with --allow-run=/usr/local/bin/healthy (one list naming every command's program)",
  );
  const { run } = scripted(clock, [timedOut, refused, exited(0)]);
  const { result, lines, attempts } = await gate(clock, run);
  assert.equal(result.outcome, "healthy");
  assert.deepEqual(attempts, ["timeout", "error", "success"]);
  assert.match(
    lines[0] ?? "",
    /failed \(attempt 1\): timed out after 5s \(ended by SIGTERM\), no output; next attempt in 10s/,
  );
  assert.match(
    lines[1] ?? "",
    /failed \(attempt 2\): LOCKSMITHD_HEALTH_CHECK: not allowed to run .* --allow-run=\/usr\/local\/bin\/healthy/,
  );
});

Deno.test("runHealthGate() stops when aborted: before the start, while waiting, and while the check runs", async () => {
  const before = await gate(
    new FakeClock(),
    scripted(new FakeClock(), [exited(0)]).run,
    { signal: AbortSignal.abort() },
  );
  assert.deepEqual(before.result, {
    outcome: "aborted",
    attempts: 0,
    elapsedMs: 0,
  });

  const clock = new FakeClock();
  const controller = new AbortController();
  const failing: CommandRunner = () => {
    controller.abort();
    return Promise.resolve(exited(1));
  };
  const waiting = await gate(clock, failing, { signal: controller.signal });
  assert.equal(waiting.result.outcome, "aborted");
  assert.equal(waiting.result.attempts, 1);

  const running = await gate(
    new FakeClock(),
    () =>
      Promise.resolve({
        ...exited(0),
        exitCode: null,
        signal: "SIGTERM",
        aborted: true,
      }),
  );
  assert.equal(running.result.outcome, "aborted");
  assert.deepEqual(running.attempts, []);
});

Deno.test("runHealthGate() runs a real check until a script finds the machine healthy", async () => {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-health-" });
  try {
    // Fails twice (counting its runs in a file), then passes.
    const script = `${dir}/healthy`;
    await Deno.writeTextFile(
      script,
      `#!/bin/sh\nn=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"\n[ $n -ge 3 ] && { echo ok; exit 0; }\necho "not yet ($n)"; exit 1\n`,
    );
    await Deno.chmod(script, 0o755);
    const { lines, log } = logs();
    const healthy = await runHealthGate({
      command: parseCommand(
        "LOCKSMITHD_HEALTH_CHECK",
        `${script} ${dir}/count`,
      ),
      intervalMs: 50,
      timeoutMs: 10 * SECOND,
      commandTimeoutMs: 5 * SECOND,
      log,
    });
    assert.equal(healthy.outcome, "healthy");
    assert.equal(healthy.attempts, 3);
    assert.match(
      lines[0] ?? "",
      /^WARN .* failed \(attempt 1\): exited 1 after [\dhms]+: output: not yet \(1\); next attempt in 50ms/,
    );
    assert.match(lines[2] ?? "", /^INFO .* passed \(attempt 3, after /);

    const broken = await runHealthGate({
      command: parseCommand("LOCKSMITHD_HEALTH_CHECK", "/bin/false"),
      intervalMs: 50,
      timeoutMs: 200,
      commandTimeoutMs: 5 * SECOND,
      log,
    });
    assert.equal(broken.outcome, "unhealthy");
    assert.ok(broken.attempts >= 2, `${broken.attempts} attempts`);
    assert.match(
      lines.at(-1) ?? "",
      /^ERROR health check LOCKSMITHD_HEALTH_CHECK \(\/bin\/false\) still fails after .* keeping the slot/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runCheck() as the pre-reboot check: exit 0 passes; an exit status, a timeout or a missing program means not now", async () => {
  const key = "LOCKSMITHD_PRE_REBOOT_CHECK";
  const check = (text: string, commandTimeoutMs = 5 * SECOND) =>
    runCheck({ command: parseCommand(key, text), commandTimeoutMs });
  assert.deepEqual(await check("/bin/true"), { result: "success" });
  const vetoed = await check("/bin/sh -c 'echo maintenance running; exit 3'");
  assert.equal(vetoed.result, "failure");
  assert.match(
    vetoed.failure ?? "",
    /^exited 3 after [\dhms]+: output: maintenance running$/,
  );
  const slow = await check("/bin/sleep 10", 100);
  assert.equal(slow.result, "timeout");
  const missing = await check("/nonexistent/ready");
  assert.equal(vetoed.sameAs, "exited 3: output: maintenance running");
  assert.deepEqual(missing, {
    result: "error",
    failure:
      "LOCKSMITHD_PRE_REBOOT_CHECK: the program /nonexistent/ready does not exist",
    sameAs:
      "LOCKSMITHD_PRE_REBOOT_CHECK: the program /nonexistent/ready does not exist",
  });
  const aborted = await runCheck({
    command: parseCommand(key, "/bin/true"),
    commandTimeoutMs: SECOND,
    signal: AbortSignal.abort(),
  });
  assert.deepEqual(aborted, { result: "aborted" });
});
