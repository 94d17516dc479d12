/**
 * locksmith used the ways its users use it, from a directory outside this
 * checkout with no local node_modules (npm packages from Deno's global
 * cache, as for a package installed from JSR): the library imported by a
 * separate app with only `--allow-net`, and both programs run with exactly
 * the plain flags the README gives, and with the permission sets.
 */

import assert from "node:assert/strict";
import { cp } from "node:fs/promises";
import { startEtcd } from "./harness/etcd.ts";
import { startDbus } from "./harness/dbus.ts";
import { type CtlResult, runDeno } from "./harness/ctl_process.ts";
import { REPO_ROOT } from "./harness/permissions.ts";

/** Copies the package's code into `dir/locksmith`, in a workspace with `dir/app`. */
async function installPackage(dir: string): Promise<string> {
  const pkg = `${dir}/locksmith`;
  await Deno.mkdir(pkg, { recursive: true });
  for (const file of ["mod.ts", "ctl.ts", "daemon.ts"]) {
    await Deno.copyFile(`${REPO_ROOT}${file}`, `${pkg}/${file}`);
  }
  await Deno.copyFile(`${REPO_ROOT}deno.lock`, `${dir}/deno.lock`);
  await cp(`${REPO_ROOT}lib`, `${pkg}/lib`, { recursive: true });
  const config = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`));
  // Only a workspace root may set these.
  const { nodeModulesDir: _, allowScripts, ...member } = config;
  await Deno.writeTextFile(`${pkg}/deno.json`, JSON.stringify(member));
  await Deno.mkdir(`${dir}/app`);
  await Deno.writeTextFile(`${dir}/app/deno.json`, "{}");
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({
      workspace: ["./locksmith", "./app"],
      nodeModulesDir: "none",
      allowScripts,
    }),
  );
  return pkg;
}

/** What this machine's Deno needs to fetch npm packages: cache, proxy, extra CAs (Deno honours NODE_EXTRA_CA_CERTS). */
const PASSED_ENV: Record<string, string> = Object.fromEntries(
  [
    "DENO_DIR",
    "DENO_CERT",
    "NODE_EXTRA_CA_CERTS",
    "DENO_TLS_CA_STORE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "NPM_CONFIG_REGISTRY",
  ].flatMap((name) => {
    const value = Deno.env.get(name);
    return value === undefined ? [] : [[name, value]];
  }),
);

function deno(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<CtlResult> {
  return runDeno(args, {
    cwd,
    env: { HOME: Deno.env.get("HOME") ?? "/root", ...PASSED_ENV, ...env },
  });
}

Deno.test("installed outside a checkout, with no local node_modules", async (t) => {
  const etcd = await startEtcd();
  const dir = await Deno.makeTempDir({ prefix: "locksmith-install-" });
  try {
    const pkg = await installPackage(dir);
    // Fetch the npm packages into Deno's global cache (nothing local).
    const install = await deno(dir, ["install", "-q"]);
    assert.equal(install.code, 0, install.stderr);
    assert.equal(
      await Deno.stat(`${dir}/node_modules`).then(() => true, () => false),
      false,
      "no local node_modules",
    );

    await t.step(
      "a separate app imports the library as @locksmith/locksmith and uses it with only --allow-net",
      async () => {
        await Deno.writeTextFile(
          `${dir}/app/main.ts`,
          `import {
  lockSlot,
  openEtcdLockStore,
  SemaphoreRefusedError,
  unlockSlot,
} from "@locksmith/locksmith";

const store = await openEtcdLockStore(
  { endpoints: [Deno.args[0]!], timeoutMs: 5_000 },
  "library",
);
try {
  await lockSlot(store, "app-1");
  try {
    await lockSlot(store, "app-2");
  } catch (error) {
    console.log(error instanceof SemaphoreRefusedError ? error.reason : "other");
  }
  const { revision } = await store.read();
  const waiting = store.waitForChange(revision, 5_000);
  await unlockSlot(store, "app-1");
  console.log(await waiting);
  console.log(JSON.stringify((await store.read()).doc));
} finally {
  await store.close();
}
`,
        );
        const r = await deno(dir, [
          "run",
          "--no-prompt",
          "--allow-net",
          "app/main.ts",
          etcd.endpoint,
        ]);
        assert.equal(r.stderr, "");
        assert.equal(
          r.stdout,
          'semaphore_full\nchanged\n{"semaphore":1,"max":1,"holders":[]}\n',
        );
        assert.equal(r.code, 0);
      },
    );

    await t.step(
      "locksmithctl with the README's plain flags: --allow-net --allow-read",
      async () => {
        const ctl = (...args: string[]) =>
          deno(pkg, [
            "run",
            "--no-prompt",
            "--allow-net",
            "--allow-read",
            "ctl.ts",
            ...args,
            "--endpoint",
            etcd.endpoint,
          ]);
        for (
          const args of [["lock", "n1"], ["set-max", "2"], ["unlock", "n1"]]
        ) {
          const r = await ctl(...args);
          assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
        }
        const status = await ctl("status");
        assert.equal(status.stdout, "Available: 2\nMax: 2\n");
        const help = await deno(pkg, [
          "run",
          "--no-prompt",
          "ctl.ts",
          "--help",
        ]);
        assert.equal(help.code, 0, help.stderr);
        assert.match(help.stdout, /^locksmithctl: inspect and control/);
      },
    );

    await t.step(
      "locksmithctl with its permission set from the package's deno.json",
      async () => {
        const r = await deno(pkg, [
          "run",
          "-q",
          "-P=ctl",
          "ctl.ts",
          "status",
          "--endpoint",
          etcd.endpoint,
          "--group",
          "library",
        ]);
        assert.equal(r.stderr, "");
        assert.equal(r.stdout, "Available: 1\nMax: 1\n");
      },
    );

    await t.step(
      "without etcd's JSON gateway, locksmithctl's permission set lacks only the protocol files in Deno's npm cache, named in one line before the gRPC client loads",
      async () => {
        const noGateway = await startEtcd({
          extraArgs: ["--enable-grpc-gateway=false"],
        });
        try {
          const status = (...flags: string[]) =>
            deno(pkg, [
              "run",
              ...flags,
              "ctl.ts",
              "status",
              "--endpoint",
              noGateway.endpoint,
            ]);
          const refused = await status("-q", "-P=ctl");
          assert.equal(refused.code, 2);
          const proto =
            /^locksmithctl: missing Deno permissions: read access to (\S+\/etcd3\/1\.1\.2\/proto) \(etcd at \S+ has no JSON gateway: the gRPC client's protocol files\): --allow-read=\S+; run again with --allow-read=\S+\n$/
              .exec(refused.stderr)?.[1];
          assert.ok(proto, refused.stderr);
          assert.ok(!proto.startsWith(dir), "in Deno's global cache");
          const r = await status("-q", "-P=ctl", `--allow-read=${proto}`);
          assert.equal(r.stderr, "");
          assert.equal(r.stdout, "Available: 1\nMax: 1\n");
        } finally {
          await noGateway.close();
        }
      },
    );

    await t.step(
      "locksmithd with the README's plain flags reboots through a private bus; too few flags are one line naming them",
      async () => {
        const bus = await startDbus();
        try {
          const socket = bus.env.DBUS_SYSTEM_BUS_ADDRESS!.replace(
            /^unix:path=/,
            "",
          );
          const sentinel = `${bus.dir}/reboot-required`;
          await Deno.writeTextFile(sentinel, "");
          const env = {
            ...bus.env,
            REBOOT_STRATEGY: "etcd-lock",
            LOCKSMITHD_ENDPOINT: etcd.endpoint,
            LOCKSMITHD_MACHINE_ID: "installed-1",
            LOCKSMITHD_REBOOT_SENTINEL: sentinel,
            LOCKSMITHD_LOGIN_DELAY: "0",
          };
          const short = await deno(
            pkg,
            [
              "run",
              "--no-prompt",
              "--allow-net",
              "--allow-read",
              "--allow-env",
              "daemon.ts",
            ],
            env,
          );
          assert.equal(short.code, 2);
          assert.equal(
            short.stderr,
            `locksmithd: missing Deno permissions: write access to ${socket} (the system bus): --allow-write=${socket}; system information uid (D-Bus authentication sends the uid): --allow-sys=uid; system information osUptime (the boot time: releasing the slot after boot, stale sentinels): --allow-sys=osUptime; run again with --allow-write=${socket} --allow-sys=uid,osUptime\n`,
          );
          // Loading its modules lazily (as the tasks and units do), Deno
          // checks read access to them: one line names the folder.
          const lazy = await deno(
            pkg,
            [
              "run",
              "--no-prompt",
              "--unstable-lazy-dynamic-imports",
              "--allow-net",
              "--allow-read=/etc",
              "daemon.ts",
            ],
            env,
          );
          assert.equal(lazy.code, 1);
          const lib = `${await Deno.realPath(pkg)}/lib`;
          assert.equal(
            lazy.stderr,
            `locksmithd: cannot load its own modules (Requires read access to "${lib}/daemon/wiring/daemon_main.ts", run again with the --allow-read flag): add --allow-read=${lib}\n`,
          );
          const daemon = new Deno.Command(Deno.execPath(), {
            args: [
              "run",
              "--no-prompt",
              "--allow-net",
              "--allow-read",
              "--allow-env",
              `--allow-write=${socket}`,
              "--allow-sys=uid,osUptime",
              "daemon.ts",
            ],
            cwd: pkg,
            clearEnv: true,
            env: {
              PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
              HOME: Deno.env.get("HOME") ?? "/root",
              ...PASSED_ENV,
              ...env,
            },
            stdout: "null",
            stderr: "piped",
          }).spawn();
          const lines: string[] = [];
          const reader = daemon.stderr.pipeThrough(new TextDecoderStream())
            .getReader();
          const deadline = Date.now() + 20_000;
          while (!lines.some((l) => /reboot requested$/.test(l))) {
            assert.ok(Date.now() < deadline, lines.join("\n"));
            const { value, done } = await reader.read();
            if (done) break;
            lines.push(...value.split("\n"));
          }
          daemon.kill("SIGTERM");
          await daemon.status;
          reader.releaseLock();
          await daemon.stderr.cancel().catch(() => {});
          assert.deepEqual(await bus.logind.rebootCalls(), [false]);
        } finally {
          await bus.close();
        }
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
    await etcd.close();
  }
});
