/**
 * The connection to the D-Bus system bus (dbus-next over a Unix socket), with
 * method calls that time out, one-line errors, and a clean close.
 *
 * Deno permissions a connection needs, for a socket at `P` (exact path, no
 * symlink resolution: `/var/run/...` and `/run/...` are different grants):
 * `--allow-read=P --allow-write=P --allow-net=unix:P --allow-sys=uid`, plus
 * `--allow-env=DBUS_SYSTEM_BUS_ADDRESS` when the address comes from the
 * environment. `sys=uid` is for the EXTERNAL authentication, which sends the
 * process's uid.
 *
 * @module
 */

import dbus from "dbus-next";
import type { Message, MessageBus } from "dbus-next";
import { oneLine, UsageError } from "../common/errors.ts";
import { envIfGranted, type PermissionNeed } from "../common/permissions.ts";

/** Environment variable naming the system bus address. */
export const SYSTEM_BUS_ADDRESS_ENV = "DBUS_SYSTEM_BUS_ADDRESS";

/** Socket of the system bus when {@link SYSTEM_BUS_ADDRESS_ENV} is unset or empty. */
export const DEFAULT_SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket";

/** System bus address used when {@link SYSTEM_BUS_ADDRESS_ENV} is unset or empty. */
export const DEFAULT_SYSTEM_BUS_ADDRESS: string =
  `unix:path=${DEFAULT_SYSTEM_BUS_SOCKET}`;

/** Default time a method call may take before it fails (D-Bus's own default). */
export const DEFAULT_CALL_TIMEOUT_MS = 25_000;

/** Default time connecting and authenticating may take. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** D-Bus error name used when a call got no reply in time. */
export const NO_REPLY_ERROR = "org.freedesktop.DBus.Error.NoReply";

/** D-Bus error name used when the connection closed before the reply. */
export const DISCONNECTED_ERROR = "org.freedesktop.DBus.Error.Disconnected";

/** D-Bus error name used when a reply or signal has an unexpected signature. */
export const INVALID_SIGNATURE_ERROR =
  "org.freedesktop.DBus.Error.InvalidSignature";

/** The system bus is absent, refused the connection, or is not permitted. Exit status 1. */
export class SystemBusUnavailableError extends Error {
  /** Exit status that the command-line tools use for this error. */
  readonly exitCode: number = 1;
  /**
   * Creates a `SystemBusUnavailableError`.
   *
   * @param message one line naming the address and the cause
   * @param options standard error options (the underlying cause)
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SystemBusUnavailableError";
  }
}

/** A D-Bus method call failed: an error reply, no reply in time, or a malformed reply. Exit status 1. */
export class DbusCallError extends Error {
  /** Exit status that the command-line tools use for this error. */
  readonly exitCode: number = 1;
  /** The method, as `interface.Member`, e.g. `org.freedesktop.login1.Manager.Reboot`. */
  readonly method: string;
  /** The D-Bus error name, e.g. `org.freedesktop.DBus.Error.ServiceUnknown`. */
  readonly errorName: string;
  /**
   * Creates a `DbusCallError`.
   *
   * @param method the method, as `interface.Member`
   * @param errorName the D-Bus error name
   * @param text the error text, any newlines are folded
   */
  constructor(method: string, errorName: string, text: string) {
    super(`${method} failed: ${errorName}${text ? `: ${oneLine(text)}` : ""}`);
    this.name = "DbusCallError";
    this.method = method;
    this.errorName = errorName;
  }
}

/** Where a bus listens, from a D-Bus address. */
export type BusEndpoint =
  | { readonly transport: "unix"; readonly path: string }
  | {
    readonly transport: "tcp";
    readonly host: string;
    readonly port: number;
  };

function unescapeValue(value: string, address: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new UsageError(
      `D-Bus address ${JSON.stringify(address)} has a bad %-escape`,
    );
  }
}

/**
 * Parses a D-Bus address (`unix:path=/run/dbus/system_bus_socket`, a `;`
 * separated list, values %-escaped) into the first endpoint this library can
 * connect to: `unix:path=` or `tcp:host=,port=`. Abstract sockets and other
 * transports are skipped. Throws a {@link UsageError} when none is usable.
 */
