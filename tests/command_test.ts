/** Parsing commands without a shell, and describing their runs (pure). */
import assert from "node:assert/strict";
import { UsageError } from "../lib/common/errors.ts";
import {
  allowRunFlag,
  type CommandResult,
  CommandSyntaxError,
  describeCommand,
  describeResult,
  parseCommand,
} from "../lib/host/command.ts";

const KEY = "LOCKSMITHD_HEALTH_CHECK";

function argv(text: string): string[] {
  const c = parseCommand(KEY, text);
  return [c.program, ...c.args];
}

function rejects(text: string, culprit: RegExp): void {
  assert.throws(() => parseCommand(KEY, text), (error: unknown) => {
    assert.ok(error instanceof CommandSyntaxError, String(error));
    assert.ok(error instanceof UsageError);
    assert.equal(error.exitCode, 2);
    assert.equal(error.key, KEY);
    assert.equal(error.value, text);
    assert.ok(error.message.startsWith(`${KEY}=`), error.message);
    assert.ok(error.message.endsWith(error.defect), error.message);
    assert.match(error.defect, culprit);
    assert.ok(!error.message.includes("\n"), "message is one line");
    return true;
  });
}

Deno.test("parseCommand() splits words at blanks, honouring quotes and backslashes", () => {
  assert.deepEqual(
    argv(`/usr/local/bin/healthy --quick 'a b' "c d" e\\ f  g`),
    ["/usr/local/bin/healthy", "--quick", "a b", "c d", "e f", "g"],
  );
  assert.deepEqual(argv(`/bin/echo "it's" 'say "hi"'`), [
    "/bin/echo",
    "it's",
    'say "hi"',
  ]);
  assert.deepEqual(argv("  /bin/true  "), ["/bin/true"]);
});

Deno.test("parseCommand() passes quoted shell syntax on as plain text", () => {
  assert.deepEqual(argv(`/bin/echo '$HOME' '*.sh' '|' '#x' '2>&1'`), [
    "/bin/echo",
    "$HOME",
    "*.sh",
    "|",
    "#x",
    "2>&1",
  ]);
});

Deno.test("parseCommand() lets /bin/sh -c run a script given as one argument", () => {
  const c = parseCommand(
    "LOCKSMITHD_REBOOT_COMMAND",
    `/bin/sh -c 'drain --node "$(hostname)" && sleep 5'`,
  );
  assert.equal(c.program, "/bin/sh");
  assert.deepEqual(c.args, ["-c", 'drain --node "$(hostname)" && sleep 5']);
  assert.equal(c.key, "LOCKSMITHD_REBOOT_COMMAND");
  assert.equal(describeCommand(c), "LOCKSMITHD_REBOOT_COMMAND (/bin/sh)");
});

Deno.test("parseCommand() refuses shell operators, naming the operator", () => {
  rejects(
    "/bin/a | /bin/b",
    /shell operator "\|".*without a shell.*\/bin\/sh -c/,
  );
  rejects("/bin/a && /bin/b", /shell operator "&&"/);
  rejects("/bin/a || /bin/b", /shell operator "\|\|"/);
  rejects("/bin/a; /bin/b", /shell operator ";"/);
  rejects("/bin/a &", /shell operator "&"/);
  rejects("/bin/a (x)", /shell operator "\("/);
});

Deno.test("parseCommand() refuses redirections", () => {
  rejects("/bin/a > /tmp/x", /redirection ">"/);
  rejects("/bin/a >> /tmp/x", /redirection ">>"/);
  rejects("/bin/a 2>&1", /redirection ">&"/);
  rejects("/bin/a < /etc/passwd", /redirection "<"/);
  rejects("/bin/a <<< text", /redirection "<<<"/);
  rejects("/bin/a >(x)", /redirection ">\("/);
});

Deno.test("parseCommand() refuses globs unless quoted", () => {
  rejects("/bin/rm /tmp/*.sh", /glob "\/tmp\/\*\.sh".*quote it/);
  rejects("/bin/ls file?", /glob "file\?"/);
});

