/**
 * The error for a config value that a module of locksmithd's safe reboots
 * rejects (a command, a listen address, a URL).
 *
 * @module
 */

import { quote, UsageError } from "./errors.ts";

/**
 * A rejected config value: a {@link UsageError} (exit status 2) reading
 * `KEY="value" defect`. `key`, `value` and `defect` let configuration
 * resolution rephrase it with where the value came from, e.g.
 * `KEY="value" (from /etc/coreos/update.conf:3) defect`.
 */
export class ConfigValueError extends UsageError {
  /** The config key of the value, e.g. `LOCKSMITHD_METRICS_ADDR`. */
  readonly key: string;
  /** The rejected text, exactly as given. */
  readonly value: string;
  /** What is wrong and what is accepted, e.g. `is not HOST:PORT`. */
  readonly defect: string;
  /**
   * Creates a `ConfigValueError`.
   *
   * @param key config key of the value
   * @param value the rejected text
   * @param defect what is wrong with it and what is accepted
   */
  constructor(key: string, value: string, defect: string) {
    super(`${key}=${quote(value, 200)} ${defect}`);
    this.name = "ConfigValueError";
    this.key = key;
    this.value = value;
    this.defect = defect;
  }
}