export function parseBusAddress(address: string): BusEndpoint {
  const skipped: string[] = [];
  for (const entry of address.split(";")) {
    if (entry.trim() === "") continue;
    const colon = entry.indexOf(":");
    if (colon <= 0) {
      throw new UsageError(
        `D-Bus address ${JSON.stringify(address)} is malformed: ` +
          `${JSON.stringify(entry)} has no "transport:" prefix`,
      );
    }
    const transport = entry.slice(0, colon);
    const params = new Map<string, string>();
    for (const pair of entry.slice(colon + 1).split(",")) {
      if (pair === "") continue;
      const eq = pair.indexOf("=");
      if (eq <= 0) {
        throw new UsageError(
          `D-Bus address ${JSON.stringify(address)} is malformed: ` +
            `${JSON.stringify(pair)} is not key=value`,
        );
      }
      params.set(pair.slice(0, eq), unescapeValue(pair.slice(eq + 1), address));
    }
    const path = params.get("path");
    if (transport === "unix" && path !== undefined && path !== "") {
      if (/[,;=]/.test(path)) {
        // dbus-next splits addresses on these characters without unescaping.
        skipped.push(`${entry} (a socket path with , ; or = is not supported)`);
        continue;
      }
      return { transport: "unix", path };
    }
    const port = Number(params.get("port"));
    if (transport === "tcp" && Number.isInteger(port) && port > 0) {
      return {
        transport: "tcp",
        host: params.get("host") || "localhost",
        port,
      };
    }
    skipped.push(entry);
  }
  throw new UsageError(
    `D-Bus address ${
      JSON.stringify(address)
    } has no usable endpoint (supported: unix:path=..., tcp:host=...,port=...)${
      skipped.length ? `; skipped ${skipped.join(", ")}` : ""
    }`,
  );
}

/**
 * The system bus address: `$DBUS_SYSTEM_BUS_ADDRESS` when set, non-empty and
 * readable, else {@link DEFAULT_SYSTEM_BUS_ADDRESS}.
 */
export function systemBusAddress(): string {
  // An address that may not be read counts as unset (never a prompt).
  const value = envIfGranted(SYSTEM_BUS_ADDRESS_ENV);
  return value ? value : DEFAULT_SYSTEM_BUS_ADDRESS;
}

/**
 * The Deno permission flags a connection to `endpoint` needs (EXTERNAL
 * authentication included), e.g. for a socket `P`:
 * `--allow-read=P --allow-write=P --allow-net=unix:P --allow-sys=uid`.
 */
export function busPermissionFlags(endpoint: BusEndpoint): string[] {
  if (endpoint.transport === "unix") {
    const p = endpoint.path;
    return [
      `--allow-read=${p}`,
      `--allow-write=${p}`,
      `--allow-net=unix:${p}`,
      "--allow-sys=uid",
    ];
  }
  return [`--allow-net=${endpoint.host}:${endpoint.port}`, "--allow-sys=uid"];
}

/** What a connection to `endpoint` needs from Deno's permissions (EXTERNAL authentication included). */
export function busPermissionNeeds(endpoint: BusEndpoint): PermissionNeed[] {
  const why = "the system bus";
  const needs: PermissionNeed[] = [];
  if (endpoint.transport === "unix") {
    const p = endpoint.path;
    needs.push(
      { descriptor: { name: "read", path: p }, why },
      { descriptor: { name: "write", path: p }, why },
      { descriptor: { name: "net", host: `unix:${p}` }, why },
    );
  } else {
    const host = `${endpoint.host}:${endpoint.port}`;
    needs.push({ descriptor: { name: "net", host }, why });
  }
  needs.push({
    descriptor: { name: "sys", kind: "uid" },
    why: "D-Bus authentication sends the uid",
  });
  return needs;
}

function missingPermissions(endpoint: BusEndpoint): string[] {
  const wanted: Array<[Deno.PermissionDescriptor, string]> = [
    [{ name: "sys", kind: "uid" }, "--allow-sys=uid"],
  ];
  if (endpoint.transport === "unix") {
    const p = endpoint.path;
    wanted.push(
      [{ name: "read", path: p }, `--allow-read=${p}`],
      [{ name: "write", path: p }, `--allow-write=${p}`],
      [{ name: "net", host: `unix:${p}` }, `--allow-net=unix:${p}`],
    );
  } else {
    const host = `${endpoint.host}:${endpoint.port}`;
    wanted.push([{ name: "net", host }, `--allow-net=${host}`]);
  }
  return wanted
    .filter(([descriptor]) =>
      Deno.permissions.querySync(descriptor).state !== "granted"
    )
    .map(([, flag]) => flag);
}

