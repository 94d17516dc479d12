/**
 * locksmithctl as a subprocess, with its real permission flags, against a
 * real etcd started by the harness.
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { startEtcd } from "./harness/etcd.ts";
import { freePorts } from "./harness/ports.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import { REPO_ROOT } from "./harness/permissions.ts";
import { makeTestCertificates } from "./harness/tls.ts";
import { DEFAULT_SEMAPHORE_KEY, semaphoreKey } from "../lib/semaphore/keys.ts";

const MACHINE_ID = (await Deno.readTextFile("/etc/machine-id").catch(() => ""))
  .trim();

/**
 * `status` of holders locked by `locksmithctl lock` (which records when and
 * by what): the holder table, every age shown as `0s`.
 */
function recorded(available: number, max: number, ids: string[]): string {
  const width = Math.max("MACHINE ID".length, ...ids.map((id) => id.length));
  const rows = ids.map((id) =>
    `${id.padEnd(width)}  0s        locksmithctl  -     -\n`
  );
  return `Available: ${available}\nMax: ${max}\n\n${
    "MACHINE ID".padEnd(width)
  }  HELD FOR  BY            BOOT  LEASE\n${rows.join("")}`;
}

/** `status` text with every age (`3s`, `1m2s`) replaced by `0s`, for comparison with {@link recorded}. */
const ageless = (text: string): string =>
  text.replace(
    /(?<= )(?:\d+[dhm])*\d*[dhms](?= )/g,
    (age) => "0s".padEnd(age.length),
  );

