/**
 * locksmithctl as a subprocess against endpoints that misbehave: a black
 * hole listed before a healthy member, and etcd with auth on (the error
 * kinds of `--json` for refused credentials and denied permissions).
 */

import assert from "node:assert/strict";
import { startEtcd } from "./harness/etcd.ts";
import { startBlackHole } from "./harness/black_hole.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";

async function etcdctl(endpoint: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("etcdctl", {
    args: [`--endpoints=${endpoint}`, ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `etcdctl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

Deno.test("every locksmithctl command succeeds 20 times out of 20 with a black hole listed first", async () => {
  const etcd = await startEtcd();
  const hole = startBlackHole();
  try {
    const endpoint = `${hole.url},${etcd.endpoint}`;
    const ctl = (...args: string[]) =>
      runCtlProcess([
        ...args,
        "--endpoint",
        endpoint,
        "--timeout",
        "2s",
        "--group",
        "hole",
      ]);
    const failures: string[] = [];
    for (let i = 0; i < 20; i++) {
      for (
        const args of [
          ["lock", "m1"],
          ["status"],
          ["set-max", i % 2 === 0 ? "2" : "1"],
          ["unlock", "m1"],
        ]
      ) {
        const r = await ctl(...args);
        if (r.code !== 0) failures.push(`${args.join(" ")}: ${r.stderr}`);
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(hole.accepted > 0, "the black hole was tried");
  } finally {
    await hole.close();
    await etcd.close();
  }
});

Deno.test("with etcd auth on, --json names refused credentials and denied permissions by their own kinds", async () => {
  const etcd = await startEtcd();
  const endpoint = etcd.endpoint;
  try {
    await etcdctl(endpoint, "user", "add", "root:rootpw");
    await etcdctl(endpoint, "role", "add", "root");
    await etcdctl(endpoint, "user", "grant-role", "root", "root");
    await etcdctl(endpoint, "user", "add", "nobody:nobodypw");
    await etcdctl(endpoint, "auth", "enable");
    const ctl = (...args: string[]) =>
      runCtlProcess([...args, "--endpoint", endpoint, "--json"]);
    const wrong = await ctl(
      "status",
      "--etcd-username",
      "root",
      "--etcd-password",
      "wrong",
    );
    assert.equal(wrong.code, 1);
    assert.equal(JSON.parse(wrong.stdout).error, "etcd_auth_failed");
    assert.match(
      wrong.stderr,
      /^Error reading status: etcd at .* refused the credentials: .*authentication failed/,
    );
    const denied = await ctl(
      "lock",
      "m1",
      "--etcd-username",
      "nobody",
      "--etcd-password",
      "nobodypw",
    );
    assert.equal(denied.code, 1);
    assert.equal(JSON.parse(denied.stdout).error, "etcd_permission_denied");
    assert.match(denied.stderr, /^Error locking: etcd at .* denied access: /);
    const none = await ctl("status");
    assert.equal(none.code, 1);
    assert.equal(JSON.parse(none.stdout).error, "etcd_auth_failed");
    const ok = await ctl(
      "lock",
      "m1",
      "--etcd-username",
      "root",
      "--etcd-password",
      "rootpw",
    );
    assert.equal(ok.code, 0, ok.stderr);
  } finally {
    await etcd.close();
  }
});
