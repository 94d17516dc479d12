/**
 * Every form of locksmith against an etcd without its JSON gateway (the gRPC
 * fallback): the library imported by path from a project with no import map
 * of its own, a packed copy served over HTTP the way JSR serves it, the
 * README's plain flags, and the tasks. Plus what keeps them working: full
 * `npm:` specifiers in the package's code (pinned as in deno.json), and no
 * dynamic import that `deno publish` cannot analyze.
 */

import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { startEtcd } from "./harness/etcd.ts";
import { REPO_ROOT } from "./harness/permissions.ts";

const GRPC_ENV =
  "--allow-env=GRPC_*,grpc_proxy,https_proxy,http_proxy,no_grpc_proxy,no_proxy";

async function deno(
  cwd: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
  };
}

/** An app using the library at `lib`: lock, read, unlock; errors as one line. */
function app(lib: string): string {
  return `import { lockSlot, openEtcdLockStore, unlockSlot } from "${lib}";

try {
  const store = await openEtcdLockStore(
    { endpoints: [Deno.args[0]!], timeoutMs: 5_000 },
    "forms",
  );
  try {
    await lockSlot(store, "app-1");
    console.log(JSON.stringify((await store.read()).doc.holders));
    await unlockSlot(store, "app-1");
  } finally {
    await store.close();
  }
} catch (error) {
  console.log(\`error: \${(error as Error).message}\`);
}
`;
}

Deno.test("without etcd's JSON gateway, every form works or names the missing permissions in one line", async (t) => {
  const etcd = await startEtcd({ extraArgs: ["--enable-grpc-gateway=false"] });
  const dir = await Deno.makeTempDir({ prefix: "locksmith-forms-" });
  try {
    await t.step(
      "the library by path, from a project with no import map: it type-checks and runs",
      async () => {
        await Deno.writeTextFile(`${dir}/main.ts`, app(`${REPO_ROOT}mod.ts`));
        const check = await deno(dir, ["check", "-q", "main.ts"]);
        assert.equal(check.code, 0, check.stderr);
        const narrow = await deno(dir, [
          "run",
          "-q",
          "--no-prompt",
          "--allow-net",
          "main.ts",
          etcd.endpoint,
        ]);
        assert.match(
          narrow.stdout,
          new RegExp(
            `^error: missing Deno permissions: the GRPC_\\* and proxy variables \\(etcd at ${etcd.endpoint} has no JSON gateway: the gRPC client reads them\\): ${
              GRPC_ENV.replace(/\*/g, "\\*")
            }; read access to \\S+/proto .*; run again with ${
              GRPC_ENV.replace(/\*/g, "\\*")
            } --allow-read=\\S+\n$`,
          ),
        );
        const r = await deno(dir, [
          "run",
          "-q",
          "--no-prompt",
          "--allow-net",
          "--allow-env",
          "--allow-read",
          "main.ts",
          etcd.endpoint,
        ]);
        assert.equal(r.stderr, "");
        assert.equal(r.stdout, '["app-1"]\n');
      },
    );

    await t.step(
      "a packed copy served over HTTP, as JSR serves the package: the library and locksmithctl",
      async () => {
        const served = `${dir}/served`;
        await Deno.mkdir(served);
        for (const file of ["mod.ts", "ctl.ts", "daemon.ts", "deno.json"]) {
          await Deno.copyFile(`${REPO_ROOT}${file}`, `${served}/${file}`);
        }
        await cp(`${REPO_ROOT}lib`, `${served}/lib`, { recursive: true });
        const server = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen: () => {} },
          async (req) => {
            const path = new URL(req.url).pathname;
            try {
              const body = await Deno.readFile(`${served}${path}`);
              return new Response(body, {
                headers: { "content-type": "application/typescript" },
              });
            } catch {
              return new Response("not found", { status: 404 });
            }
          },
        );
        try {
          const base = `http://127.0.0.1:${server.addr.port}`;
          const allow = `--allow-import=127.0.0.1:${server.addr.port}`;
          await Deno.writeTextFile(`${dir}/remote.ts`, app(`${base}/mod.ts`));
          const r = await deno(dir, [
            "run",
            "-q",
            "--no-prompt",
            allow,
            "--allow-net",
            "--allow-env",
            "--allow-read",
            "remote.ts",
            etcd.endpoint,
          ]);
          assert.equal(r.stdout, '["app-1"]\n', r.stderr);
          const ctl = await deno(dir, [
            "run",
            "-q",
            "--no-prompt",
            allow,
            "--allow-net",
            "--allow-env",
            "--allow-read",
            `${base}/ctl.ts`,
            "status",
            "--endpoint",
            etcd.endpoint,
            "--group",
            "forms",
          ]);
          assert.equal(ctl.stderr, "");
          assert.equal(ctl.stdout, "Available: 1\nMax: 1\n");
        } finally {
          await server.shutdown();
        }
      },
    );

    await t.step(
      "the README's plain flags: locksmithctl names the variables to add in one line, and works with them",
      async () => {
        const plain = ["run", "--no-prompt", "--allow-net", "--allow-read"];
        const status = ["ctl.ts", "status", "--endpoint", etcd.endpoint];
        const short = await deno(REPO_ROOT, [...plain, ...status]);
        assert.equal(short.code, 2);
        assert.equal(
          short.stderr,
          `locksmithctl: missing Deno permissions: the GRPC_* and proxy variables (etcd at ${etcd.endpoint} has no JSON gateway: the gRPC client reads them): ${GRPC_ENV}; run again with ${GRPC_ENV}\n`,
        );
        const r = await deno(REPO_ROOT, [...plain, GRPC_ENV, ...status]);
        assert.equal(r.stderr, "");
        assert.equal(r.stdout, "Available: 1\nMax: 1\n");
      },
    );

    await t.step("the tasks: deno task ctl", async () => {
      const r = await deno(REPO_ROOT, [
        "task",
        "-q",
        "ctl",
        "status",
        "--endpoint",
        etcd.endpoint,
      ]);
      assert.equal(r.stderr, "");
      assert.equal(r.stdout, "Available: 1\nMax: 1\n");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
    await etcd.close();
  }
});

Deno.test("the package's code names npm packages by full specifiers, pinned as deno.json's imports pin them", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`));
  const pinned = new Set(
    Object.values(config.imports as Record<string, string>),
  );
  const files = ["mod.ts", "ctl.ts", "daemon.ts"];
  for await (const entry of walk(`${REPO_ROOT}lib`)) files.push(entry);
  let seen = 0;
  for (const file of files) {
    // The code, without JSDoc and comment lines (examples import the package).
    const text = (await Deno.readTextFile(
      file.startsWith("/") ? file : `${REPO_ROOT}${file}`,
    )).split("\n").filter((line) => !/^\s*(\*|\/\/|\/\*)/.test(line))
      .join("\n");
    for (const m of text.matchAll(/(?:from |import\()"([^".][^"]*)"/g)) {
      const spec = m[1]!;
      if (spec.startsWith("node:")) continue;
      assert.ok(
        pinned.has(spec),
        `${file}: ${spec} is not one of deno.json's imports (a bare name or another version)`,
      );
      seen++;
    }
  }
  assert.ok(seen > 10, `${seen} npm imports`);
});

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(path);
    else if (e.name.endsWith(".ts")) yield path;
  }
}

Deno.test("deno publish finds no dynamic import it cannot analyze, and no other warning", async () => {
  const r = await deno(REPO_ROOT, ["publish", "--dry-run", "--allow-dirty"]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout + r.stderr, /warning/i);
});
