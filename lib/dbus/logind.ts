/**
 * Rebooting through systemd-logind over D-Bus (`org.freedesktop.login1`), and
 * counting logged-in sessions.
 *
 * @module
 */

import {
  DbusCallError,
  INVALID_SIGNATURE_ERROR,
  type MethodCall,
  type SystemBus,
} from "./system_bus.ts";
import type { Rebooter, UserWarning } from "../machine/machine_ports.ts";

/** logind's well-known bus name. */
export const LOGIND_NAME = "org.freedesktop.login1";
/** logind's manager object. */
export const LOGIND_PATH = "/org/freedesktop/login1";
/** logind's manager interface. */
export const LOGIND_INTERFACE = "org.freedesktop.login1.Manager";

/** One logged-in session, as `ListSessions` describes it. */
export interface LoginSession {
  /** Session id, e.g. `c1` or `3`. */
  readonly id: string;
  /** User id. */
  readonly uid: number;
  /** User name. */
  readonly user: string;
  /** Seat id, empty for sessions without a seat (e.g. ssh). */
  readonly seat: string;
  /** Object path of the session. */
  readonly path: string;
}

/** Options of {@link LogindRebooter}. */
export interface LogindOptions {
  /** Time a call may take (default the connection's call timeout). */
  readonly timeoutMs?: number;
}

/**
 * systemd-logind over D-Bus. `reboot()` calls `Reboot(false)` (no
 * interactive authorization: root, or a polkit rule, is needed). Failures are
 * {@link DbusCallError}s naming the method and the D-Bus error name.
 *
 * logind has no plain "wall" call: `warnUsers()` sets the wall message
 * (`SetWallMessage`) and schedules a dry-run reboot (`ScheduleShutdown`
 * with `dry-reboot`) at the announced time, which makes logind broadcast
 * the message to logged-in users (as `shutdown -r +5` does) without
 * rebooting itself; `cancelWarning()` calls `CancelScheduledShutdown`.
 */
export class LogindRebooter implements Rebooter, UserWarning {
  readonly #bus: SystemBus;
  readonly #timeoutMs: number | undefined;

  /**
   * Creates a `LogindRebooter`.
   *
   * @param bus an open system bus connection (the caller closes it)
   * @param options timeout
   */
  constructor(bus: SystemBus, options: LogindOptions = {}) {
    this.#bus = bus;
    this.#timeoutMs = options.timeoutMs;
  }

  #request(
    member: string,
    signature = "",
    body: unknown[] = [],
    signal?: AbortSignal,
  ): MethodCall {
    return {
      destination: LOGIND_NAME,
      path: LOGIND_PATH,
      interface: LOGIND_INTERFACE,
      member,
      signature,
      body,
      ...(this.#timeoutMs === undefined ? {} : { timeoutMs: this.#timeoutMs }),
      signal,
    };
  }

  /**
   * Calls `org.freedesktop.login1.Manager.Reboot(false)`; `signal` stops
   * waiting for logind's answer (the request has gone out).
   */
  async reboot(signal?: AbortSignal): Promise<void> {
    await this.#bus.call(this.#request("Reboot", "b", [false], signal));
  }

  /** Calls `CanReboot()`: `yes`, `challenge` (needs interactive authorization), `no` or `na`. */
  async canReboot(): Promise<string> {
    const reply = await this.#bus.call(this.#request("CanReboot"));
    const answer = reply.body[0];
    if (reply.signature !== "s" || typeof answer !== "string") {
      throw new DbusCallError(
        `${LOGIND_INTERFACE}.CanReboot`,
        INVALID_SIGNATURE_ERROR,
        `reply has signature ${JSON.stringify(reply.signature)}, expected "s"`,
      );
    }
    return answer;
  }

  /**
   * Sets the wall message and schedules a dry-run reboot at `at`, so that
   * logind warns logged-in users (see the class documentation).
   */
  async warnUsers(message: string, at: Date): Promise<void> {
    await this.#bus.call(
      this.#request("SetWallMessage", "sb", [message, true]),
    );
    const usec = BigInt(Math.max(0, at.getTime())) * 1000n;
    await this.#bus.call(
      this.#request("ScheduleShutdown", "st", ["dry-reboot", usec]),
    );
  }

  /** Calls `CancelScheduledShutdown()`: logind stops its warnings. */
  async cancelWarning(): Promise<void> {
    await this.#bus.call(this.#request("CancelScheduledShutdown"));
  }

  /** Calls `ListSessions()`; throws a {@link DbusCallError} when the reply is not `a(susso)`. */
  async listSessions(): Promise<LoginSession[]> {
    const reply = await this.#bus.call(this.#request("ListSessions"));
    const malformed = (what: string): DbusCallError =>
      new DbusCallError(
        `${LOGIND_INTERFACE}.ListSessions`,
        INVALID_SIGNATURE_ERROR,
        `reply ${what}`,
      );
    if (reply.signature !== "a(susso)") {
      throw malformed(
        `has signature ${JSON.stringify(reply.signature)}, expected "a(susso)"`,
      );
    }
    const rows: unknown = reply.body[0];
    if (!Array.isArray(rows)) throw malformed("is not an array");
    return rows.map((row: unknown) => {
      if (!Array.isArray(row) || row.length !== 5) {
        throw malformed("has a session that is not 5 fields");
      }
      const [id, uid, user, seat, path] = row as unknown[];
      if (
        typeof id !== "string" || typeof uid !== "number" ||
        typeof user !== "string" || typeof seat !== "string" ||
        typeof path !== "string"
      ) {
        throw malformed("has a session with fields of the wrong types");
      }
      return { id, uid, user, seat, path };
    });
  }

  /** Number of sessions `ListSessions()` returns. */
  async activeSessions(): Promise<number> {
    return (await this.listSessions()).length;
  }
}
