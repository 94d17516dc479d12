/**
 * update_engine over D-Bus (`com.coreos.update1`): its status, as an
 * {@link UpdateStatusSource} of "reboot needed", and the `StatusUpdate`
 * signal that `locksmithctl send-need-reboot` emits.
 *
 * @module
 */

import type { Message } from "npm:dbus-next@0.10.2";
import { oneLine, quote } from "../common/errors.ts";
import {
  IDLE,
  NEED_REBOOT,
  type StatusListener,
  type Unsubscribe,
  type UpdateStatusSource,
} from "../machine/reboot_need.ts";
export { IDLE, NEED_REBOOT };
import {
  DbusCallError,
  INVALID_SIGNATURE_ERROR,
  isSignal,
  newSignal,
  type SystemBus,
} from "./system_bus.ts";

/** update_engine's well-known bus name. */
export const UPDATE_ENGINE_NAME = "com.coreos.update1";
/** update_engine's object path. */
export const UPDATE_ENGINE_PATH = "/com/coreos/update1";
/** update_engine's interface. */
export const UPDATE_ENGINE_INTERFACE = "com.coreos.update1.Manager";
/** The signal update_engine emits on every status change. */
export const STATUS_UPDATE_SIGNAL = "StatusUpdate";
/** Signature of `GetStatus`'s reply and of `StatusUpdate`: last checked time, progress, operation, new version, new size. */
export const STATUS_SIGNATURE = "xdssx";

/** Match rule for update_engine's `StatusUpdate`, from any sender (so `locksmithctl send-need-reboot` is heard). */
export const STATUS_UPDATE_MATCH_RULE: string =
  `type='signal',path='${UPDATE_ENGINE_PATH}',interface='${UPDATE_ENGINE_INTERFACE}',member='${STATUS_UPDATE_SIGNAL}'`;

/** update_engine's status, as `GetStatus` returns it and `StatusUpdate` carries it. */
export interface UpdateStatus {
  /** Unix time of the last update check (`x`). */
  readonly lastCheckedTime: bigint;
  /** Download progress, 0 to 1 (`d`). */
  readonly progress: number;
  /** e.g. `UPDATE_STATUS_IDLE`, {@link NEED_REBOOT} (`s`). */
  readonly currentOperation: string;
  /** Version being installed, or empty (`s`). */
  readonly newVersion: string;
  /** Size of the update in bytes (`x`). */
  readonly newSize: bigint;
}

