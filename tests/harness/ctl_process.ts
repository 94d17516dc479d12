/** Runs locksmithctl (or locksmithd) as a subprocess with its real permission flags. */

import { programFlags, REPO_ROOT } from "./permissions.ts";

/** What a locksmithctl run printed and returned. */
export interface CtlResult {
  /** Exit status. */
  readonly code: number;
  /** Standard output. */
  readonly stdout: string;
  /** Standard error. */
  readonly stderr: string;
}

/** Options of {@link runCtlProcess}. */
export interface CtlProcessOptions {
  /** Environment variables for the child (added to a minimal environment). */
  readonly env?: Record<string, string>;
  /** Extra read paths (e.g. a temp dir of TLS files) added to the `ctl` set. */
  readonly extraRead?: string[];
  /** Extra write paths (e.g. a private bus socket's dir) added to the `ctl` set. */
  readonly extraWrite?: string[];
  /** Deno permission flags to run with instead of the set's (extraRead and extraWrite are then ignored). */
  readonly permissions?: string[];
}

/** Runs `deno run <ctl permissions> ctl.ts ...args` and collects its output. */
export function runCtlProcess(
  args: string[],
  options: CtlProcessOptions = {},
): Promise<CtlResult> {
  return runProgram("ctl", args, options);
}

/**
 * Starts `ctl.ts` or `daemon.ts` as `deno task ctl`/`daemon` would (its
 * permission set and flags from deno.json, plus the extra paths) with a
 * minimal environment; standard output is piped, standard error piped
 * unless `stderr` says otherwise.
 */
export function spawnProgram(
  program: "ctl" | "daemon",
  args: string[],
  options: CtlProcessOptions & { readonly stderr?: "piped" | "null" } = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...(options.permissions ?? programFlags(program, {
        read: options.extraRead ?? [],
        write: options.extraWrite ?? [],
      })),
      `${REPO_ROOT}${program}.ts`,
      ...args,
    ],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: minimalEnv(options.env),
    stdin: "null",
    stdout: "piped",
    stderr: options.stderr ?? "piped",
  }).spawn();
}

/** A child's whole environment: PATH, NO_COLOR and `env`. */
function minimalEnv(env: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    NO_COLOR: "1",
    ...env,
  };
}

/** Options of {@link runDeno}. */
export interface DenoRunOptions {
  /** Working directory of the child (default: this process's). */
  readonly cwd?: string;
  /** Variables for the child, added to PATH and NO_COLOR=1. */
  readonly env?: Record<string, string>;
  /** Keep this process's environment (under NO_COLOR=1 and `env`) instead of starting from PATH alone. */
  readonly inheritEnv?: boolean;
}

/** Runs `deno ...args` and collects its output; standard input is null. */
export async function runDeno(
  args: string[],
  options: DenoRunOptions = {},
): Promise<CtlResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd,
    ...(options.inheritEnv
      ? { env: { NO_COLOR: "1", ...options.env } }
      : { clearEnv: true, env: minimalEnv(options.env) }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return decoded(out);
}

/** A finished child's exit status and output as text. */
function decoded(out: Deno.CommandOutput): CtlResult {
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
}

/** Runs a program as {@link spawnProgram} starts it, and collects its output. */
export async function runProgram(
  program: "ctl" | "daemon",
  args: string[],
  options: CtlProcessOptions = {},
): Promise<CtlResult> {
  return decoded(await spawnProgram(program, args, options).output());
}