/** A method call to make with {@link SystemBus.call}. */
export interface MethodCall {
  /** Bus name of the service, e.g. `org.freedesktop.login1`. */
  readonly destination: string;
  /** Object path, e.g. `/org/freedesktop/login1`. */
  readonly path: string;
  /** Interface, e.g. `org.freedesktop.login1.Manager`. */
  readonly interface: string;
  /** Method name, e.g. `Reboot`. */
  readonly member: string;
  /** D-Bus signature of `body` (default empty). */
  readonly signature?: string;
  /** Arguments (default none). */
  readonly body?: readonly unknown[];
  /** Time the call may take (default the connection's call timeout). */
  readonly timeoutMs?: number;
}

/** Listener of every message the connection receives. */
export type MessageListener = (message: Message) => void;

/** An open connection to a D-Bus bus. */
export interface SystemBus {
  /** The address connected to, as given. */
  readonly address: string;
  /** This connection's unique name on the bus, e.g. `:1.42`. */
  readonly uniqueName: string;
  /** The dbus-next MessageBus, for what this interface does not cover. */
  readonly raw: MessageBus;
  /** Whether the connection has closed (by {@link close} or by the bus going away). */
  readonly isClosed: boolean;
  /** Resolves when the connection closes, for whatever reason. */
  readonly closed: Promise<void>;
  /**
   * Calls a method and resolves with the reply. Rejects with a
   * {@link DbusCallError} on an error reply, no reply in time
   * ({@link NO_REPLY_ERROR}) or a closed connection ({@link DISCONNECTED_ERROR}).
   */
  call(request: MethodCall): Promise<Message>;
  /** Sends a message that expects no reply (a signal). Throws a {@link SystemBusUnavailableError} when closed. */
  send(message: Message): void;
  /** Adds a match rule (`org.freedesktop.DBus.AddMatch`). */
  addMatch(rule: string): Promise<void>;
  /** Removes a match rule added by {@link addMatch}; does nothing once closed. */
  removeMatch(rule: string): Promise<void>;
  /**
   * Calls `listener` with every received message; exceptions it throws are
   * caught and logged. Returns a function that removes the listener.
   */
  onMessage(listener: MessageListener): () => void;
  /** Waits until every message sent so far has been routed by the bus (a round trip). */
  flush(): Promise<void>;
  /** Closes the connection and waits until its socket is released. */
  close(): Promise<void>;
}

/** Options of {@link connectSystemBus}. */
export interface ConnectOptions {
  /** Bus address (default {@link systemBusAddress}: the environment, then the default socket). */
  readonly address?: string;
  /** Time connecting may take (default {@link DEFAULT_CONNECT_TIMEOUT_MS}). */
  readonly connectTimeoutMs?: number;
  /** Default time a method call may take (default {@link DEFAULT_CALL_TIMEOUT_MS}). */
  readonly callTimeoutMs?: number;
  /** Where non-fatal connection problems are logged, one line each (default: dropped). */
  readonly log?: (line: string) => void;
}

// dbus-next's runtime values; its types.d.ts numbers MessageType from 0, wrongly.
const SIGNAL_TYPE: number = (dbus.MessageType as unknown as { SIGNAL: number })
  .SIGNAL;

/** dbus-next internals used to release sockets and forget timed-out calls. */
interface RawInternals {
  _connection: {
    stream: {
      destroyed?: boolean;
      once(event: "close", fn: () => void): void;
      destroy(): void;
    };
  };
  _methodReturnHandlers: Record<string, unknown>;
}

class Connection implements SystemBus {
  readonly address: string;
  readonly raw: MessageBus;
  readonly closed: Promise<void>;
  #uniqueName = "";
  #isClosed = false;
  #callTimeoutMs: number;
  #log: (line: string) => void;
  /** Rejecters of calls awaiting a reply, called with the reason when the socket closes. */
  #pending = new Set<(reason: string) => void>();
  #socketClosed: Promise<void>;

