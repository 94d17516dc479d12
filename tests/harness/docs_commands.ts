/**
 * Every shell command shown in README.md and docs/*.md, run as pasted, in
 * order, after the quick start, in a scratch root (see scratch_root.ts):
 * overlays over /etc, /usr, /opt and /var, a network namespace of its own
 * with etcd (JSON gateway on) at the default endpoint 127.0.0.1:2379, and a
 * private system bus at /run/dbus/system_bus_socket. Run as root inside
 * `unshare --mount --net --propagation private` (tests/docs_commands_test.ts).
 *
 * What runs: the ```sh / ```bash / ```shell blocks of README.md, then of
 * docs/*.md in name order, one command at a time (lines joined at a trailing
 * backslash; a block with a here-document as one command), in the checkout,
 * with the PATH a login shell has. Not run:
 * - the blocks of the "Quick start" section: they are the quick start (the
 *   whole suite, the demo). Its effect is made first, as it makes it:
 *   `bash scripts/dev.sh deno --version` puts deno on PATH;
 * - a block preceded by `<!-- not run: <why> -->` (a command that needs a
 *   real host or a download these machines cannot make), or by
 *   `<!-- run by the install test -->` (tests/install_guide_test.ts runs it).
 * `locksmithctl` is on PATH as docs/install.md step 4 installs it, for this
 * checkout. A command passes when it exits 0, or when it is still running
 * after a few seconds (a server: locksmithd, `locksmithd serve`), then it is
 * stopped with SIGTERM. Every failure is listed; prints `[docs] PASS` at the
 * end.
 *
 * Usage: docs_commands.ts <scratch dir> <checkout>
 */

import assert from "node:assert/strict";
import {
  scratchMounts,
  sh,
  startBusHere,
  startEtcdHere,
} from "./scratch_root.ts";

/** A command to run, and where it was shown. */
export interface DocCommand {
  readonly file: string;
  readonly line: number;
  readonly command: string;
}

/** How long a server (locksmithd, `serve`) must keep running to pass. */
const SERVER_MS = 4_000;
/** How long any other command may take. */
const COMMAND_MS = 90_000;

/** Whether `command` starts locksmithd or its FleetLock server (which run until stopped). */
export function isServer(command: string): boolean {
  if (/\bdeno compile\b|--help\b|--version\b/.test(command)) return false;
  return /(^|[\s/])(daemon\.ts|locksmithd|locksmith-fleetlock)(\s|$)|jsr:@locksmith\/locksmith\/daemon\b/
    .test(command);
}

