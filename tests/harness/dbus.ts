/**
 * A private D-Bus "system bus" for tests: its own `dbus-daemon` on a Unix
 * socket in a temporary directory, python-dbusmock's logind template on it
 * (records `Reboot` calls instead of rebooting), and an update_engine
 * stand-in served from the test process (settable `GetStatus`, and
 * `StatusUpdate` signals, malformed ones included). Every call to
 * {@link startDbus} makes an independent bus; {@link DbusHarness.close}
 * kills its processes, closes its connections and removes its directory.
 */

import type { Message } from "dbus-next";
import dbus from "dbus-next";
import {
  busPermissionFlags,
  connectSystemBus,
  nameHasOwner,
  newSignal,
  type SystemBus,
} from "../../lib/dbus/system_bus.ts";
import {
  IDLE,
  STATUS_SIGNATURE,
  STATUS_UPDATE_SIGNAL,
  statusBody,
  UPDATE_ENGINE_INTERFACE,
  UPDATE_ENGINE_NAME,
  UPDATE_ENGINE_PATH,
  type UpdateStatus,
} from "../../lib/dbus/update_engine.ts";
import {
  LOGIND_INTERFACE,
  LOGIND_NAME,
  LOGIND_PATH,
} from "../../lib/dbus/logind.ts";

/** The Python that has python3-dbusmock (not another python on PATH). */
export const PYTHON = "/usr/bin/python3";

const INSTALL_HINT = "apt-get install -y dbus python3-dbusmock";
const MOCK_INTERFACE = "org.freedesktop.DBus.Mock";

let toolsChecked: Promise<void> | undefined;

/**
 * Throws a loud error with an install hint when `dbus-daemon` or
 * python3-dbusmock is missing. The D-Bus tests fail, never skip.
 */