Deno.test("locksmithctl against a real etcd", async (t) => {
  const etcd = await startEtcd();
  const client = new Etcd3({ hosts: etcd.endpoints });
  const ctl = (args: string[], env: Record<string, string> = {}) =>
    runCtlProcess(["--endpoint", etcd.endpoint, ...args], { env });
  const raw = (key: string) => client.get(key).string();
  try {
    await t.step(
      "status of a never-written semaphore prints the initial one and writes nothing",
      async () => {
        const r = await ctl(["status"]);
        assert.equal(r.stderr, "");
        assert.equal(r.stdout, "Available: 1\nMax: 1\n");
        assert.equal(r.code, 0);
        assert.equal(await raw(DEFAULT_SEMAPHORE_KEY), null);
      },
    );

    await t.step(
      "lock is silent, status lists the holder, a second lock is refused",
      async () => {
        const lock = await ctl(["lock", "aaaa"]);
        assert.deepEqual([lock.code, lock.stdout, lock.stderr], [0, "", ""]);
        assert.equal(
          await raw(DEFAULT_SEMAPHORE_KEY),
          '{"semaphore":0,"max":1,"holders":["aaaa"]}',
        );
        const status = await ctl(["status"]);
        assert.equal(ageless(status.stdout), recorded(0, 1, ["aaaa"]));
        const second = await ctl(["lock", "bbbb"]);
        assert.equal(second.code, 1);
        assert.equal(second.stdout, "");
        assert.equal(
          second.stderr,
          "Error locking: semaphore is at 0: all 1 slot(s) are held\n",
        );
        const again = await ctl(["lock", "aaaa"]);
        assert.equal(again.code, 1);
        assert.match(again.stderr, /^Error locking: holder exists: aaaa\n$/);
      },
    );

    await t.step(
      "unlock releases; unlocking a non-holder fails with exit 1",
      async () => {
        const r = await ctl(["unlock", "aaaa"]);
        assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""]);
        const again = await ctl(["unlock", "aaaa"]);
        assert.equal(again.code, 1);
        assert.equal(
          again.stderr,
          "Error unlocking: holder does not exist: aaaa\n",
        );
        assert.equal(
          await raw(DEFAULT_SEMAPHORE_KEY),
          '{"semaphore":1,"max":1,"holders":[]}',
        );
      },
    );

    await t.step("set-max prints Old and New and keeps holders", async () => {
      assert.equal((await ctl(["lock", "m1"])).code, 0);
      const r = await ctl(["set-max", "4"]);
      assert.deepEqual([r.code, r.stdout], [0, "Old: 1\nNew: 4\n"]);
      const status = await ctl(["status"]);
      assert.equal(ageless(status.stdout), recorded(3, 4, ["m1"]));
      const zero = await ctl(["set-max", "0"]);
      assert.equal(zero.stdout, "Old: 4\nNew: 0\n");
      assert.equal(
        ageless((await ctl(["status"])).stdout),
        recorded(-1, 0, ["m1"]),
      );
      assert.equal((await ctl(["lock", "m2"])).code, 1);
      assert.equal((await ctl(["unlock", "m1"])).code, 0);
      assert.equal((await ctl(["set-max", "1"])).code, 0);
    });

    await t.step("lock and unlock default to /etc/machine-id", async () => {
      assert.match(
        MACHINE_ID,
        /^[0-9a-f]{32}$/,
        "this machine needs /etc/machine-id",
      );
      assert.equal((await ctl(["lock"])).code, 0);
      assert.equal(
        ageless((await ctl(["status"])).stdout),
        recorded(0, 1, [MACHINE_ID]),
      );
      assert.equal((await ctl(["unlock"])).code, 0);
    });

    await t.step(
      "--json gives one object per command, also for errors",
      async () => {
        const group = ["--group", "json"];
        const status = JSON.parse(
          (await ctl(["status", "--json", ...group])).stdout,
        );
        assert.deepEqual(status, {
          ok: true,
          command: "status",
          key: semaphoreKey("json"),
          available: 1,
          max: 1,
          holders: [],
          paused: false,
          pausedSince: null,
          slotTtlSeconds: null,
          settingsDefect: null,
          holderDetails: [],
          waiting: [],
          waitingCount: 0,
        });
        const lock = JSON.parse(
          (await ctl(["--json", "lock", "x", ...group])).stdout,
        );
        assert.deepEqual([lock.ok, lock.id, lock.available, lock.holders], [
          true,
          "x",
          0,
          ["x"],
        ]);
        const full = await ctl(["--json", "lock", "y", ...group]);
        assert.equal(full.code, 1);
        assert.deepEqual(JSON.parse(full.stdout), {
          ok: false,
          command: "lock",
          error: "semaphore_full",
          message: "semaphore is at 0: all 1 slot(s) are held",
        });
        const setMax = JSON.parse(
          (await ctl(["--json", "set-max", "2", ...group])).stdout,
        );
        assert.deepEqual([setMax.old, setMax.new, setMax.available], [1, 2, 1]);
        const unlock = JSON.parse(
          (await ctl(["--json", "unlock", "x", ...group])).stdout,
        );
        assert.deepEqual([unlock.ok, unlock.holders], [true, []]);
        const version = JSON.parse((await ctl(["--json", "--version"])).stdout);
        assert.match(version.version, /^\d+\.\d+\.\d+$/);
      },
    );

    await t.step(
      "--group uses the url-escaped group key and leaves the default alone",
      async () => {
        const before = await raw(DEFAULT_SEMAPHORE_KEY);
        assert.equal(
          (await ctl(["lock", "g1", "--group", "prod/database"])).code,
          0,
        );
        assert.equal(
          await raw(
            "coreos.com/updateengine/rebootlock/groups/prod%2Fdatabase/semaphore",
          ),
          '{"semaphore":0,"max":1,"holders":["g1"]}',
        );
        assert.equal(await raw(DEFAULT_SEMAPHORE_KEY), before);
      },
    );

    await t.step("LOCKSMITHCTL_ variables fill unset flags", async () => {
      const r = await runCtlProcess(["status"], {
        env: {
          LOCKSMITHCTL_ENDPOINT: etcd.endpoint,
          LOCKSMITHCTL_GROUP: "prod/database",
        },
      });
      assert.equal(ageless(r.stdout), recorded(0, 1, ["g1"]));
    });

    await t.step("a dead endpoint before a live one is skipped", async () => {
      const r = await runCtlProcess([
        "status",
        "--endpoint",
        `http://127.0.0.1:1,${etcd.endpoint}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
    });

    await t.step(
      "a corrupt document is refused by every command and left byte-for-byte",
      async () => {
        const key = semaphoreKey("corrupt");
        const bad = '{"semaphore": 1, "max": "one", "holders": []}';
        await client.put(key).value(bad);
        for (
          const args of [["status"], ["lock", "z"], ["unlock", "z"], [
            "set-max",
            "3",
          ]]
        ) {
          const r = await ctl([...args, "--group", "corrupt"]);
          assert.equal(r.code, 1, args.join(" "));
          assert.match(
            r.stderr,
            new RegExp(
              `^Error [a-z ]+: semaphore document at ${key} is corrupt: "max" is not an integer: "one"\\n$`,
            ),
          );
          assert.equal(await raw(key), bad);
        }
      },
    );

    await t.step(
      "reset needs --force, then prints what it replaced",
      async () => {
        const key = semaphoreKey("corrupt");
        const refused = await ctl(["reset", "--group", "corrupt"]);
        assert.equal(refused.code, 2);
        assert.match(refused.stderr, /add --force to confirm/);
        assert.equal(
          await raw(key),
          '{"semaphore": 1, "max": "one", "holders": []}',
        );
        const r = await ctl(["reset", "--force", "--group", "corrupt"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(
          r.stdout,
          'Replaced: {"semaphore": 1, "max": "one", "holders": []}\nNew: {"semaphore":1,"max":1,"holders":[]}\n',
        );
        assert.equal(
          (await ctl(["status", "--group", "corrupt"])).stdout,
          "Available: 1\nMax: 1\n",
        );
      },
    );

    await t.step("usage errors exit 2 with one line on stderr", async () => {
      for (
        const args of [["frob"], ["set-max", "-1"], ["set-max"], [
          "status",
          "--nope",
        ], ["lock", "a", "b"]]
      ) {
        const r = await ctl(args);
        assert.equal(r.code, 2, args.join(" "));
        assert.equal(r.stdout, "");
        assert.match(r.stderr, /^locksmithctl: [^\n]+\n$/);
      }
    });

    await t.step("help and --version print to stdout and exit 0", async () => {
      const help = await runCtlProcess(["--help"]);
      assert.equal(help.code, 0);
      assert.match(help.stdout, /Usage: locksmithctl \[flags\] COMMAND/);
      const lockHelp = await runCtlProcess(["help", "lock"]);
      assert.match(lockHelp.stdout, /^Usage: locksmithctl lock \[ID\]/);
      const version = await runCtlProcess(["--version"]);
      assert.match(version.stdout, /^locksmithctl \d+\.\d+\.\d+\n$/);
    });
  } finally {
    client.close();
    await etcd.close();
  }
});

Deno.test("locksmithctl falls back to gRPC when etcd has no JSON gateway; what that needs is one line", async () => {
  const etcd = await startEtcd({ extraArgs: ["--enable-grpc-gateway=false"] });
  const proto =
    `${REPO_ROOT}node_modules/.deno/etcd3@1.1.2/node_modules/etcd3/proto`;
  try {
    // Neither the gRPC client's variables nor its protocol files: both
    // named at once, before the client is loaded.
    const narrow = await runCtlProcess(
      ["status", "--endpoint", etcd.endpoint],
      { permissions: ["-q", "--no-prompt", "--allow-net"] },
    );
    assert.equal(narrow.code, 2);
    const why = `etcd at ${etcd.endpoint} has no JSON gateway`;
    const env =
      "--allow-env=GRPC_*,grpc_proxy,https_proxy,http_proxy,no_grpc_proxy,no_proxy";
    assert.equal(
      narrow.stderr,
      `locksmithctl: missing Deno permissions: the GRPC_* and proxy variables (${why}: the gRPC client reads them): ${env}; read access to ${proto} (${why}: the gRPC client's protocol files): --allow-read=${proto}; run again with ${env} --allow-read=${proto}\n`,
    );
    // The ctl set grants both (the protocol files in the checkout's node_modules).
    const lock = await runCtlProcess([
      "lock",
      "nogw",
      "--endpoint",
      etcd.endpoint,
    ]);
    assert.equal(lock.code, 0, lock.stderr);
    const r = await runCtlProcess(["status", "--endpoint", etcd.endpoint]);
    assert.equal(r.stderr, "");
    assert.equal(ageless(r.stdout), recorded(0, 1, ["nogw"]));
  } finally {
    await etcd.close();
  }
});

Deno.test("locksmithctl reports unreachable etcd within --timeout", async (t) => {
  await t.step(
    "status over the gateway: a refused connection fails at once, naming the endpoint",
    async () => {
      const [port] = freePorts(1);
      const r = await runCtlProcess([
        "status",
        "--endpoint",
        `http://127.0.0.1:${port}`,
      ]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `Error reading status: cannot reach etcd (http://127.0.0.1:${port}: connection refused)\n`,
      );
    },
  );

  await t.step(
    "a refused connection fails at once, naming the endpoint",
    async () => {
      const started = Date.now();
      const r = await runCtlProcess([
        "status",
        "--endpoint",
        "http://127.0.0.1:1",
      ]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^Error reading status: cannot reach etcd \(http:\/\/127\.0\.0\.1:1: port 1 is one that HTTP clients refuse to contact; run etcd on another port\)\n$/,
      );
      assert.ok(Date.now() - started < 5_000);
    },
  );

  await t.step(
    "a server that never answers fails after --timeout",
    async () => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const accepted: Deno.Conn[] = [];
      const accepting = (async () => {
        for await (const conn of listener) accepted.push(conn);
      })();
      const endpoint = `http://127.0.0.1:${
        (listener.addr as Deno.NetAddr).port
      }`;
      try {
        const started = Date.now();
        const r = await runCtlProcess([
          "lock",
          "x",
          "--endpoint",
          endpoint,
          "--timeout",
          "1s",
        ]);
        const elapsed = Date.now() - started;
        assert.equal(r.code, 1);
        assert.match(
          r.stderr,
          new RegExp(
            `^Error locking: .*${endpoint.replaceAll(".", "\\.")}.*\\n$`,
          ),
        );
        assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/);
        assert.ok(elapsed < 4_000, `took ${elapsed} ms`);
      } finally {
        listener.close();
        await accepting.catch(() => {});
        for (const c of accepted) c.close();
      }
    },
  );
});