Deno.test("parseCommand() refuses expansions and command substitutions", () => {
  rejects("/bin/a $HOME", /expansion "\$HOME"/);
  rejects('/bin/a "${HOME}/x"', /expansion "\$HOME"/);
  rejects("/bin/a $(hostname)", /expansion "\$\(…\)"/);
  rejects("/bin/a $$", /expansion "\$\$"/);
  rejects("/bin/a ${}", /bad expansion/);
  rejects("/bin/a `hostname`", /backtick \(command substitution\)/);
});

Deno.test("parseCommand() refuses comments", () => {
  rejects("/bin/a # reboot later", /comment "# reboot later"/);
});

Deno.test("parseCommand() refuses a program that is not an absolute path", () => {
  rejects("drain --node x", /program "drain", which is not an absolute path/);
  rejects("./drain", /not an absolute path/);
  rejects('"" x', /names no program/);
});

Deno.test("parseCommand() refuses environment assignments, line breaks and empty text", () => {
  rejects("FOO=1 /bin/a", /environment variable "FOO"/);
  rejects("/bin/a\n/bin/b", /line break or control character/);
  rejects("/bin/a\u001b[31m", /control character/);
  rejects("", /is empty/);
  rejects("   ", /is empty/);
});

Deno.test("allowRunFlag() names each program once, sorted", () => {
  const commands = [
    parseCommand("LOCKSMITHD_REBOOT_COMMAND", "/usr/local/bin/drain --all"),
    parseCommand("LOCKSMITHD_HEALTH_CHECK", "/usr/local/bin/healthy"),
    parseCommand("LOCKSMITHD_PRE_REBOOT_CHECK", "/usr/local/bin/drain --check"),
  ];
  assert.equal(
    allowRunFlag(commands),
    "--allow-run=/usr/local/bin/drain,/usr/local/bin/healthy",
  );
});

function result(overrides: Partial<CommandResult>): CommandResult {
  return {
    exitCode: 0,
    signal: null,
    timedOut: false,
    aborted: false,
    output: "",
    outputBytes: 0,
    cutBytes: 0,
    durationMs: 15,
    ...overrides,
  };
}

Deno.test("describeResult() tells how the run ended, in one line", () => {
  assert.equal(describeResult(result({})), "exited 0 after 15ms, no output");
  assert.equal(
    describeResult(result({
      exitCode: 1,
      durationMs: 1200,
      output: "disk full\nretry later\n",
      outputBytes: 22,
    })),
    "exited 1 after 1s200ms: output: disk full retry later",
  );
  assert.equal(
    describeResult(result({
      exitCode: null,
      signal: "SIGKILL",
      timedOut: true,
      durationMs: 35_000,
    })),
    "timed out after 35s (ended by SIGKILL), no output",
  );
  assert.equal(
    describeResult(
      result({ exitCode: null, signal: "SIGTERM", aborted: true }),
    ),
    "was stopped after 15ms, no output",
  );
  assert.equal(
    describeResult(result({ exitCode: null, signal: "SIGSEGV" })),
    "was killed by SIGSEGV after 15ms, no output",
  );
  assert.equal(
    describeResult(result({ durationMs: 0 })),
    "exited 0 after 0s, no output",
  );
});

Deno.test("describeResult() says how much output was cut and escapes control characters", () => {
  assert.equal(
    describeResult(result({
      exitCode: 2,
      output: "tail \u001b[31m",
      outputBytes: 10_000,
      cutBytes: 5_904,
    })),
    "exited 2 after 15ms: output (last 4096 of 10000 bytes): tail \\u001b[31m",
  );
});

Deno.test("describeResult() without the duration reads alike for runs that ended alike", () => {
  const slow = result({ exitCode: 3, output: "busy", durationMs: 9_000 });
  const fast = result({ exitCode: 3, output: "busy", durationMs: 4 });
  assert.equal(
    describeResult(slow, { duration: false }),
    "exited 3: output: busy",
  );
  assert.equal(
    describeResult(slow, { duration: false }),
    describeResult(fast, { duration: false }),
  );
  assert.equal(
    describeResult(
      result({ exitCode: null, signal: "SIGTERM", timedOut: true }),
      { duration: false },
    ),
    "timed out (ended by SIGTERM), no output",
  );
});
