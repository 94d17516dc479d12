/**
 * locksmithd, unchanged, in a wrapper that prints its memory use as one JSON
 * line on stdout every second: `Deno.memoryUsage()` and V8's heap spaces.
 * The benchmark runs it beside the real daemon to split its resident set
 * into V8 heap and the rest. Arguments are locksmithd's.
 */

import { getHeapSpaceStatistics } from "node:v8";
import { runDaemon } from "../../lib/daemon/main.ts";

const encoder = new TextEncoder();
const timer = setInterval(() => {
  const usage: Record<string, number> = { ...Deno.memoryUsage() };
  try {
    for (const s of getHeapSpaceStatistics()) {
      usage[`space ${s.space_name}`] = s.space_used_size;
    }
  } catch { /* not available */ }
  Deno.stdout.writeSync(encoder.encode(`${JSON.stringify(usage)}\n`));
}, 1_000);
Deno.unrefTimer(timer);

Deno.exit(await runDaemon(Deno.args));
