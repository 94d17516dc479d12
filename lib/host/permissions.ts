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

/**
 * The set environment variables whose names start with `prefix`, when the
 * whole environment may be read (`--allow-env`); else none (nothing is
 * prompted: with narrower permissions the names cannot be listed).
 */
export function envWithPrefix(prefix: string): Record<string, string> {
  try {
    if (Deno.permissions.querySync({ name: "env" }).state !== "granted") {
      return {};
    }
    return Object.fromEntries(
      Object.entries(Deno.env.toObject()).filter(([name]) =>
        name.startsWith(prefix)
      ),
    );
  } catch {
    return {};
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
  /**
   * What the message calls it and the flag it names, when several needs
   * are one item (e.g. the variables a library reads, granted as
   * `--allow-env=GRPC_*`); by default derived from `descriptor`.
   */
  readonly as?: { readonly what: string; readonly flag: string };
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
  const flag = (n: PermissionNeed) => n.as?.flag ?? flagFor(n.descriptor);
  const items = new Set(
    lacking.map((n) =>
      `${n.as?.what ?? what(n.descriptor)} (${n.why}): ${flag(n)}`
    ),
  );
  throw new UsageError(
    `missing Deno permissions: ${[...items].join("; ")}; run again with ${
      mergeFlags(lacking.map(flag)).join(" ")
    }`,
  );
}

/**
 * The flags `flags` with the values of each kind joined, as Deno takes
 * them: `--allow-sys=uid --allow-sys=osUptime` is `--allow-sys=uid,osUptime`;
 * a flag without a value (everything of its kind) absorbs the others.
 */
export function mergeFlags(flags: readonly string[]): string[] {
  const byKind = new Map<string, Set<string> | null>();
  for (const flag of flags) {
    const [kind = flag, value] = flag.split(/=(.*)/s);
    const values = byKind.get(kind);
    if (value === undefined || values === null) {
      byKind.set(kind, null);
    } else if (values === undefined) {
      byKind.set(kind, new Set(value.split(",")));
    } else {
      for (const v of value.split(",")) values.add(v);
    }
  }
  return [...byKind].map(([kind, values]) =>
    values === null ? kind : `${kind}=${[...values].join(",")}`
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
