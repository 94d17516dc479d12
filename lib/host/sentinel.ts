/**
 * A sentinel file (such as Debian's `/run/reboot-required`) as a source of
 * "reboot needed". A file older than the current boot is ignored (logged
 * once): on persistent storage it would otherwise reboot the machine in a
 * loop.
 *
 * @module
 */

import { oneLine } from "../common/errors.ts";
import {
  IDLE,
  NEED_REBOOT,
  type StatusListener,
  type Unsubscribe,
  type UpdateStatusSource,
} from "../machine/reboot_need.ts";

/** Default interval between two checks of the sentinel file. */
export const DEFAULT_SENTINEL_POLL_MS = 2_000;

/** Options of {@link SentinelFileSource}. */
export interface SentinelOptions {
  /** Interval between two checks (default {@link DEFAULT_SENTINEL_POLL_MS}). */
  readonly pollMs?: number;
  /** Where failures to check the file are logged, one line each. */
  readonly log?: (line: string) => void;
  /** When this boot began: a file last modified before counts as absent. */
  readonly bootTime?: Date | undefined;
}

/**
 * A sentinel file as an {@link UpdateStatusSource}: while the file exists the
 * operation is {@link NEED_REBOOT}, else {@link IDLE}. Changes are found by a
 * `Deno.stat` poll, which needs only `--allow-read=<the file>` (watching the
 * parent directory would need read access to all of `/run`).
 */
export class SentinelFileSource implements UpdateStatusSource {
  /** For log lines. */
  readonly name: string;
  /** The sentinel file. */
  readonly path: string;
  readonly #pollMs: number;
  readonly #log: (line: string) => void;
  readonly #bootTime: Date | undefined;
  #staleLogged = false;

  /**
   * Creates a `SentinelFileSource`.
   *
   * @param path the sentinel file (`LOCKSMITHD_REBOOT_SENTINEL`)
   * @param options poll interval and logging
   */
  constructor(path: string, options: SentinelOptions = {}) {
    this.path = path;
    this.name = `sentinel file ${path}`;
    this.#pollMs = options.pollMs ?? DEFAULT_SENTINEL_POLL_MS;
    this.#log = options.log ?? (() => {});
    this.#bootTime = options.bootTime;
  }

  async #exists(): Promise<boolean> {
    try {
      const info = await Deno.stat(this.path);
      const boot = this.#bootTime;
      if (boot && info.mtime && info.mtime.getTime() < boot.getTime()) {
        if (!this.#staleLogged) {
          this.#log(
            `the reboot sentinel ${this.path} was last modified at ${info.mtime.toISOString()}, before this boot (${boot.toISOString()}): ignoring it, as its reboot has happened`,
          );
          this.#staleLogged = true;
        }
        return false;
      }
      this.#staleLogged = false;
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw new Error(
        `cannot check reboot sentinel ${this.path}: ${oneLine(error)}`,
        { cause: error },
      );
    }
  }

  /** {@link NEED_REBOOT} while the file exists, else {@link IDLE}; throws when it cannot be checked. */
  async currentOperation(): Promise<string> {
    return (await this.#exists()) ? NEED_REBOOT : IDLE;
  }

  /**
   * Calls `listener` with {@link NEED_REBOOT} when the file appears and
   * {@link IDLE} when it goes, as seen by a poll every `pollMs`. Failures to
   * check are logged (once per distinct message) and count as "absent".
   */
  async subscribe(listener: StatusListener): Promise<Unsubscribe> {
    let lastError = "";
    const check = async (): Promise<boolean> => {
      try {
        const present = await this.#exists();
        lastError = "";
        return present;
      } catch (error) {
        const text = oneLine(error);
        if (text !== lastError) this.#log(text);
        lastError = text;
        return false;
      }
    };
    let present = await check();
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight: Promise<void> = Promise.resolve();
    const tick = async (): Promise<void> => {
      const now = await check();
      if (stopped) return;
      if (now !== present) {
        present = now;
        try {
          listener(now ? NEED_REBOOT : IDLE);
        } catch (error) {
          this.#log(`${this.name} listener failed: ${oneLine(error)}`);
        }
      }
      if (!stopped) schedule();
    };
    const schedule = (): void => {
      timer = setTimeout(() => {
        inFlight = tick();
      }, this.#pollMs);
    };
    schedule();
    return async () => {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
    };
  }
}
