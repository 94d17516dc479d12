/**
 * What loading the gRPC client (`grpc.ts`, for etcd without its JSON
 * gateway) needs from Deno's permissions, checked before it is loaded so
 * that every shortfall is one line: grpc-js reads its `GRPC_*` and proxy
 * variables when it loads, and etcd3 reads its `.proto` files. Without
 * this check each of them is refused in turn, one run at a time.
 *
 * @module
 */

import { envIfGranted, type PermissionNeed } from "../../host/permissions.ts";

/** The npm package etcd3 as the gRPC adapter imports it (kept equal to `grpc_client.ts`'s import by a test). */
export const ETCD3_PACKAGE = "etcd3@1.1.2";

/**
 * The environment variables grpc-js 1.14 reads: its settings when it loads,
 * the proxy variables when it connects.
 */
export const GRPC_ENV_NAMES: readonly string[] = [
  "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
  "GRPC_EXPERIMENTAL_ENABLE_OUTLIER_DETECTION",
  "GRPC_NODE_DEBUG_SEND_ERROR_DETAILS",
  "GRPC_NODE_TRACE",
  "GRPC_NODE_USE_ALTERNATIVE_RESOLVER",
  "GRPC_NODE_VERBOSITY",
  "GRPC_SSL_CIPHER_SUITES",
  "GRPC_TRACE",
  "GRPC_VERBOSITY",
  "grpc_proxy",
  "https_proxy",
  "http_proxy",
  "no_grpc_proxy",
  "no_proxy",
];

/** The one flag that grants {@link GRPC_ENV_NAMES}. */
export const GRPC_ENV_FLAG =
  "--allow-env=GRPC_*,grpc_proxy,https_proxy,http_proxy,no_grpc_proxy,no_proxy";

/**
 * The folder of etcd3's `.proto` files: in the `node_modules` folder when
 * Deno resolves npm packages there, else in Deno's npm cache (`DENO_DIR`,
 * by default `~/.cache/deno`); `undefined` when that cannot be told (the
 * variables may not be read) or in a compiled binary (whose embedded files
 * need no permission).
 */
export function etcd3ProtoDir(
  resolve: (specifier: string) => string = import.meta.resolve,
): string | undefined {
  if (Deno.build.standalone) return undefined;
  let main: string;
  try {
    main = resolve(`npm:${ETCD3_PACKAGE}`);
  } catch {
    return undefined;
  }
  if (main.startsWith("file:")) {
    // .../etcd3/lib/index.js
    return decodeURIComponent(new URL("../proto", main).pathname);
  }
  const xdg = envIfGranted("XDG_CACHE_HOME");
  const home = envIfGranted("HOME");
  const cache = envIfGranted("DENO_DIR") ??
    (xdg ? `${xdg}/deno` : home ? `${home}/.cache/deno` : undefined);
  if (cache === undefined) return undefined;
  const [name, version] = ETCD3_PACKAGE.split("@");
  return `${cache}/npm/registry.npmjs.org/${name}/${version}/proto`;
}

/**
 * The permissions loading the gRPC client needs: the variables grpc-js
 * reads (one item, one flag) and read access to `protoDir` (when known).
 * `why` says why the client is loaded, e.g. `etcd at http://… has no JSON gateway`.
 */
export function grpcPermissionNeeds(
  why: string,
  protoDir: string | undefined,
): PermissionNeed[] {
  const as = {
    what: "the GRPC_* and proxy variables",
    flag: GRPC_ENV_FLAG,
  };
  const needs: PermissionNeed[] = GRPC_ENV_NAMES.map((variable) => ({
    descriptor: { name: "env", variable },
    why: `${why}: the gRPC client reads them`,
    as,
  }));
  if (protoDir !== undefined) {
    needs.push({
      descriptor: { name: "read", path: protoDir },
      why: `${why}: the gRPC client's protocol files`,
    });
  }
  return needs;
}
