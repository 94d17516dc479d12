/**
 * Placeholder until the gRPC adapter lands (work in progress).
 *
 * @module
 */
import type { EtcdConnectionOptions } from "./options.ts";
import type { EtcdPort } from "./port.ts";

/** Opens the gRPC port. */
export function openGrpcPort(
  _options: EtcdConnectionOptions,
): Promise<EtcdPort> {
  return Promise.reject(new Error("the gRPC fallback is not built yet"));
}
