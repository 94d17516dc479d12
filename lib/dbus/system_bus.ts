/**
 * The connection to the D-Bus system bus (dbus-next over a Unix socket), with
 * method calls that time out, one-line errors, and a clean close.
 *
 * Where the bus is and what permissions it needs: `bus_address.ts`.
 *
 * @module
 */

import dbus from "npm:dbus-next@0.10.2";
import type { Message, MessageBus } from "npm:dbus-next@0.10.2";
import { oneLine } from "../common/errors.ts";
import {
  missingPermissions,
  parseBusAddress,
  systemBusAddress,
} from "./bus_address.ts";
import {
  ABANDONED_ERROR,
  type ConnectOptions,
  DbusCallError,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DISCONNECTED_ERROR,
  type MessageListener,
  type MethodCall,
  NO_REPLY_ERROR,
  type SystemBus,
  SystemBusUnavailableError,
} from "./bus_types.ts";

export {
  ABANDONED_ERROR,
  type ConnectOptions,
  DbusCallError,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DISCONNECTED_ERROR,
  INVALID_SIGNATURE_ERROR,
  type MessageListener,
  type MethodCall,
  NO_REPLY_ERROR,
  type SystemBus,
  SystemBusUnavailableError,
} from "./bus_types.ts";

export {
  type BusEndpoint,
  busPermissionFlags,
  busPermissionNeeds,
  DEFAULT_SYSTEM_BUS_ADDRESS,
  DEFAULT_SYSTEM_BUS_SOCKET,
  parseBusAddress,
  SYSTEM_BUS_ADDRESS_ENV,
  systemBusAddress,
} from "./bus_address.ts";

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
    if (request.signal?.aborted) {
      return Promise.reject(
        new DbusCallError(
          method,
          ABANDONED_ERROR,
          "abandoned before it was sent",
        ),
      );
    }
    return this.#awaitReply(method, message, request, timeoutMs);
  }

  /** Sends `message` and waits for its reply, the timeout, the abort signal or the connection's end. */
  #awaitReply(
    method: string,
    message: Message,
    request: MethodCall,
    timeoutMs: number,
  ): Promise<Message> {
    const signal = request.signal;
    return new Promise<Message>((resolve, reject) => {
      const onClosed = (reason: string): void => {
        cleanup();
        reject(new DbusCallError(method, DISCONNECTED_ERROR, reason));
      };
      /** Gives up waiting: the reply handler dbus-next keeps for this serial is forgotten. */
      const giveUp = (error: DbusCallError): void => {
        cleanup();
        const serial = message.serial;
        if (serial !== null) {
          delete (this.raw as unknown as RawInternals)
            ._methodReturnHandlers[serial];
        }
        reject(error);
      };
      const timer = setTimeout(() => {
        giveUp(
          new DbusCallError(
            method,
            NO_REPLY_ERROR,
            `no reply from ${request.destination} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const onAbort = (): void =>
        giveUp(
          new DbusCallError(
            method,
            ABANDONED_ERROR,
            `stopped waiting for the reply from ${request.destination}`,
          ),
        );
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#pending.delete(onClosed);
        signal?.removeEventListener("abort", onAbort);
      };
      this.#pending.add(onClosed);
      signal?.addEventListener("abort", onAbort, { once: true });
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
          reject(errorReplyOf(method, error));
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

/** The {@link DbusCallError} for an error reply (or any failure) of `method`. */
function errorReplyOf(method: string, error: unknown): DbusCallError {
  const e = error as { type?: unknown; text?: unknown };
  return new DbusCallError(
    method,
    typeof e.type === "string" ? e.type : "(unknown error)",
    typeof e.text === "string" ? e.text : oneLine(error),
  );
}