Deno.test("locksmithctl speaks TLS: CA-only and client certificates", async (t) => {
  const certs = await makeTestCertificates();
  try {
    await t.step(
      "a CA in the system trust store (DENO_TLS_CA_STORE=system) serves every command with the ctl set alone",
      async () => {
        const etcd = await startEtcd({
          tls: {
            caFile: certs.caFile,
            certFile: certs.serverCert,
            keyFile: certs.serverKey,
            clientCertAuth: false,
          },
        });
        // SSL_CERT_FILE stands in for the system store (/etc/ssl/certs).
        const env = {
          DENO_TLS_CA_STORE: "system",
          SSL_CERT_FILE: certs.caFile,
        };
        try {
          for (
            const args of [
              ["lock", "sys1"],
              ["status"],
              ["set-max", "2"],
              ["unlock", "sys1"],
            ]
          ) {
            const r = await runCtlProcess(
              [...args, "--endpoint", etcd.endpoint],
              { env },
            );
            assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
          }
        } finally {
          await etcd.close();
        }
      },
    );

    await t.step("CA-only: --etcd-cafile is enough", async () => {
      const etcd = await startEtcd({
        tls: {
          caFile: certs.caFile,
          certFile: certs.serverCert,
          keyFile: certs.serverKey,
          clientCertAuth: false,
        },
      });
      try {
        const r = await runCtlProcess(
          [
            "lock",
            "tls1",
            "--endpoint",
            etcd.endpoint,
            "--etcd-cafile",
            certs.caFile,
          ],
          { extraRead: [certs.dir] },
        );
        assert.equal(r.code, 0, r.stderr);
        const s = await runCtlProcess(["status", "--endpoint", etcd.endpoint], {
          extraRead: [certs.dir],
          env: { LOCKSMITHCTL_ETCD_CAFILE: certs.caFile },
        });
        assert.equal(ageless(s.stdout), recorded(0, 1, ["tls1"]));
      } finally {
        await etcd.close();
      }
    });

    await t.step(
      "client certificates: refused without them, accepted with them",
      async () => {
        const etcd = await startEtcd({
          tls: {
            caFile: certs.caFile,
            certFile: certs.serverCert,
            keyFile: certs.serverKey,
            clientCertAuth: true,
          },
        });
        try {
          const tls = [
            "--endpoint",
            etcd.endpoint,
            "--etcd-cafile",
            certs.caFile,
            "--timeout",
            "2s",
          ];
          const without = await runCtlProcess(["status", ...tls], {
            extraRead: [certs.dir],
          });
          assert.equal(without.code, 1);
          assert.match(without.stderr, /^Error reading status: [^\n]+\n$/);
          const r = await runCtlProcess([
            "status",
            ...tls,
            "--etcd-certfile",
            certs.clientCert,
            "--etcd-keyfile",
            certs.clientKey,
          ], { extraRead: [certs.dir] });
          assert.equal(r.code, 0, r.stderr);
          assert.equal(r.stdout, "Available: 1\nMax: 1\n");
        } finally {
          await etcd.close();
        }
      },
    );

    await t.step("a missing TLS file is a clear error naming it", async () => {
      const r = await runCtlProcess([
        "status",
        "--endpoint",
        "https://127.0.0.1:1",
        "--etcd-cafile",
        `${certs.dir}/nope.pem`,
      ], { extraRead: [certs.dir] });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /cannot read CA file .*nope\.pem/);
    });
  } finally {
    await certs.remove();
  }
});
