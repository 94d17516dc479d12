/**
 * Prototype, not the product: `locksmithctl status` without gRPC. It reads
 * the semaphore through etcd's JSON gateway (`POST /v3/kv/range`, served on
 * the same client URL by etcd 3.4+) with `fetch`, so it loads neither
 * grpc-js nor protobufjs. It prints what `locksmithctl status` prints. Used
 * by the benchmark to measure what a gRPC-free read costs at start-up.
 *
 * Usage: `deno run -q --allow-net bench/startup/gateway_status.ts ENDPOINT [KEY]`
 */

import { parseSemaphore } from "../../lib/semaphore/document.ts";
import { DEFAULT_SEMAPHORE_KEY } from "../../lib/semaphore/keys.ts";

function base64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

function unbase64(text: string): string {
  return new TextDecoder().decode(
    Uint8Array.from(atob(text), (c) => c.charCodeAt(0)),
  );
}

if (import.meta.main) {
  const [endpoint, key = DEFAULT_SEMAPHORE_KEY] = Deno.args;
  if (!endpoint) {
    console.error("usage: gateway_status.ts ENDPOINT [KEY]");
    Deno.exit(2);
  }
  const res = await fetch(`${endpoint}/v3/kv/range`, {
    method: "POST",
    body: JSON.stringify({ key: base64(key) }),
  });
  if (!res.ok) {
    console.error(`etcd answered ${res.status}: ${await res.text()}`);
    Deno.exit(1);
  }
  const body = await res.json() as { kvs?: { value?: string }[] };
  const raw = body.kvs?.[0]?.value;
  const doc = raw === undefined
    ? { semaphore: 1, max: 1, holders: [] as readonly string[] }
    : parseSemaphore(unbase64(raw), key);
  let out = `Available: ${doc.semaphore}\nMax: ${doc.max}\n`;
  if (doc.holders.length > 0) {
    out += `\nMACHINE ID\n${[...doc.holders].sort().join("\n")}\n`;
  }
  await Deno.stdout.write(new TextEncoder().encode(out));
}
