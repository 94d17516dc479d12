/**
 * This machine's id, read from `/etc/machine-id`.
 *
 * @module
 */

import { UsageError } from "../common/errors.ts";
import { validateId } from "../common/machine_id.ts";

/** Path of the systemd machine id file. */
export const MACHINE_ID_PATH = "/etc/machine-id";

/**
 * Reads this machine's id (whitespace trimmed) from `path`.
 * Throws a one-line error naming the file when it is missing, unreadable or empty.
 */
export async function readMachineId(
  path: string = MACHINE_ID_PATH,
): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(
      `cannot read machine id from ${path}: ${(error as Error).message}`,
    );
  }
  return validateId(text.trim(), `machine id in ${path}`);
}