export function requireDbusTools(): Promise<void> {
  toolsChecked ??= (async () => {
    const probes: Array<[string, string[], string]> = [
      ["dbus-daemon", ["--version"], "dbus-daemon"],
      [
        PYTHON,
        ["-c", "import dbusmock, dbusmock.templates.logind"],
        `${PYTHON} -m dbusmock`,
      ],
    ];
    for (const [program, args, what] of probes) {
      let ok = false;
      try {
        ok = (await new Deno.Command(program, {
          args,
          stdin: "null",
          stdout: "null",
          stderr: "null",
        }).output()).success;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      if (!ok) {
        throw new Error(
          `${what} is not available; install it with: ${INSTALL_HINT}`,
        );
      }
    }
  })();
  toolsChecked.catch(() => {
    toolsChecked = undefined;
  });
  return toolsChecked;
}

/** The logind mock (python-dbusmock `--template logind`). */
export interface LogindMock {
  /** Whether the mock process runs. */
  readonly running: boolean;
  /** The `interactive` argument of every `Reboot` call so far, in order. */
  rebootCalls(): Promise<boolean[]>;
  /** The arguments of every call of `method` on the logind manager so far. */
  calls(method: string): Promise<unknown[][]>;
  /** Forgets the recorded calls. */
  clearCalls(): Promise<void>;
  /** Adds a logged-in session (and its user and seat); returns its object path. */
  addSession(session?: {
    id?: string;
    uid?: number;
    user?: string;
    seat?: string;
  }): Promise<string>;
  /**
   * Replaces (or adds) a method of the logind manager with Python `code`
   * (python-dbusmock's AddMethod; `args` are the arguments, `ret` the
   * reply); calls are still recorded.
   */
  replaceMethod(
    method: string,
    inSignature: string,
    outSignature: string,
    code: string,
  ): Promise<void>;
  /** Makes `Reboot` fail with the D-Bus error `name` (as logind does while a block inhibitor is held). */
  refuseReboot(name?: string): Promise<void>;
  /** Makes `Reboot` succeed again (recording the call). */
  allowReboot(): Promise<void>;
  /** Stops the mock: logind leaves the bus. */
  stop(): Promise<void>;
}

/** A raw signal for {@link UpdateEngineStandIn.emitRaw}, malformed on purpose if wanted. */
export interface RawSignal {
  /** D-Bus signature of `body`. */
  readonly signature: string;
  /** The arguments. */
  readonly body: readonly unknown[];
  /** Interface (default update_engine's). */
  readonly interface?: string;
  /** Member (default `StatusUpdate`). */
  readonly member?: string;
  /** Object path (default `/com/coreos/update1`). */
  readonly path?: string;
}

/** update_engine, played by a connection of the test process. */
export interface UpdateEngineStandIn {
  /** The status `GetStatus` answers. */
  readonly status: UpdateStatus;
  /** Whether it owns `com.coreos.update1`. */
  readonly onBus: boolean;
  /** Number of `GetStatus` calls answered. */
  readonly getStatusCalls: number;
  /** Changes what `GetStatus` answers (without a signal). */
  setStatus(change: Partial<UpdateStatus>): void;
  /** Makes `GetStatus` answer this raw reply instead (`undefined` restores the real one). */
  setRawReply(reply: { signature: string; body: unknown[] } | undefined): void;
  /** While `true`, `GetStatus` calls are counted but never answered (a hung update_engine). */
  setSilent(silent: boolean): void;
  /** Called at each `GetStatus` call before it is answered (a test changes the world at that moment). */
  onGetStatus: (() => void) | undefined;
  /** Changes the status and emits `StatusUpdate` with it, like update_engine does. */
  emit(change?: Partial<UpdateStatus>): Promise<void>;
  /** Emits any signal from this connection; resolves once the bus has routed it. */
  emitRaw(signal: RawSignal): Promise<void>;
  /** Takes the name `com.coreos.update1`. */
  start(): Promise<void>;
  /** Releases the name: update_engine is no longer on the bus. */
  stop(): Promise<void>;
}

/** A private bus with its mocks. */
export interface DbusHarness {
  /** Temporary directory holding the socket, config and logs. */
  readonly dir: string;
  /** The bus socket. */
  readonly socketPath: string;
  /** The bus address, `unix:path=<dir>/bus`. */
  readonly address: string;
  /** `{ DBUS_SYSTEM_BUS_ADDRESS: address }`, for child processes. */
  readonly env: Record<string, string>;
  /** Deno flags a child process needs to connect (read, write, net and sys=uid). */
  readonly denoFlags: string[];
  /** The logind mock. */
  readonly logind: LogindMock;
  /** The update_engine stand-in. */
  readonly updateEngine: UpdateEngineStandIn;
  /** A new client connection, closed by {@link close} if still open. */
  connect(): Promise<SystemBus>;
  /** The dbus-daemon and logind mock logs, for failure messages. */
  logs(): Promise<string>;
  /** Kills the bus: every connection to it closes. */
  killBus(): Promise<void>;
  /** Closes every connection, kills every process, removes {@link dir}. */
  close(): Promise<void>;
}

/** Options of {@link startDbus}. */
export interface StartDbusOptions {
  /** Start the logind mock (default true). */
  readonly logind?: boolean;
  /** Let the update_engine stand-in own its name from the start (default true). */
  readonly updateEngine?: boolean;
  /** Initial update_engine status (default idle). */
  readonly status?: Partial<UpdateStatus>;
  /**
   * Give the logind mock the calls locksmithd warns users with, which
   * python-dbusmock's template lacks: `SetWallMessage(sb)`,
   * `ScheduleShutdown(st)` and `CancelScheduledShutdown() -> b`, recorded
   * like `Reboot` (default false: a logind without them).
   */
  readonly logindWall?: boolean;
}

/** The wall calls added by `logindWall`: name, in and out signatures, Python body. */
const WALL_METHODS: readonly [string, string, string, string][] = [
  ["SetWallMessage", "sb", "", ""],
  ["ScheduleShutdown", "st", "", ""],
  ["CancelScheduledShutdown", "", "b", "ret = True"],
];

/** A permissive system-bus-like configuration listening on `socketPath`. */
export function busConfig(socketPath: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socketPath}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
</busconfig>
`;
}

/** A spawned process whose stderr goes to a log file. */
class LoggedProcess {
  readonly #child: Deno.ChildProcess;
  readonly #piped: Promise<void>;
  readonly status: Promise<Deno.CommandStatus>;
  exited = false;

  constructor(command: string, args: string[], log: string, env = {}) {
    const file = Deno.openSync(log, { append: true, create: true });
    this.#child = new Deno.Command(command, {
      args,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#piped = this.#child.stderr.pipeTo(file.writable).catch(() => {});
    this.status = this.#child.status.then((s) => {
      this.exited = true;
      return s;
    });
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      try {
        this.#child.kill("SIGTERM");
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          this.#child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 3_000);
      await this.status;
      clearTimeout(timer);
    }
    await this.status;
    await this.#piped;
  }
}

async function tail(path: string, chars = 2000): Promise<string> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.slice(-chars);
}

async function waitFor(
  what: string,
  condition: () => Promise<boolean>,
  failure: () => Promise<string | undefined>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const problem = await failure();
    if (problem !== undefined) throw new Error(`${what}: ${problem}`);
    if (await condition().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

function unvariant(value: unknown): unknown {
  return value instanceof dbus.Variant ? value.value : value;
}

class StandIn implements UpdateEngineStandIn {
  #bus: SystemBus;
  #status: UpdateStatus;
  #raw: { signature: string; body: unknown[] } | undefined;
  #onBus = false;
  #silent = false;
  #calls = 0;
  onGetStatus: (() => void) | undefined;

  constructor(bus: SystemBus, status: Partial<UpdateStatus>) {
    this.#bus = bus;
    this.#status = {
      lastCheckedTime: 0n,
      progress: 0,
      currentOperation: IDLE,
      newVersion: "",
      newSize: 0n,
      ...status,
    };
    bus.raw.addMethodHandler((message: Message): boolean => {
      if (
        message.path !== UPDATE_ENGINE_PATH ||
        message.member !== "GetStatus" ||
        (message.interface && message.interface !== UPDATE_ENGINE_INTERFACE)
      ) return false;
      this.#calls++;
      this.onGetStatus?.();
      if (this.#silent) return true;
      const reply = this.#raw ??
        { signature: STATUS_SIGNATURE, body: statusBody(this.#status) };
      bus.raw.send(
        dbus.Message.newMethodReturn(message, reply.signature, reply.body),
      );
      return true;
    });
  }

  get status(): UpdateStatus {
    return this.#status;
  }

  get onBus(): boolean {
    return this.#onBus;
  }

  get getStatusCalls(): number {
    return this.#calls;
  }

  setStatus(change: Partial<UpdateStatus>): void {
    this.#status = { ...this.#status, ...change };
  }

  setRawReply(reply: { signature: string; body: unknown[] } | undefined): void {
    this.#raw = reply;
  }

  setSilent(silent: boolean): void {
    this.#silent = silent;
  }

  async emit(change: Partial<UpdateStatus> = {}): Promise<void> {
    this.setStatus(change);
    await this.emitRaw({
      signature: STATUS_SIGNATURE,
      body: statusBody(this.#status),
    });
  }

  async emitRaw(signal: RawSignal): Promise<void> {
    this.#bus.send(
      newSignal(
        signal.path ?? UPDATE_ENGINE_PATH,
        signal.interface ?? UPDATE_ENGINE_INTERFACE,
        signal.member ?? STATUS_UPDATE_SIGNAL,
        signal.signature,
        signal.body,
      ),
    );
    await this.#bus.flush();
  }

  async start(): Promise<void> {
    const reply = await this.#bus.raw.requestName(
      UPDATE_ENGINE_NAME,
      dbus.NameFlag.DO_NOT_QUEUE,
    );
    if (reply !== dbus.RequestNameReply.PRIMARY_OWNER) {
      throw new Error(`could not own ${UPDATE_ENGINE_NAME}: reply ${reply}`);
    }
    this.#onBus = true;
  }

  async stop(): Promise<void> {
    if (!this.#onBus) return;
    await this.#bus.raw.releaseName(UPDATE_ENGINE_NAME);
    this.#onBus = false;
  }
}

/**
 * Starts a private bus with the logind mock and the update_engine stand-in.
 * Throws with an install hint when dbus-daemon or python3-dbusmock is missing.
 */
export async function startDbus(
  options: StartDbusOptions = {},
): Promise<DbusHarness> {
  await requireDbusTools();
  // In /tmp, not $TMPDIR: a Unix socket path must stay under 108 bytes.
  const dir = await Deno.makeTempDir({
    dir: "/tmp",
    prefix: "locksmith-dbus-",
  });
  const socketPath = `${dir}/bus`;
  const address = `unix:path=${socketPath}`;
  const busLog = `${dir}/dbus-daemon.log`;
  const logindLog = `${dir}/logind.log`;
  const connections = new Set<SystemBus>();
  let daemon: LoggedProcess | undefined;
  let logindProcess: LoggedProcess | undefined;
  let control: SystemBus | undefined;

  const connect = async (): Promise<SystemBus> => {
    const bus = await connectSystemBus({ address, connectTimeoutMs: 5_000 });
    connections.add(bus);
    bus.closed.then(() => connections.delete(bus));
    return bus;
  };

  const logs = async (): Promise<string> =>
    `dbus-daemon log: ${await tail(busLog)}\nlogind mock log: ${await tail(
      logindLog,
    )}`;

  const logind: LogindMock = {
    get running() {
      return logindProcess !== undefined && !logindProcess.exited;
    },
    async calls(method: string): Promise<unknown[][]> {
      const reply = await control!.call({
        destination: LOGIND_NAME,
        path: LOGIND_PATH,
        interface: MOCK_INTERFACE,
        member: "GetMethodCalls",
        signature: "s",
        body: [method],
      });
      const rows = reply.body[0] as Array<[bigint, unknown[]]>;
      return rows.map(([, args]) => args.map(unvariant));
    },
    async rebootCalls(): Promise<boolean[]> {
      return (await logind.calls("Reboot")).map((args) => args[0] as boolean);
    },
    async clearCalls(): Promise<void> {
      await control!.call({
        destination: LOGIND_NAME,
        path: LOGIND_PATH,
        interface: MOCK_INTERFACE,
        member: "ClearCalls",
      });
    },
    async addSession(session = {}): Promise<string> {
      const reply = await control!.call({
        destination: LOGIND_NAME,
        path: LOGIND_PATH,
        interface: MOCK_INTERFACE,
        member: "AddSession",
        signature: "ssusb",
        body: [
          session.id ?? "c1",
          session.seat ?? "seat0",
          session.uid ?? 1000,
          session.user ?? "core",
          true,
        ],
      });
      return reply.body[0] as string;
    },
    async replaceMethod(method, inSignature, outSignature, code) {
      await control!.call({
        destination: LOGIND_NAME,
        path: LOGIND_PATH,
        interface: MOCK_INTERFACE,
        member: "AddMethod",
        signature: "sssss",
        body: [
          "org.freedesktop.login1.Manager",
          method,
          inSignature,
          outSignature,
          code,
        ],
      });
    },
    async refuseReboot(
      name = "org.freedesktop.login1.OperationInProgress",
    ): Promise<void> {
      await logind.replaceMethod(
        "Reboot",
        "b",
        "",
        `raise dbus.exceptions.DBusException("Operation inhibited by a block inhibitor", name="${name}")`,
      );
    },
    async allowReboot(): Promise<void> {
      await logind.replaceMethod("Reboot", "b", "", "");
    },
    async stop(): Promise<void> {
      await logindProcess?.stop();
    },
  };

  let standIn: StandIn | undefined;
  const harness: DbusHarness = {
    dir,
    socketPath,
    address,
    env: { DBUS_SYSTEM_BUS_ADDRESS: address },
    denoFlags: busPermissionFlags({ transport: "unix", path: socketPath }),
    logind,
    get updateEngine(): UpdateEngineStandIn {
      return standIn!;
    },
    connect,
    logs,
    async killBus(): Promise<void> {
      await daemon?.stop();
      await Promise.all([...connections].map((c) => c.closed));
    },
    async close(): Promise<void> {
      await Promise.all([...connections].map((c) => c.close()));
      await logindProcess?.stop();
      await daemon?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };

  try {
    await Deno.writeTextFile(`${dir}/bus.conf`, busConfig(socketPath));
    daemon = new LoggedProcess("dbus-daemon", [
      `--config-file=${dir}/bus.conf`,
      "--nofork",
      "--nopidfile",
    ], busLog);
    // The socket file exists from bind(), before listen(): the first
    // connection that succeeds says the bus is ready.
    await waitFor(
      "dbus-daemon",
      async () => {
        control = await connect();
        return true;
      },
      async () =>
        daemon!.exited ? `exited early; log: ${await tail(busLog)}` : undefined,
      10_000,
    );
    standIn = new StandIn(await connect(), options.status ?? {});
    if (options.updateEngine ?? true) await standIn.start();
    if (options.logind ?? true) {
      logindProcess = new LoggedProcess(
        PYTHON,
        [
          "-m",
          "dbusmock",
          "--template",
          "logind",
          "--system",
        ],
        logindLog,
        harness.env,
      );
      const started = logindProcess;
      await waitFor(
        "python3-dbusmock logind mock",
        () => nameHasOwner(control!, LOGIND_NAME),
        async () =>
          started.exited
            ? `exited early; log: ${await tail(logindLog)}`
            : undefined,
        20_000,
      );
      if (options.logindWall) {
        for (const [name, inSig, outSig, code] of WALL_METHODS) {
          await control!.call({
            destination: LOGIND_NAME,
            path: LOGIND_PATH,
            interface: MOCK_INTERFACE,
            member: "AddMethod",
            signature: "sssss",
            body: [LOGIND_INTERFACE, name, inSig, outSig, code],
          });
        }
      }
    }
  } catch (error) {
    await harness.close();
    throw error;
  }
  return harness;
}