  constructor(
    address: string,
    raw: MessageBus,
    callTimeoutMs: number,
    log: (line: string) => void,
  ) {
    this.address = address;
    this.raw = raw;
    this.#callTimeoutMs = callTimeoutMs;
    this.#log = log;
    const stream = (raw as unknown as RawInternals)._connection.stream;
    this.#socketClosed = new Promise((resolve) => {
      stream.once("close", () => {
        this.#isClosed = true;
        for (const reject of [...this.#pending]) {
          reject(`connection to ${address} closed before the reply`);
        }
        resolve();
      });
    });
    this.closed = this.#socketClosed;
    // Without an "error" listener an EventEmitter throws; errors that end the
    // connection are followed by "close", which is what callers watch.
    raw.on("error", (error: unknown) => {
      if (!this.#isClosed) this.#log(`D-Bus connection: ${oneLine(error)}`);
    });
  }

  get uniqueName(): string {
    return this.#uniqueName;
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Resolves once Hello was answered; rejects on an error or a timeout. */
  async open(timeoutMs: number): Promise<void> {
    let onConnect = (): void => {};
    let onError = (_error: unknown): void => {};
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => {
          onConnect = resolve;
          this.raw.once("connect", onConnect);
        }),
        new Promise<void>((_, reject) => {
          onError = (error: unknown) => reject(error);
          this.raw.once("error", onError);
        }),
        this.#socketClosed.then(() => {
          throw new Error("connection closed during authentication");
        }),
        new Promise<void>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${timeoutMs} ms`)),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.raw.off("connect", onConnect);
      this.raw.off("error", onError);
    }
    this.#uniqueName = (this.raw as unknown as { name: string }).name;
  }

  call(request: MethodCall): Promise<Message> {
    const method = `${request.interface}.${request.member}`;
    if (this.#isClosed) {
      return Promise.reject(
        new DbusCallError(
          method,
          DISCONNECTED_ERROR,
          `connection to ${this.address} is closed`,
        ),
      );
    }
    const message = new dbus.Message({
      destination: request.destination,
      path: request.path,
      interface: request.interface,
      member: request.member,
      signature: request.signature ?? "",
      body: [...(request.body ?? [])],
    });
    const timeoutMs = request.timeoutMs ?? this.#callTimeoutMs;
    return new Promise<Message>((resolve, reject) => {
      const onClosed = (reason: string): void => {
        cleanup();
        reject(new DbusCallError(method, DISCONNECTED_ERROR, reason));
      };
      const timer = setTimeout(() => {
        cleanup();
        // Forget the reply handler dbus-next keeps for this serial.
        const serial = message.serial;
        if (serial !== null) {
          delete (this.raw as unknown as RawInternals)
            ._methodReturnHandlers[serial];
        }
        reject(
          new DbusCallError(
            method,
            NO_REPLY_ERROR,
            `no reply from ${request.destination} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#pending.delete(onClosed);
      };
      this.#pending.add(onClosed);
      let sent: Promise<Message | null>;
      try {
        sent = this.raw.call(message);
      } catch (error) {
        // e.g. a body that does not match the signature
        cleanup();
        reject(new DbusCallError(method, "(not sent)", oneLine(error)));
        return;
      }
      sent.then(
        (reply) => {
          cleanup();
          if (reply) resolve(reply);
          else reject(new DbusCallError(method, NO_REPLY_ERROR, "no reply"));
        },
        (error: unknown) => {
          cleanup();
          const e = error as { type?: unknown; text?: unknown };
          reject(
            new DbusCallError(
              method,
              typeof e.type === "string" ? e.type : "(unknown error)",
              typeof e.text === "string" ? e.text : oneLine(error),
            ),
          );
        },
      );
    });
  }

  send(message: Message): void {
    if (this.#isClosed) {
      throw new SystemBusUnavailableError(
        `cannot send ${message.interface}.${message.member}: connection to ${this.address} is closed`,
      );
    }
    this.raw.send(message);
  }

  async addMatch(rule: string): Promise<void> {
    await this.call(busDriverCall("AddMatch", "s", [rule]));
  }

  async removeMatch(rule: string): Promise<void> {
    if (this.#isClosed) return;
    await this.call(busDriverCall("RemoveMatch", "s", [rule]));
  }

  onMessage(listener: MessageListener): () => void {
    const wrapped = (message: Message): void => {
      try {
        listener(message);
      } catch (error) {
        this.#log(
          `D-Bus message listener failed on ${message.interface}.${message.member}: ${
            oneLine(error)
          }`,
        );
      }
    };
    this.raw.on("message", wrapped);
    return () => {
      this.raw.off("message", wrapped);
    };
  }

  async flush(): Promise<void> {
    await this.call(busDriverCall("GetId", "", []));
  }

  async close(): Promise<void> {
    if (!this.#isClosed) {
      const stream = (this.raw as unknown as RawInternals)._connection.stream;
      try {
        this.raw.disconnect();
      } catch { /* already ending */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#socketClosed,
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            stream.destroy();
            resolve();
          }, 2_000);
        }),
      ]);
      clearTimeout(timer);
      await this.#socketClosed;
    }
  }
}

