/**
 * Checks of etcd connection options and reading their TLS files, shared by
 * the gRPC client and the JSON gateway reader (and free of either library).
 *
 * @module
 */

import { UsageError } from "../../common/errors.ts";

/** Where etcd is and how to authenticate. Every field maps to one locksmithctl flag or locksmithd config key. */
export interface TlsOptions {
  /** Client URLs (`http://` or `https://`), tried in turn. */
  readonly endpoints: readonly string[];
  /** PEM file of the CA that signed the server certificates (CA-only TLS needs just this). */
  readonly caFile?: string | undefined;
  /** PEM client certificate, for client-certificate authentication (needs `keyFile`). */
  readonly certFile?: string | undefined;
  /** PEM private key of `certFile`. */
  readonly keyFile?: string | undefined;
  /** etcd user name (needs `password`). */
  readonly username?: string | undefined;
  /** etcd password of `username`. */
  readonly password?: string | undefined;
}

/** The PEM contents of the TLS files that were given. */
export interface TlsFiles {
  /** CA certificate(s). */
  readonly ca?: Uint8Array | undefined;
  /** Client certificate. */
  readonly cert?: Uint8Array | undefined;
  /** Client key. */
  readonly key?: Uint8Array | undefined;
}

/**
 * Throws a {@link UsageError} when certificate and key, or user and password,
 * do not come in pairs, or when TLS files are given for an http:// endpoint.
 * Returns whether TLS files are given.
 */
export function checkConnectionOptions(options: TlsOptions): boolean {
  const { caFile, certFile, keyFile, username, password } = options;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError(
      "--etcd-certfile and --etcd-keyfile must be given together",
    );
  }
  if ((username === undefined) !== (password === undefined)) {
    throw new UsageError(
      "--etcd-username and --etcd-password must be given together",
    );
  }
  const tls = caFile !== undefined || certFile !== undefined;
  if (tls && options.endpoints.some((h) => h.startsWith("http:"))) {
    throw new UsageError(
      "TLS files are given but an endpoint uses http://; use https:// endpoints",
    );
  }
  return tls;
}

async function readPem(
  path: string | undefined,
  what: string,
): Promise<Uint8Array | undefined> {
  if (path === undefined) return undefined;
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw new UsageError(
      `cannot read ${what} ${path}: ${(error as Error).message}`,
    );
  }
}

/** Reads the TLS files that were given; errors name the file. */
export async function readTlsFiles(options: TlsOptions): Promise<TlsFiles> {
  const [ca, cert, key] = await Promise.all([
    readPem(options.caFile, "CA file"),
    readPem(options.certFile, "certificate file"),
    readPem(options.keyFile, "key file"),
  ]);
  return { ca, cert, key };
}