/** What is wrong with a status that could not be parsed. */
export interface StatusDefect {
  /** One line, e.g. `argument 3 (current_operation) is number, expected string`. */
  readonly error: string;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function int64(value: unknown): bigint | undefined {
  if (typeof value === "bigint") {
    return value >= INT64_MIN && value <= INT64_MAX ? value : undefined;
  }
  if (typeof value === "number" && Number.isSafeInteger(value)) {
    return BigInt(value);
  }
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/**
 * Validates the arguments of a `StatusUpdate` signal or a `GetStatus` reply.
 * Pure; never throws. When `signature` is given it must be
 * {@link STATUS_SIGNATURE}. Returns the status, or a {@link StatusDefect}
 * (test with `"error" in result`).
 */
export function parseStatusUpdate(
  body: unknown,
  signature?: string,
): UpdateStatus | StatusDefect {
  if (signature !== undefined && signature !== STATUS_SIGNATURE) {
    return {
      error: `signature is ${
        quote(signature, 40)
      }, expected "${STATUS_SIGNATURE}"`,
    };
  }
  if (!Array.isArray(body)) {
    return { error: `arguments are ${describe(body)}, expected an array` };
  }
  if (body.length !== 5) {
    return { error: `has ${body.length} arguments, expected 5` };
  }
  const [checked, progress, operation, version, size] = body as unknown[];
  const lastCheckedTime = int64(checked);
  if (lastCheckedTime === undefined) {
    return {
      error: `argument 1 (last_checked_time) is ${
        describe(checked)
      }, expected int64`,
    };
  }
  if (typeof progress !== "number" || !Number.isFinite(progress)) {
    return {
      error: `argument 2 (progress) is ${
        typeof progress === "number" ? String(progress) : describe(progress)
      }, expected a finite double`,
    };
  }
  if (typeof operation !== "string" || operation === "") {
    return {
      error: `argument 3 (current_operation) is ${
        operation === "" ? "empty" : describe(operation)
      }, expected a non-empty string`,
    };
  }
  if (typeof version !== "string") {
    return {
      error: `argument 4 (new_version) is ${
        describe(version)
      }, expected string`,
    };
  }
  const newSize = int64(size);
  if (newSize === undefined) {
    return {
      error: `argument 5 (new_size) is ${describe(size)}, expected int64`,
    };
  }
  return {
    lastCheckedTime,
    progress,
    currentOperation: operation,
    newVersion: version,
    newSize,
  };
}

/** The D-Bus body of a status, in {@link STATUS_SIGNATURE} order. */
export function statusBody(status: UpdateStatus): unknown[] {
  return [
    status.lastCheckedTime,
    status.progress,
    status.currentOperation,
    status.newVersion,
    status.newSize,
  ];
}

/** Options of {@link UpdateEngineClient}. */
export interface UpdateEngineOptions {
  /** Where ignored (malformed) signals and listener failures are logged, one line each. */
  readonly log?: (line: string) => void;
  /** Time `GetStatus` may take (default the connection's call timeout). */
  readonly timeoutMs?: number;
}

/** D-Bus errors that mean "update_engine is not on the bus". */
const ABSENT_ERRORS: ReadonlySet<string> = new Set([
  "org.freedesktop.DBus.Error.ServiceUnknown",
  "org.freedesktop.DBus.Error.NameHasNoOwner",
]);

/** update_engine over D-Bus, as an {@link UpdateStatusSource}. */
export class UpdateEngineClient implements UpdateStatusSource {
  /** For log lines. */
  readonly name: string = "update_engine";
  readonly #bus: SystemBus;
  readonly #log: (line: string) => void;
  readonly #timeoutMs: number | undefined;

  /**
   * Creates an `UpdateEngineClient`.
   *
   * @param bus an open system bus connection (the caller closes it)
   * @param options logging and timeout
   */
  constructor(bus: SystemBus, options: UpdateEngineOptions = {}) {
    this.#bus = bus;
    this.#log = options.log ?? (() => {});
    this.#timeoutMs = options.timeoutMs;
  }

  /**
   * Calls `GetStatus`. Resolves `undefined` when update_engine is not on the
   * bus; throws a {@link DbusCallError} for any other failure, including a
   * reply of the wrong shape.
   */
  async getStatus(): Promise<UpdateStatus | undefined> {
    let reply: Message;
    try {
      reply = await this.#bus.call({
        destination: UPDATE_ENGINE_NAME,
        path: UPDATE_ENGINE_PATH,
        interface: UPDATE_ENGINE_INTERFACE,
        member: "GetStatus",
        ...(this.#timeoutMs === undefined
          ? {}
          : { timeoutMs: this.#timeoutMs }),
      });
    } catch (error) {
      if (
        error instanceof DbusCallError && ABSENT_ERRORS.has(error.errorName)
      ) {
        return undefined;
      }
      throw error;
    }
    const status = parseStatusUpdate(reply.body, reply.signature);
    if ("error" in status) {
      throw new DbusCallError(
        `${UPDATE_ENGINE_INTERFACE}.GetStatus`,
        INVALID_SIGNATURE_ERROR,
        `reply ${status.error}`,
      );
    }
    return status;
  }

  /** The current operation, or `undefined` when update_engine is not on the bus. */
  async currentOperation(): Promise<string | undefined> {
    return (await this.getStatus())?.currentOperation;
  }

  /**
   * Listens for `StatusUpdate` from any sender on {@link UPDATE_ENGINE_PATH}.
   * Malformed signals are logged and ignored; an exception from `listener`
   * is logged; neither ever escapes.
   */
  async subscribe(listener: StatusListener): Promise<Unsubscribe> {
    let active = true;
    const off = this.#bus.onMessage((message) => {
      if (!active || !isStatusUpdate(message)) return;
      const status = parseStatusUpdate(message.body, message.signature);
      if ("error" in status) {
        this.#log(
          `ignoring a malformed ${STATUS_UPDATE_SIGNAL} signal from ${
            message.sender ?? "?"
          }: ${status.error}`,
        );
        return;
      }
      try {
        listener(status.currentOperation);
      } catch (error) {
        this.#log(
          `${STATUS_UPDATE_SIGNAL} listener failed on ${status.currentOperation}: ${
            oneLine(error)
          }`,
        );
      }
    });
    try {
      await this.#bus.addMatch(STATUS_UPDATE_MATCH_RULE);
    } catch (error) {
      off();
      throw error;
    }
    return async () => {
      if (!active) return;
      active = false;
      off();
      try {
        await this.#bus.removeMatch(STATUS_UPDATE_MATCH_RULE);
      } catch (error) {
        this.#log(`removing the StatusUpdate match rule: ${oneLine(error)}`);
      }
    };
  }
}

function isStatusUpdate(message: Message): boolean {
  return isSignal(message) &&
    message.interface === UPDATE_ENGINE_INTERFACE &&
    message.member === STATUS_UPDATE_SIGNAL &&
    message.path === UPDATE_ENGINE_PATH;
}

/**
 * Emits `StatusUpdate` with `status` from {@link UPDATE_ENGINE_PATH} on this
 * connection, and waits until the bus has routed it.
 */
export async function emitStatusUpdate(
  bus: SystemBus,
  status: UpdateStatus,
): Promise<void> {
  bus.send(
    newSignal(
      UPDATE_ENGINE_PATH,
      UPDATE_ENGINE_INTERFACE,
      STATUS_UPDATE_SIGNAL,
      STATUS_SIGNATURE,
      statusBody(status),
    ),
  );
  await bus.flush();
}

/**
 * What `locksmithctl send-need-reboot` does: emits
 * `StatusUpdate(0, 0.0, "UPDATE_STATUS_UPDATED_NEED_REBOOT", "", 0)` from
 * {@link UPDATE_ENGINE_PATH} on this connection, and waits until the bus has
 * routed it (so the caller may close the connection and exit right away).
 */
export async function emitNeedReboot(bus: SystemBus): Promise<void> {
  await emitStatusUpdate(bus, {
    lastCheckedTime: 0n,
    progress: 0,
    currentOperation: NEED_REBOOT,
    newVersion: "",
    newSize: 0n,
  });
}
