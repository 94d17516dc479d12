/**
 * Connecting to etcd: endpoints, TLS files, credentials and deadlines.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { Etcd3, type IOptions } from "etcd3";
import { EtcdUnavailableError } from "../common/errors.ts";
import { formatDuration } from "../common/duration.ts";
import { allowIpEndpointsOverTls } from "./tls_ip_servername.ts";
import {
  checkConnectionOptions,
  readTlsFiles,
  type TlsOptions,
} from "./tls.ts";

export { DEFAULT_ENDPOINT, parseEndpoints } from "./endpoints.ts";

/** How to reach etcd: endpoints, TLS files and credentials, and a deadline. */
export interface EtcdConnectionOptions extends TlsOptions {
  /** Deadline of each unary etcd request, in milliseconds. */
  readonly timeoutMs: number;
}

/**
 * Builds etcd3 client options: reads the TLS files (errors name the file) and
 * checks that certificate and key, user and password come in pairs.
 */
export async function etcdClientOptions(
  options: EtcdConnectionOptions,
): Promise<IOptions> {
  const { username, password, timeoutMs } = options;
  const tls = checkConnectionOptions(options);
  const hosts = [...options.endpoints];
  const clientOptions: IOptions = {
    hosts,
    dialTimeout: timeoutMs,
    defaultCallOptions: (context) =>
      context.isStream ? {} : { deadline: Date.now() + timeoutMs },
  };
  if (tls || hosts.some((h) => h.startsWith("https:"))) {
    allowIpEndpointsOverTls();
  }
  if (tls) {
    const files = await readTlsFiles(options);
    const [ca, cert, key] = [files.ca, files.cert, files.key].map((pem) =>
      pem === undefined ? undefined : Buffer.from(pem)
    );
    clientOptions.credentials = {
      // grpc-js falls back to the system roots when no CA is given.
      rootCertificate: ca as Buffer,
      ...(cert && key ? { certChain: cert, privateKey: key } : {}),
    };
  }
  if (username !== undefined && password !== undefined) {
    clientOptions.auth = {
      username,
      password,
      callOptions: { deadline: Date.now() + timeoutMs },
    };
  }
  return clientOptions;
}

/** Opens an etcd client (lazily: nothing is sent until the first request). */
export async function connectEtcd(
  options: EtcdConnectionOptions,
): Promise<Etcd3> {
  return new Etcd3(await etcdClientOptions(options));
}

/**
 * Wraps an error thrown by the etcd client into a one-line error naming the
 * endpoints; errors of locksmith's own pass through unchanged.
 */
export function describeEtcdError(
  error: unknown,
  options: Pick<EtcdConnectionOptions, "endpoints" | "timeoutMs">,
): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  const name = error.constructor.name;
  const where = options.endpoints.join(",");
  if (
    /^GRPC(Unavailable|DeadlineExceeded|ConnectFailed|Cancelled|Internal|Unknown)Error$/
      .test(name) ||
    name === "ClientClosedError" || name === "BrokenCircuitError" ||
    name === "TaskCancelledError"
  ) {
    const cause = error.message.replace(/\s+/g, " ")
      .replace(/\.? Resolution note:.*$/, "")
      .replace(/^\d+ [A-Z_]+: /, "")
      .replace(/^No connection established\. Last error: (Error: )?/, "");
    return new EtcdUnavailableError(`cannot reach etcd at ${where}: ${cause}`, {
      cause: error,
    });
  }
  if (
    name === "EtcdAuthenticationFailedError" ||
    name === "GRPCUnauthenticatedError"
  ) {
    return new EtcdUnavailableError(
      `etcd at ${where} refused the credentials: ${error.message}`,
    );
  }
  if (name === "EtcdPermissionDeniedError") {
    return new EtcdUnavailableError(
      `etcd at ${where} denied access: ${error.message}`,
    );
  }
  if (name === "DeadlineError") {
    return new EtcdUnavailableError(
      `etcd at ${where} did not answer within ${
        formatDuration(options.timeoutMs)
      }`,
      { cause: error },
    );
  }
  return error;
}
