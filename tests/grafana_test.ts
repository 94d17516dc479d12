/**
 * contrib/grafana/locksmith.json: every metric the dashboard queries is
 * one that locksmithd or `locksmithd serve` exports (read from their own
 * registries), with the labels it groups by.
 */

import assert from "node:assert/strict";
import { PromDaemonMetrics } from "../lib/daemon/observe/daemon_metrics.ts";
import { FleetLockMetrics } from "../lib/serve/serve_metrics.ts";

/** Metric families and their types, from an exposition's `# TYPE` lines. */
function families(exposition: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    out.set(name as string, type as string);
  }
  return out;
}

Deno.test("every metric the Grafana dashboard queries is exported by locksmithd or serve", async () => {
  const dashboard = JSON.parse(
    await Deno.readTextFile(
      new URL("../contrib/grafana/locksmith.json", import.meta.url),
    ),
  );
  const exprs: string[] = dashboard.panels.flatMap((
    p: { targets: { expr: string }[] },
  ) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 10);
  const serve = new FleetLockMetrics(() => Promise.resolve(new Map()));
  const exported = new Map([
    ...families(await new PromDaemonMetrics().registry.metrics()),
    ...families((await serve.expose()).body),
  ]);
  const queried = new Set<string>();
  for (const expr of exprs) {
    for (const [name] of expr.matchAll(/\blocksmithd?_[a-z_]+/g)) {
      const base = name.replace(/_(bucket|sum|count)$/, "");
      const family = exported.has(name) ? name : base;
      assert.ok(exported.has(family), `${name} in ${expr} is not exported`);
      if (family !== name) {
        assert.equal(exported.get(family), "histogram", `${name} in ${expr}`);
      }
      queried.add(family);
    }
  }
  // The panels the issue asks for are there.
  for (
    const name of [
      "locksmith_fleetlock_holders",
      "locksmith_fleetlock_slots",
      "locksmithd_queue_position",
      "locksmith_reboot_duration_seconds",
      "locksmith_reclaims_total",
      "locksmithd_etcd_request_duration_seconds",
    ]
  ) assert.ok(queried.has(name), name);
});
