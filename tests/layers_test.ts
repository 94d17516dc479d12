/**
 * The shape of lib/, read from its imports: dependencies point one way
 * (entry points -> programs -> configuration -> adapters -> pure core), no
 * folder imports a folder that imports it back, lib/common imports no other
 * folder, and every file name is used once.
 */

import assert from "node:assert/strict";
import { basename, dirname, join, relative } from "node:path";

const LIB = new URL("../lib/", import.meta.url).pathname;

/** The layers, lowest first; a folder may import its own layer and the ones below. */
const LAYERS: Readonly<Record<string, readonly string[]>> = {
  /** Pure: no I/O, time and randomness injected. */
  core: [
    "common",
    "semaphore",
    "schedule",
    "machine",
    "fleetlock/protocol",
  ],
  /** I/O behind the core's ports: etcd, D-Bus, the host, HTTP to a FleetLock server. */
  adapters: [
    "host",
    "etcd",
    "etcd/client",
    "etcd/grpc",
    "etcd/gateway",
    "etcd/store",
    "etcd/queue",
    "dbus",
    "fleetlock/client",
  ],
  /** The configuration locksmithd and `locksmithd serve` both read. */
  configuration: ["config"],
  /** The programs: locksmithd, locksmithctl, `locksmithd serve`. */
  programs: [
    "daemon/loop",
    "daemon/safety",
    "daemon/observe",
    "daemon/wiring",
    "ctl",
    "serve",
    "fleetpage",
  ],
};

const RANK = new Map<string, number>(
  Object.values(LAYERS).flatMap((folders, rank) =>
    folders.map((folder) => [folder, rank] as const)
  ),
);
const LAYER_NAMES = Object.keys(LAYERS);

/** Every .ts file under lib/, relative to lib/. */
async function libFiles(dir = LIB): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...await libFiles(path));
    else if (entry.name.endsWith(".ts")) files.push(relative(LIB, path));
  }
  return files.sort();
}

const IMPORT =
  /(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']|\bimport\s*\(\s*new URL\(\s*["'](\.{1,2}\/[^"']+)["']/g;

/** The lib/ files `file` imports (static, dynamic, re-exports), relative to lib/. */
async function importsOf(file: string): Promise<string[]> {
  const text = await Deno.readTextFile(join(LIB, file));
  return [...text.matchAll(IMPORT)].map((m) =>
    relative(LIB, join(LIB, dirname(file), m[1] ?? m[2]!))
  );
}

/** The folder edges of lib/ (folder = a file's directory, or its first `depth` parts). */
async function folderEdges(
  depth = Infinity,
): Promise<Map<string, Map<string, string>>> {
  const folderOf = (file: string) =>
    dirname(file).split("/").slice(0, depth).join("/");
  const edges = new Map<string, Map<string, string>>();
  for (const file of await libFiles()) {
    for (const target of await importsOf(file)) {
      assert(
        !target.startsWith(".."),
        `lib/${file} imports ${target} outside lib/`,
      );
      const [from, to] = [folderOf(file), folderOf(target)];
      if (from === to) continue;
      if (!edges.has(from)) edges.set(from, new Map());
      edges.get(from)!.set(to, `lib/${file} imports lib/${target}`);
    }
  }
  return edges;
}

/** The cycles between folders: each strongly connected component of more than one folder. */
function cycles(edges: Map<string, Map<string, string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of edges.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

Deno.test("every folder of lib/ has a layer", async () => {
  const folders = new Set((await libFiles()).map(dirname));
  const unplaced = [...folders].filter((folder) => !RANK.has(folder));
  assert.deepEqual(unplaced, [], "add these folders to LAYERS in this test");
});

for (
  const [what, depth] of [["folder", Infinity], ["top folder", 1]] as const
) {
  Deno.test(`no ${what} of lib/ imports a ${what} that imports it back`, async () => {
    const edges = await folderEdges(depth);
    const loops = cycles(edges).map((component) =>
      component.join(" <-> ") + ": " +
      component.flatMap((a) =>
        component.map((b) => edges.get(a)?.get(b)).filter((x) => x)
      ).join("; ")
    );
    assert.deepEqual(loops, []);
  });
}

Deno.test("imports point down the layers: no adapter imports a program, the core imports only the core", async () => {
  const upward: string[] = [];
  for (const [from, targets] of await folderEdges()) {
    for (const [to, example] of targets) {
      const [a, b] = [RANK.get(from), RANK.get(to)];
      if (a === undefined || b === undefined || b > a) {
        upward.push(
          `${from} (${LAYER_NAMES[a ?? -1] ?? "no layer"}) -> ${to} (${
            LAYER_NAMES[b ?? -1] ?? "no layer"
          }): ${example}`,
        );
      }
    }
  }
  assert.deepEqual(upward, []);
});

Deno.test("lib/common imports no other folder", async () => {
  const edges = await folderEdges();
  assert.deepEqual([...edges.get("common")?.values() ?? []], []);
});

/** Most files a folder of lib/ holds before it is split into sub-folders. */
const FOLDER_FILES_MAX = 15;

Deno.test(`no folder of lib/ holds more than ${FOLDER_FILES_MAX} files`, async () => {
  const byFolder = Map.groupBy(await libFiles(), (file) => dirname(file));
  const crowded = [...byFolder].filter(([, files]) =>
    files.length > FOLDER_FILES_MAX
  ).map(([folder, files]) => `lib/${folder}: ${files.length} files`);
  assert.deepEqual(crowded, [], "split these folders into sub-folders");
});

Deno.test("every file name is used once in lib/", async () => {
  const byName = Map.groupBy(await libFiles(), (file) => basename(file));
  const twice = [...byName.values()].filter((files) => files.length > 1);
  assert.deepEqual(twice, []);
});

Deno.test("the core does no I/O and reads neither the clock nor randomness", async () => {
  const io =
    /\bDeno\.(?!PermissionDescriptor\b)\w+|\bfetch\(|\bset(?:Timeout|Interval)\(|\bDate\.now\(|\bnew Date\(\)|\bMath\.random\(/;
  const found: string[] = [];
  for (const file of await libFiles()) {
    if (RANK.get(dirname(file)) !== 0) continue;
    const lines = (await Deno.readTextFile(join(LIB, file))).split("\n");
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*|^\s*\*.*|^\s*\/\*\*.*/, "");
      const hit = io.exec(code);
      if (hit) found.push(`lib/${file}:${i + 1}: ${hit[0]}`);
    });
  }
  assert.deepEqual(found, []);
});
