/**
 * Deno permissions as locksmith's programs use them: environment variables
 * are optional (one that may not be read counts as unset, and nobody is ever
 * prompted), and every shortfall is one line saying what was refused, why
 * it is needed, and the exact flag to add.
 *
 * @module
 */

import { UsageError } from "../common/errors.ts";

/**
 * The value of environment variable `name`, or `undefined` when it is unset
 * or when env access to it is not granted (queried, never prompted).
 */
export function envIfGranted(name: string): string | undefined {
  try {
    const { state } = Deno.permissions.querySync({
      name: "env",
      variable: name,
    });
    return state === "granted" ? Deno.env.get(name) : undefined;
  } catch {
    return undefined;
  }
}

/** The values of the environment variables `names` that are set and may be read. */
export function readGrantedEnv(
  names: readonly string[],
): Record<string, string | undefined> {
  return Object.fromEntries(names.map((name) => [name, envIfGranted(name)]));
}

/** Something a program needs from Deno's permissions, and why. */
export interface PermissionNeed {
  /** What to query, e.g. `{ name: "read", path: "/etc/machine-id" }`. */
  readonly descriptor: Deno.PermissionDescriptor;
  /** Why it is needed, e.g. `the machine id`. */
  readonly why: string;
}

/** The flag that grants `descriptor`, e.g. `--allow-read=/etc/machine-id`. */
export function flagFor(descriptor: Deno.PermissionDescriptor): string {
  switch (descriptor.name) {
    case "read":
    case "write":
      return `--allow-${descriptor.name}${
        descriptor.path ? `=${descriptor.path}` : ""
      }`;
    case "net":
      return `--allow-net${descriptor.host ? `=${descriptor.host}` : ""}`;
    case "env":
      return `--allow-env${
        descriptor.variable ? `=${descriptor.variable}` : ""
      }`;
    case "sys":
      return `--allow-sys${descriptor.kind ? `=${descriptor.kind}` : ""}`;
    case "run":
      return `--allow-run${
        descriptor.command ? `=${String(descriptor.command)}` : ""
      }`;
    default:
      return `--allow-${descriptor.name}`;
  }
}

function what(descriptor: Deno.PermissionDescriptor): string {
  switch (descriptor.name) {
    case "read":
    case "write":
      return `${descriptor.name} access to ${descriptor.path ?? "files"}`;
    case "net":
      return `network access to ${descriptor.host ?? "any host"}`;
    case "env":
      return `the environment variable ${descriptor.variable ?? "(any)"}`;
    case "sys":
      return `system information ${descriptor.kind ?? ""}`.trim();
    case "run":
      return `running ${String(descriptor.command ?? "programs")}`;
    default:
      return descriptor.name;
  }
}

/** The needs that are not granted (queried, never prompted). */
export function missing(needs: readonly PermissionNeed[]): PermissionNeed[] {
  return needs.filter((need) => {
    try {
      return Deno.permissions.querySync(need.descriptor).state !== "granted";
    } catch {
      return true;
    }
  });
}

/**
 * Throws a {@link UsageError} listing every need that is not granted, in
 * one line: what, why, and the flags to add. Does nothing when all are.
 */
export function requirePermissions(needs: readonly PermissionNeed[]): void {
  const lacking = missing(needs);
  if (lacking.length === 0) return;
  const items = lacking.map((n) =>
    `${what(n.descriptor)} (${n.why}): ${flagFor(n.descriptor)}`
  );
  const flags = [...new Set(lacking.map((n) => flagFor(n.descriptor)))];
  throw new UsageError(
    `missing Deno permissions: ${items.join("; ")}; run again with ${
      flags.join(" ")
    }`,
  );
}

/**
 * One line for a permission refusal reported by Deno (`NotCapable`):
 * `read access to "/x" was refused (<why>): add --allow-read=/x`, or
 * `undefined` when `error` is not one.
 */
export function describeRefusal(
  error: unknown,
  why: string,
): string | undefined {
  if (!(error instanceof Deno.errors.NotCapable)) return undefined;
  const m = /Requires (\w+) access to "([^"]*)"/.exec(error.message);
  if (m === null) {
    const flag = /run again with the (--allow-\w+) flag/.exec(error.message)
      ?.[1];
    return `a Deno permission was refused (${why})${
      flag ? `: add ${flag}` : ""
    }`;
  }
  const [, kind, target] = m;
  const flag = kind === "all" ? "--allow-all" : `--allow-${kind}=${target}`;
  return `${kind} access to ${target} was refused (${why}): add ${flag}`;
}

/**
 * Imports `url`, a module of this package that a program keeps out of its
 * module graph: its specifier is computed, so `deno run` does not resolve it
 * (and the npm packages behind it) at every start. Deno checks read
 * permission on a module imported that way and on each module it loads
 * with it; a refusal becomes one {@link UsageError} line naming `folder`
 * (the package's source folder, which covers them all), e.g.
 * `read access to /opt/locksmith/lib/etcd/grpc.ts was refused (<why>): add --allow-read=/opt/locksmith/lib`.
 * From JSR (`https:` modules) no read permission is involved: Deno allows
 * imports from jsr.io by default.
 */
export async function importOwnModule<T>(
  url: URL,
  folder: URL,
  why: string,
): Promise<T> {
  try {
    return await import(url.href);
  } catch (error) {
    // Deno's module loader reports the refusal as a TypeError; a refusal
    // while the modules run (the gRPC client reading its .proto files) is
    // about another file, and left to the caller.
    if (folder.protocol !== "file:" || !(error instanceof TypeError)) {
      throw error;
    }
    const dir = decodeURIComponent(folder.pathname).replace(/\/$/, "");
    const path = /Requires read access to "([^"]*)"/.exec(error.message)?.[1];
    if (path === undefined || !path.startsWith(`${dir}/`)) throw error;
    throw new UsageError(
      `read access to ${path} was refused (${why}): add --allow-read=${dir}`,
    );
  }
}
