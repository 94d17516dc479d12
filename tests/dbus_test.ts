/**
 * The D-Bus layer against a real private bus (dbus-daemon, python-dbusmock's
 * logind, an update_engine stand-in), plus pure tests of the parsers.
 */

import assert from "node:assert/strict";
import { type DbusHarness, startDbus } from "./harness/dbus.ts";
import { REPO_ROOT } from "./harness/permissions.ts";
import {
  busPermissionFlags,
  connectSystemBus,
  DbusCallError,
  DISCONNECTED_ERROR,
  INVALID_SIGNATURE_ERROR,
  NO_REPLY_ERROR,
  parseBusAddress,
  SystemBusUnavailableError,
} from "../lib/dbus/system_bus.ts";
import {
  emitNeedReboot,
  IDLE,
  NEED_REBOOT,
  parseStatusUpdate,
  UpdateEngineClient,
} from "../lib/dbus/update_engine.ts";
import {
  rebootNeedFrom,
  type UpdateStatusSource,
} from "../lib/machine/reboot_need.ts";
import { SentinelFileSource } from "../lib/host/sentinel.ts";
import { LogindRebooter } from "../lib/dbus/logind.ts";
import { UsageError } from "../lib/common/errors.ts";

/** Runs `fn` with a fresh private bus, always torn down. */
async function withBus(
  fn: (h: DbusHarness) => Promise<void>,
  options: Parameters<typeof startDbus>[0] = {},
): Promise<void> {
  const h = await startDbus(options);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

/** Resolves with the first `count` operations a subscription sees (or fails after `ms`). */
async function collect(
  source: UpdateStatusSource,
  count: number,
  action: () => Promise<void>,
  ms = 5_000,
): Promise<string[]> {
  const seen: string[] = [];
  let done = (): void => {};
  const enough = new Promise<void>((resolve) => done = resolve);
  const unsubscribe = await source.subscribe((operation) => {
    seen.push(operation);
    if (seen.length >= count) done();
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await action();
    await Promise.race([
      enough,
      new Promise<void>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `saw ${JSON.stringify(seen)} within ${ms} ms, wanted ${count}`,
              ),
            ),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await unsubscribe();
  }
  return seen;
}

const VALID_BODY = [1700000000n, 0.5, NEED_REBOOT, "3815.2.0", 123456n];

// ---------------------------------------------------------------- pure

Deno.test("parseStatusUpdate accepts update_engine's five arguments", () => {
  assert.deepEqual(parseStatusUpdate(VALID_BODY, "xdssx"), {
    lastCheckedTime: 1700000000n,
    progress: 0.5,
    currentOperation: NEED_REBOOT,
    newVersion: "3815.2.0",
    newSize: 123456n,
  });
});

Deno.test("parseStatusUpdate accepts safe integer numbers for int64 fields", () => {
  const status = parseStatusUpdate([0, 0, IDLE, "", 7]);
  assert.ok(!("error" in status));
  assert.equal(status.lastCheckedTime, 0n);
  assert.equal(status.newSize, 7n);
});

Deno.test("parseStatusUpdate reports a wrong signature", () => {
  assert.deepEqual(parseStatusUpdate(VALID_BODY, "xdss"), {
    error: 'signature is "xdss", expected "xdssx"',
  });
});

Deno.test("parseStatusUpdate reports a wrong number of arguments", () => {
  assert.deepEqual(parseStatusUpdate(VALID_BODY.slice(0, 4)), {
    error: "has 4 arguments, expected 5",
  });
  assert.deepEqual(parseStatusUpdate([...VALID_BODY, "extra"]), {
    error: "has 6 arguments, expected 5",
  });
});

Deno.test("parseStatusUpdate names the argument of the wrong type", () => {
  const cases: Array<[number, unknown, RegExp]> = [
    [0, "1700000000", /argument 1 \(last_checked_time\) is string/],
    [0, 1.5, /argument 1 .* is number, expected int64/],
    [1, "0.5", /argument 2 \(progress\) is string/],
    [1, Number.NaN, /argument 2 \(progress\) is NaN/],
    [2, 42, /argument 3 \(current_operation\) is number/],
    [2, "", /argument 3 \(current_operation\) is empty/],
    [3, null, /argument 4 \(new_version\) is null/],
    [4, [1], /argument 5 \(new_size\) is array/],
  ];
  for (const [index, value, expected] of cases) {
    const body: unknown[] = [...VALID_BODY];
    body[index] = value;
    const result = parseStatusUpdate(body);
    assert.ok("error" in result, `index ${index} value ${String(value)}`);
    assert.match(result.error, expected);
  }
});

Deno.test("parseStatusUpdate never throws on non-array input", () => {
  for (const body of [undefined, null, "x", 5, { length: 5 }]) {
    const result = parseStatusUpdate(body);
    assert.ok("error" in result);
    assert.match(result.error, /expected an array/);
  }
});

Deno.test("parseBusAddress reads unix paths, %-escapes, lists and tcp", () => {
  assert.deepEqual(parseBusAddress("unix:path=/run/dbus/system_bus_socket"), {
    transport: "unix",
    path: "/run/dbus/system_bus_socket",
  });
  assert.deepEqual(parseBusAddress("unix:path=/tmp/a%20b,guid=0123"), {
    transport: "unix",
    path: "/tmp/a b",
  });
  assert.deepEqual(
    parseBusAddress("unix:abstract=/tmp/x;unix:path=/run/bus"),
    { transport: "unix", path: "/run/bus" },
  );
  assert.deepEqual(parseBusAddress("tcp:host=127.0.0.1,port=5555"), {
    transport: "tcp",
    host: "127.0.0.1",
    port: 5555,
  });
});

Deno.test("parseBusAddress rejects addresses with no usable endpoint", () => {
  assert.throws(() => parseBusAddress("unix:abstract=/tmp/x"), UsageError);
  assert.throws(() => parseBusAddress("nonsense"), /no "transport:" prefix/);
  assert.throws(() => parseBusAddress("unix:path"), /is not key=value/);
  assert.throws(() => parseBusAddress(""), /no usable endpoint/);
});

Deno.test("busPermissionFlags names the socket for read, write and net, and sys=uid", () => {
  assert.deepEqual(busPermissionFlags({ transport: "unix", path: "/s" }), [
    "--allow-read=/s",
    "--allow-write=/s",
    "--allow-net=unix:/s",
    "--allow-sys=uid",
  ]);
});

// ---------------------------------------------------------------- system bus

Deno.test("connecting to an absent bus fails with one line naming the address", async () => {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-nobus-" });
  try {
    const address = `unix:path=${dir}/bus`;
    const error = await connectSystemBus({ address }).then(
      () => assert.fail("connected"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof SystemBusUnavailableError);
    assert.match(error.message, new RegExp(`at ${address}: .*ENOENT`));
    assert.match(error.message, /is dbus running\?/);
    assert.doesNotMatch(error.message, /\n/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("when the bus dies, the connection reports closed and calls fail as Disconnected", async () => {
  await withBus(async (h) => {
    const bus = await h.connect();
    const engine = new UpdateEngineClient(bus);
    await h.killBus();
    await bus.closed;
    assert.equal(bus.isClosed, true);
    await assert.rejects(
      engine.getStatus(),
      (e: unknown) =>
        e instanceof DbusCallError && e.errorName === DISCONNECTED_ERROR,
    );
  }, { logind: false });
});

// ---------------------------------------------------------------- update_engine

Deno.test("GetStatus returns update_engine's status", async () => {
  await withBus(async (h) => {
    h.updateEngine.setStatus({
      lastCheckedTime: 1700000000n,
      progress: 1,
      currentOperation: NEED_REBOOT,
      newVersion: "3815.2.0",
      newSize: 987n,
    });
    const engine = new UpdateEngineClient(await h.connect());
    assert.deepEqual(await engine.getStatus(), {
      lastCheckedTime: 1700000000n,
      progress: 1,
      currentOperation: NEED_REBOOT,
      newVersion: "3815.2.0",
      newSize: 987n,
    });
    assert.equal(await engine.currentOperation(), NEED_REBOOT);
    assert.equal(h.updateEngine.getStatusCalls, 2);
  }, { logind: false });
});

Deno.test("update_engine absent from the bus gives undefined, not an error", async () => {
  await withBus(async (h) => {
    const engine = new UpdateEngineClient(await h.connect());
    assert.equal(await engine.getStatus(), undefined);
    assert.equal(await engine.currentOperation(), undefined);
    await h.updateEngine.start();
    assert.equal(await engine.currentOperation(), IDLE);
    await h.updateEngine.stop();
    assert.equal(await engine.currentOperation(), undefined);
  }, { logind: false, updateEngine: false });
});

Deno.test("a GetStatus reply of the wrong shape is an InvalidSignature error", async () => {
  await withBus(async (h) => {
    h.updateEngine.setRawReply({ signature: "s", body: ["idle"] });
    const engine = new UpdateEngineClient(await h.connect());
    await assert.rejects(engine.getStatus(), (e: unknown) => {
      assert.ok(e instanceof DbusCallError);
      assert.equal(e.errorName, INVALID_SIGNATURE_ERROR);
      assert.match(
        e.message,
        /^com\.coreos\.update1\.Manager\.GetStatus failed: .*InvalidSignature: reply signature is "s"/,
      );
      return true;
    });
  }, { logind: false });
});

Deno.test("a GetStatus that gets no reply fails with NoReply after the timeout", async () => {
  await withBus(async (h) => {
    h.updateEngine.setSilent(true);
    const engine = new UpdateEngineClient(await h.connect(), {
      timeoutMs: 100,
    });
    const started = Date.now();
    await assert.rejects(engine.getStatus(), (e: unknown) => {
      assert.ok(e instanceof DbusCallError);
      assert.equal(e.errorName, NO_REPLY_ERROR);
      assert.match(
        e.message,
        /no reply from com\.coreos\.update1 within 100 ms/,
      );
      return true;
    });
    assert.ok(Date.now() - started < 2_000);
    h.updateEngine.setSilent(false);
    assert.equal(await engine.currentOperation(), IDLE);
  }, { logind: false });
});

Deno.test("a StatusUpdate signal reaches the subscriber with its current operation", async () => {
  await withBus(async (h) => {
    const engine = new UpdateEngineClient(await h.connect());
    const seen = await collect(engine, 2, async () => {
      await h.updateEngine.emit({
        currentOperation: "UPDATE_STATUS_DOWNLOADING",
      });
      await h.updateEngine.emit({ currentOperation: NEED_REBOOT });
    });
    assert.deepEqual(seen, ["UPDATE_STATUS_DOWNLOADING", NEED_REBOOT]);
  }, { logind: false });
});

Deno.test("malformed and foreign StatusUpdate signals are logged and ignored; later good ones still arrive", async () => {
  await withBus(async (h) => {
    const logged: string[] = [];
    const engine = new UpdateEngineClient(await h.connect(), {
      log: (line) => logged.push(line),
    });
    const seen = await collect(engine, 1, async () => {
      const ue = h.updateEngine;
      // wrong types: current_operation an int32, sizes as strings
      await ue.emitRaw({
        signature: "xdisx",
        body: [0n, 0, 7, "", 0n],
      });
      await ue.emitRaw({
        signature: "sdsss",
        body: ["0", 0, NEED_REBOOT, "", "0"],
      });
      // wrong arity
      await ue.emitRaw({ signature: "xds", body: [0n, 0, NEED_REBOOT] });
      await ue.emitRaw({ signature: "", body: [] });
      await ue.emitRaw({
        signature: "xdssxs",
        body: [0n, 0, NEED_REBOOT, "", 0n, "extra"],
      });
      // right body, foreign interface / member / path: not update_engine's
      const good = [0n, 0, NEED_REBOOT, "", 0n];
      await ue.emitRaw({
        signature: "xdssx",
        body: good,
        interface: "org.example.Foreign",
      });
      await ue.emitRaw({ signature: "xdssx", body: good, member: "Other" });
      await ue.emitRaw({ signature: "xdssx", body: good, path: "/elsewhere" });
      // and finally a good one
      await ue.emit({ currentOperation: "UPDATE_STATUS_FINALIZING" });
    });
    assert.deepEqual(seen, ["UPDATE_STATUS_FINALIZING"]);
    assert.equal(logged.length, 5, logged.join("\n"));
    assert.match(logged[0]!, /malformed StatusUpdate .*signature is "xdisx"/);
    assert.match(logged[2]!, /signature is "xds"/);
    for (const line of logged) assert.doesNotMatch(line, /\n/);
  }, { logind: false });
});

Deno.test("a subscriber that throws is logged and keeps receiving", async () => {
  await withBus(async (h) => {
    const logged: string[] = [];
    const engine = new UpdateEngineClient(await h.connect(), {
      log: (line) => logged.push(line),
    });
    let calls = 0;
    let second = (): void => {};
    const done = new Promise<void>((r) => second = r);
    const unsubscribe = await engine.subscribe(() => {
      calls++;
      if (calls === 2) second();
      throw new Error("listener bug");
    });
    try {
      await h.updateEngine.emit({ currentOperation: IDLE });
      await h.updateEngine.emit({ currentOperation: NEED_REBOOT });
      await done;
    } finally {
      await unsubscribe();
    }
    assert.equal(calls, 2);
    assert.match(logged[0]!, /listener failed .*listener bug/);
  }, { logind: false });
});

Deno.test("after unsubscribe no more StatusUpdate calls are made", async () => {
  await withBus(async (h) => {
    const bus = await h.connect();
    const engine = new UpdateEngineClient(bus);
    const seen: string[] = [];
    const unsubscribe = await engine.subscribe((op) => seen.push(op));
    await unsubscribe();
    await h.updateEngine.emit({ currentOperation: NEED_REBOOT });
    await bus.flush();
    assert.deepEqual(seen, []);
  }, { logind: false });
});

Deno.test("emitNeedReboot from another connection reaches a subscriber, whoever owns the name", async () => {
  await withBus(async (h) => {
    const engine = new UpdateEngineClient(await h.connect());
    const sender = await h.connect();
    const seen = await collect(engine, 1, () => emitNeedReboot(sender));
    assert.deepEqual(seen, [NEED_REBOOT]);
  }, { logind: false, updateEngine: false });
});

Deno.test("a process with only the narrow D-Bus permissions can send need-reboot", async () => {
  await withBus(async (h) => {
    const script = `${h.dir}/send.ts`;
    await Deno.writeTextFile(
      script,
      `import { connectSystemBus } from "${REPO_ROOT}lib/dbus/system_bus.ts";
import { emitNeedReboot } from "${REPO_ROOT}lib/dbus/update_engine.ts";
try {
  const bus = await connectSystemBus();
  try { await emitNeedReboot(bus); } finally { await bus.close(); }
} catch (error) {
  console.error((error as Error).message);
  Deno.exit(1);
}
`,
    );
    const run = (flags: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-q",
          "--no-prompt",
          `--config=${REPO_ROOT}deno.json`,
          "--allow-env=DBUS_SYSTEM_BUS_ADDRESS",
          ...flags,
          script,
        ],
        cwd: REPO_ROOT,
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          HOME: Deno.env.get("HOME") ?? "/root",
          NO_COLOR: "1",
          ...h.env,
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();

    const engine = new UpdateEngineClient(await h.connect());
    let result: Deno.CommandOutput | undefined;
    const seen = await collect(engine, 1, async () => {
      result = await run(h.denoFlags);
    }, 30_000);
    assert.equal(
      result?.code,
      0,
      new TextDecoder().decode(result?.stderr),
    );
    assert.deepEqual(seen, [NEED_REBOOT]);

    const denied = await run(
      h.denoFlags.filter((f) => f !== "--allow-sys=uid"),
    );
    const stderr = new TextDecoder().decode(denied.stderr).trim();
    assert.equal(denied.code, 1);
    assert.equal(
      stderr,
      `cannot connect to the D-Bus system bus at ${h.address}: missing Deno permissions --allow-sys=uid`,
    );
  }, { logind: false });
});

// ---------------------------------------------------------------- sentinel

Deno.test("the sentinel file's appearance and removal are seen by a subscriber", async () => {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-sentinel-" });
  try {
    const path = `${dir}/reboot-required`;
    const source = new SentinelFileSource(path, { pollMs: 20 });
    assert.equal(source.name, `sentinel file ${path}`);
    assert.equal(await source.currentOperation(), IDLE);
    const seen: string[] = [];
    let changed = (): void => {};
    const next = (): Promise<void> => new Promise((r) => changed = r);
    const unsubscribe = await source.subscribe((operation) => {
      seen.push(operation);
      changed();
    });
    try {
      const appeared = next();
      await Deno.writeTextFile(path, "*** System restart required ***\n");
      await appeared;
      const removed = next();
      await Deno.remove(path);
      await removed;
    } finally {
      await unsubscribe();
    }
    assert.deepEqual(seen, [NEED_REBOOT, IDLE]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("waitUntilNeeded resolves at once when the sentinel already exists, and false on abort", async () => {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-sentinel-" });
  try {
    const path = `${dir}/reboot-required`;
    const need = rebootNeedFrom(new SentinelFileSource(path, { pollMs: 20 }));
    assert.equal(await need.neededBy(), undefined);
    const abort = new AbortController();
    const waiting = need.waitUntilNeeded(abort.signal);
    abort.abort();
    assert.equal(await waiting, undefined);

    const later = need.waitUntilNeeded(new AbortController().signal);
    await Deno.writeTextFile(path, "");
    assert.equal(await later, `sentinel file ${path}`);
    assert.equal(
      await need.waitUntilNeeded(new AbortController().signal),
      `sentinel file ${path}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("waitUntilNeeded on update_engine resolves on the need-reboot signal", async () => {
  await withBus(async (h) => {
    const need = rebootNeedFrom(new UpdateEngineClient(await h.connect()));
    assert.equal(need.name, "update_engine");
    assert.equal(await need.neededBy(), undefined);
    const waiting = need.waitUntilNeeded(new AbortController().signal);
    // let the subscription and the GetStatus happen first
    while (h.updateEngine.getStatusCalls < 2) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await h.updateEngine.emit({ currentOperation: NEED_REBOOT });
    assert.equal(await waiting, "update_engine");
  }, { logind: false });
});

Deno.test("a sentinel file older than this boot is ignored, and said so once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "locksmith-sentinel-" });
  try {
    const path = `${dir}/reboot-required`;
    await Deno.writeTextFile(path, "");
    await Deno.utime(
      path,
      new Date("2026-01-01T00:00:00Z"),
      new Date("2026-01-01T00:00:00Z"),
    );
    const lines: string[] = [];
    const source = new SentinelFileSource(path, {
      pollMs: 20,
      bootTime: new Date("2026-02-01T00:00:00Z"),
      log: (line) => lines.push(line),
    });
    assert.equal(await source.currentOperation(), IDLE);
    assert.equal(await source.currentOperation(), IDLE);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      /reboot sentinel .* was last modified at 2026-01-01T00:00:00.000Z, before this boot \(2026-02-01T00:00:00.000Z\): ignoring it/,
    );
    // Touched after boot: a new reboot is needed.
    await Deno.utime(path, new Date(), new Date());
    assert.equal(await source.currentOperation(), NEED_REBOOT);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------- logind

Deno.test("reboot() calls logind's Reboot(false), which the mock records", async () => {
  await withBus(async (h) => {
    const rebooter = new LogindRebooter(await h.connect());
    assert.deepEqual(await h.logind.rebootCalls(), []);
    await rebooter.reboot();
    assert.deepEqual(await h.logind.rebootCalls(), [false]);
  });
});

Deno.test("activeSessions counts logind's sessions", async () => {
  await withBus(async (h) => {
    const rebooter = new LogindRebooter(await h.connect());
    assert.equal(await rebooter.activeSessions(), 0);
    await h.logind.addSession({ id: "c1", uid: 1000, user: "core" });
    assert.equal(await rebooter.activeSessions(), 1);
    await h.logind.addSession({ id: "c2", uid: 1001, user: "ops" });
    assert.deepEqual(
      (await rebooter.listSessions()).map((s) => [s.id, s.uid, s.user]).sort(),
      [["c1", 1000, "core"], ["c2", 1001, "ops"]],
    );
  });
});

Deno.test("reboot() without logind fails with one line naming the method and the D-Bus error", async () => {
  await withBus(async (h) => {
    const rebooter = new LogindRebooter(await h.connect());
    await assert.rejects(rebooter.reboot(), (e: unknown) => {
      assert.ok(e instanceof DbusCallError);
      assert.equal(e.method, "org.freedesktop.login1.Manager.Reboot");
      assert.equal(e.errorName, "org.freedesktop.DBus.Error.ServiceUnknown");
      assert.match(
        e.message,
        /^org\.freedesktop\.login1\.Manager\.Reboot failed: org\.freedesktop\.DBus\.Error\.ServiceUnknown: /,
      );
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
    await assert.rejects(rebooter.activeSessions(), /ListSessions failed/);
  }, { logind: false });
});

Deno.test("five private buses run at once, each with its own logind", async () => {
  const buses = await Promise.all(
    Array.from({ length: 5 }, () => startDbus()),
  );
  try {
    assert.equal(new Set(buses.map((b) => b.address)).size, 5);
    const [first] = buses;
    await new LogindRebooter(await first!.connect()).reboot();
    const counts = await Promise.all(
      buses.map(async (b) => (await b.logind.rebootCalls()).length),
    );
    assert.deepEqual(counts, [1, 0, 0, 0, 0]);
  } finally {
    await Promise.all(buses.map((b) => b.close()));
  }
});
