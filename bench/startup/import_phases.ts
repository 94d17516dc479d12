/**
 * Where locksmithctl's start-up time goes: times, in a fresh process, each
 * step that `import("etcd3")` and the first request take, and prints them as
 * one JSON object (milliseconds). Run with `--no-lock` (the npm specifiers
 * below are computed so that type checking does not add them to deno.lock).
 *
 * Usage: `deno run -q -A --no-lock bench/startup/import_phases.ts MODE ...`
 * - `chain ENDPOINT KEY`: Node compat modules, grpc-js, proto-loader with
 *   protobufjs, etcd3 (which parses rpc.proto at import), first and second Range
 * - `parse`: the rpc.proto parse and package definition etcd3 does at import
 * - `json FILE`: the same from a pre-generated JSON descriptor instead
 * - `write-json FILE`: writes that descriptor
 */

const ETCD3 = "npm:etcd3@1.1.2";
const GRPC = "npm:@grpc/grpc-js@1.14.7";
const PROTO_LOADER = "npm:@grpc/proto-loader@0.7.15";
const PROTOBUFJS = "npm:protobufjs@7.6.6";
const PROTO_DIR = new URL(
  "../../node_modules/.deno/etcd3@1.1.2/node_modules/etcd3/proto",
  import.meta.url,
).pathname;
// The options etcd3's connection-pool.js passes to loadSync.
const LOADER_OPTIONS = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

// deno-lint-ignore no-explicit-any
type Any = any;
const load = (specifier: string): Promise<Any> => import(specifier);

const phases: Record<string, number> = {
  "runtime start to first line": performance.now(),
};
let last = performance.now();
function mark(name: string): void {
  const now = performance.now();
  phases[name] = now - last;
  last = now;
}

async function nodeAndProtoLoader(): Promise<{ pl: Any }> {
  await Promise.all(
    ["node:http2", "node:tls", "node:net", "node:zlib", "node:dns"].map(load),
  );
  mark("Node compat modules (http2, tls, net, zlib, dns)");
  await load(GRPC);
  mark("@grpc/grpc-js");
  const pl = await load(PROTO_LOADER);
  mark("@grpc/proto-loader + protobufjs");
  return { pl };
}

const [mode, arg1, arg2] = Deno.args;
if (mode === "chain" && arg1 && arg2) {
  await nodeAndProtoLoader();
  const { Etcd3 } = await load(ETCD3);
  mark("etcd3 (its import parses rpc.proto) + cockatiel");
  const client = new Etcd3({ hosts: arg1 });
  await client.get(arg2).string();
  mark("first Range (connects)");
  await client.get(arg2).string();
  mark("second Range");
  client.close();
} else if (mode === "parse") {
  const { pl } = await nodeAndProtoLoader();
  pl.loadSync(`${PROTO_DIR}/rpc.proto`, LOADER_OPTIONS);
  mark("loadSync(rpc.proto): parse + package definition");
} else if (mode === "json" && arg1) {
  const { pl } = await nodeAndProtoLoader();
  pl.fromJSON(JSON.parse(Deno.readTextFileSync(arg1)), LOADER_OPTIONS);
  mark("fromJSON(descriptor): package definition only");
} else if (mode === "write-json" && arg1) {
  const protobuf = (await load(PROTOBUFJS)).default;
  const root = new protobuf.Root();
  root.loadSync(`${PROTO_DIR}/rpc.proto`, { keepCase: true });
  Deno.writeTextFileSync(arg1, JSON.stringify(root.toJSON()));
} else {
  console.error(
    "usage: import_phases.ts chain ENDPOINT KEY | parse | json FILE | write-json FILE",
  );
  Deno.exit(2);
}
console.log(JSON.stringify(phases));