/** The commands of a Markdown file, as described in the module doc. */
export function docCommands(file: string, markdown: string): DocCommand[] {
  const commands: DocCommand[] = [];
  const lines = markdown.split("\n");
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    const heading = /^#+\s+(.*)$/.exec(lines[i]!);
    if (heading) section = heading[1]!;
    const fence = /^\s*```(sh|bash|shell)\s*$/.exec(lines[i]!);
    if (!fence) {
      if (/^\s*```/.test(lines[i]!)) {
        // Skip any other fenced block whole.
        i++;
        while (i < lines.length && !/^\s*```\s*$/.test(lines[i]!)) i++;
      }
      continue;
    }
    let before = i - 1;
    while (before >= 0 && lines[before]!.trim() === "") before--;
    const marker = before >= 0 ? lines[before]!.trim() : "";
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end]!)) end++;
    const body = lines.slice(start, end);
    i = end;
    if (/quick start/i.test(section)) continue;
    if (/^<!--\s*(not run\b|run by the install test)/.test(marker)) continue;
    if (body.some((l) => /<<-?\s*'?\w+'?\s*$/.test(l))) {
      commands.push({ file, line: start + 1, command: body.join("\n") });
      continue;
    }
    let current = "";
    let at = 0;
    body.forEach((text, k) => {
      if (current === "") at = start + k + 1;
      const trimmed = text.replace(/^\s+/, "");
      if (/\\\s*$/.test(text)) {
        current += trimmed.replace(/\\\s*$/, " ");
        return;
      }
      current += trimmed;
      if (current.trim() !== "" && !current.trim().startsWith("#")) {
        commands.push({ file, line: at, command: current });
      }
      current = "";
    });
  }
  return commands;
}

/**
 * Fenced blocks without a shell language (none, `text`, `console`) that start like a shell command
 * (`deno …`, `locksmithctl …`, `curl …`, …) and so would escape this test:
 * a command shown in the docs goes in a ```sh block (with a `not run`
 * marker when it cannot run here). Synopses (`[flags]`) and transcripts
 * (`$ ` prompts with their output) are not commands to paste.
 */
export function unlabeledCommands(file: string, markdown: string): string[] {
  const found: string[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fence = /^\s*```(\w*)\s*$/.exec(lines[i]!);
    if (!fence) continue;
    let end = i + 1;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end]!)) end++;
    const first = (lines[i + 1] ?? "").trim();
    if (
      ["", "text", "console", "txt"].includes(fence[1]!) &&
      /^(deno|locksmithctl|bash|curl|systemctl|etcdctl|journalctl|sudo|[A-Z_]+=\S+ deno)\s/
        .test(first) &&
      !/\[(flags|--)/.test(first)
    ) {
      found.push(`${file}:${i + 1}: ${first}`);
    }
    i = end;
  }
  return found;
}

async function runOne(
  cmd: DocCommand,
  cwd: string,
  env: Record<string, string>,
): Promise<string | undefined> {
  const child = new Deno.Command("bash", {
    args: ["-c", cmd.command],
    cwd,
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  const server = isServer(cmd.command);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const running = new Promise<"running">((resolve) => {
    timer = setTimeout(
      () => resolve("running"),
      server ? SERVER_MS : COMMAND_MS,
    );
  });
  const first = await Promise.race([output, running]);
  clearTimeout(timer);
  if (first === "running") {
    child.kill("SIGTERM");
    await output;
    return server
      ? undefined
      : `${cmd.file}:${cmd.line}: ${cmd.command}\n  still running after ${
        COMMAND_MS / 1000
      } s`;
  }
  if (first.success) return undefined;
  const d = new TextDecoder();
  return `${cmd.file}:${cmd.line}: ${cmd.command}\n  exited ${first.code}: ${
    (d.decode(first.stdout) + d.decode(first.stderr)).trim().replaceAll(
      "\n",
      "\n  ",
    )
  }`;
}

if (import.meta.main) {
  const [scratch, checkout] = Deno.args;
  assert.ok(
    scratch && checkout,
    "usage: docs_commands.ts <scratch> <checkout>",
  );
  const files = ["README.md"];
  for await (const e of Deno.readDir(`${checkout}/docs`)) {
    if (e.name.endsWith(".md")) files.push(`docs/${e.name}`);
  }
  files.splice(1, files.length - 1, ...files.slice(1).sort());
  const commands: DocCommand[] = [];
  const unlabeled: string[] = [];
  for (const file of files) {
    const text = await Deno.readTextFile(`${checkout}/${file}`);
    commands.push(...docCommands(file, text));
    unlabeled.push(...unlabeledCommands(file, text));
  }
  assert.deepEqual(
    unlabeled,
    [],
    `commands in blocks without a language escape this test; make them \`\`\`sh:\n${
      unlabeled.join("\n")
    }`,
  );
  await Deno.mkdir(`${scratch}/upper`, { recursive: true });
  // A copy of the checkout as a fresh clone has it (no node_modules, no
  // dist), so that the commands write nothing into the checkout.
  const copy = `${scratch}/locksmith`;
  await Deno.mkdir(copy);
  await sh(
    `tar -C '${checkout}' --exclude=./node_modules --exclude=./dist --exclude=./.git --exclude=./.tmp -cf - . | tar -C '${copy}' -xf -`,
  );
  await scratchMounts(scratch);
  const etcd = await startEtcdHere(scratch, true);
  const bus = await startBusHere();
  try {
    const env: Record<string, string> = {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
      NO_COLOR: "1",
      ...(Deno.env.get("DENO_DIR")
        ? { DENO_DIR: Deno.env.get("DENO_DIR")! }
        : {}),
    };
    // The quick start's effect, as it makes it; and locksmithctl as
    // docs/install.md step 4 installs it, for this checkout.
    await sh(
      `bash scripts/dev.sh deno --version >/dev/null 2>&1
cat > /usr/local/bin/locksmithctl <<'EOF'
#!/bin/sh
exec deno run -q -P=ctl --unstable-lazy-dynamic-imports --v8-flags=--min-semi-space-size=4,--no-lazy --config=${copy}/deno.json ${copy}/ctl.ts "$@"
EOF
chmod 755 /usr/local/bin/locksmithctl
command -v deno`,
      { cwd: copy, env },
    );
    const failures: string[] = [];
    for (const cmd of commands) {
      const failure = await runOne(cmd, copy, env);
      console.log(
        `[docs] ${failure ? "FAIL" : "ok  "} ${cmd.file}:${cmd.line}`,
      );
      if (failure) failures.push(failure);
    }
    assert.deepEqual(failures, [], failures.join("\n"));
    console.log(`[docs] ${commands.length} commands from ${files.join(", ")}`);
    console.log("[docs] PASS");
  } finally {
    await bus.close();
    etcd.kill("SIGTERM");
    await etcd.status;
  }
}