function busDriverCall(
  member: string,
  signature: string,
  body: unknown[],
): MethodCall {
  return {
    destination: "org.freedesktop.DBus",
    path: "/org/freedesktop/DBus",
    interface: "org.freedesktop.DBus",
    member,
    signature,
    body,
  };
}

/**
 * Connects to the system bus (or `options.address`) and authenticates with
 * EXTERNAL, as a system bus requires. Resolves once the bus has given this
 * connection its unique name. Throws a one-line
 * {@link SystemBusUnavailableError} when the socket is absent or refuses the
 * connection, when authentication fails or times out, or when a Deno
 * permission is missing (naming the flags to add).
 */
export async function connectSystemBus(
  options: ConnectOptions = {},
): Promise<SystemBus> {
  const address = options.address ?? systemBusAddress();
  const endpoint = parseBusAddress(address);
  const missing = missingPermissions(endpoint);
  if (missing.length > 0) {
    throw new SystemBusUnavailableError(
      `cannot connect to the D-Bus system bus at ${address}: missing Deno permissions ${
        missing.join(" ")
      }`,
    );
  }
  // `unix:socket=` makes dbus-next open the socket with node:net directly
  // instead of first trying its native `usocket` addon, which Deno does not
  // build and whose loader asks for extra permissions.
  const busAddress = endpoint.transport === "unix"
    ? `unix:socket=${endpoint.path}`
    : `tcp:host=${endpoint.host},port=${endpoint.port}`;
  let raw: MessageBus;
  try {
    raw = dbus.sessionBus({ busAddress, authMethods: ["EXTERNAL"] });
  } catch (error) {
    throw new SystemBusUnavailableError(
      `cannot connect to the D-Bus system bus at ${address}: ${oneLine(error)}`,
      { cause: error },
    );
  }
  const connection = new Connection(
    address,
    raw,
    options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
    options.log ?? (() => {}),
  );
  try {
    await connection.open(
      options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    );
  } catch (error) {
    await connection.close();
    const code = (error as { code?: unknown }).code;
    const hint = code === "ENOENT"
      ? " (no bus is listening there: is dbus running?)"
      : code === "ECONNREFUSED"
      ? " (nothing accepts connections on that socket: is dbus running?)"
      : "";
    throw new SystemBusUnavailableError(
      `cannot connect to the D-Bus system bus at ${address}: ${
        oneLine(error)
      }${hint}`,
      { cause: error },
    );
  }
  return connection;
}

/** Whether `message` is a signal (as opposed to a call, a reply or an error). */
export function isSignal(message: Message): boolean {
  return (message.type as unknown as number) === SIGNAL_TYPE;
}

/** Builds a signal message (for {@link SystemBus.send}). */
export function newSignal(
  path: string,
  iface: string,
  member: string,
  signature: string,
  body: readonly unknown[],
): Message {
  return dbus.Message.newSignal(path, iface, member, signature, [...body]);
}

/** Whether some connection currently owns the bus name `name` (`NameHasOwner`). */
export async function nameHasOwner(
  bus: SystemBus,
  name: string,
): Promise<boolean> {
  const reply = await bus.call(busDriverCall("NameHasOwner", "s", [name]));
  return reply.body[0] === true;
}
