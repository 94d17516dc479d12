/**
 * The walk over a command line that locksmithd and `locksmithd serve` share
 * (`node:util` parseArgs tokens, not strict): `--help` and `--version`,
 * value flags in order, and one-line usage errors for a positional
 * argument, an unknown flag, a value given to `--help`/`--version`, or a
 * value flag without a value.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { quote, UsageError } from "./errors.ts";

/** One value flag of a command line. */
export interface FlagValue {
  /** The flag's name, without dashes. */
  readonly name: string;
  /** The flag as given, e.g. `--config`. */
  readonly rawName: string;
  /** Its value, never empty. */
  readonly value: string;
}

/** A command line's `--help`, `--version` and value flags (in order). */
export interface FlagWalk {
  /** `--help` or `-h` was given. */
  readonly help: boolean;
  /** `--version` was given. */
  readonly version: boolean;
  /** The value flags, in order. */
  readonly values: readonly FlagValue[];
}

/** How {@link walkFlags} reads a command line. */
export interface FlagRules {
  /** The flags for parseArgs: `help` and `version` booleans, the others strings. */
  readonly options: Readonly<
    Record<
      string,
      {
        readonly type: "string" | "boolean";
        readonly multiple?: boolean;
        readonly short?: string;
      }
    >
  >;
  /** Ends every error, e.g. `see locksmithd --help`. */
  readonly seeHelp: string;
  /** Whether `name` is a value flag. */
  known(name: string): boolean;
  /** The error for value flag `name` given no value (before `; seeHelp`). */
  needsValue(name: string): string;
}

/** Reads `args` by `rules`; throws a {@link UsageError} at the first flag at fault. */
export function walkFlags(args: readonly string[], rules: FlagRules): FlagWalk {
  const { tokens } = parseArgs({
    args: [...args],
    options: rules.options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const { seeHelp } = rules;
  let help = false;
  let version = false;
  const values: FlagValue[] = [];
  for (const token of tokens) {
    if (token.kind === "positional") {
      throw new UsageError(
        `unexpected argument ${quote(token.value)}; ${seeHelp}`,
      );
    }
    if (token.kind === "option-terminator") continue;
    const { name, rawName } = token;
    if (name === "help" || name === "version") {
      if (token.value !== undefined) {
        throw new UsageError(`${rawName} takes no value; ${seeHelp}`);
      }
      if (name === "help") help = true;
      else version = true;
      continue;
    }
    if (!rules.known(name)) {
      throw new UsageError(`unknown flag ${rawName}; ${seeHelp}`);
    }
    const value = token.value;
    if (
      value === undefined || value === "" ||
      (!token.inlineValue && value.startsWith("-"))
    ) {
      throw new UsageError(`${rules.needsValue(name)}; ${seeHelp}`);
    }
    values.push({ name, rawName, value });
  }
  return { help, version, values };
}
