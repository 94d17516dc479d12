/**
 * The vocabulary of the system bus connection: its timeouts, the D-Bus error
 * names it reports, its errors, and the {@link SystemBus} interface that
 * logind and update_engine are written against.
 *
 * @module
 */

import type { Message, MessageBus } from "npm:dbus-next@0.10.2";
import { ExitStatusError, oneLine } from "../common/errors.ts";

/** Default time a method call may take before it fails (D-Bus's own default). */
export const DEFAULT_CALL_TIMEOUT_MS = 25_000;

/** Default time connecting and authenticating may take. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** D-Bus error name used when a call got no reply in time. */
export const NO_REPLY_ERROR = "org.freedesktop.DBus.Error.NoReply";

/** D-Bus error name used when the connection closed before the reply. */
export const DISCONNECTED_ERROR = "org.freedesktop.DBus.Error.Disconnected";

/** Error name of a call whose wait for the reply was abandoned (its signal aborted). */
export const ABANDONED_ERROR = "(abandoned)";

/** D-Bus error name used when a reply or signal has an unexpected signature. */
export const INVALID_SIGNATURE_ERROR =
  "org.freedesktop.DBus.Error.InvalidSignature";

/** The system bus is absent, refused the connection, or is not permitted. Exit status 1. */
export class SystemBusUnavailableError extends ExitStatusError {
  /**
   * Creates a `SystemBusUnavailableError`.
   *
   * @param message one line naming the address and the cause
   * @param options standard error options (the underlying cause)
   */
  constructor(message: string, options?: ErrorOptions) {
    super(1, message, options);
    this.name = "SystemBusUnavailableError";
  }
}

/** A D-Bus method call failed: an error reply, no reply in time, or a malformed reply. Exit status 1. */
export class DbusCallError extends ExitStatusError {
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
    super(
      1,
      `${method} failed: ${errorName}${text ? `: ${oneLine(text)}` : ""}`,
    );
    this.name = "DbusCallError";
    this.method = method;
    this.errorName = errorName;
  }
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
  /** Abandons the wait for the reply (the call may still be carried out). */
  readonly signal?: AbortSignal | undefined;
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
   * ({@link NO_REPLY_ERROR}), a closed connection ({@link DISCONNECTED_ERROR}),
   * or the request's signal aborted ({@link ABANDONED_ERROR}).
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
