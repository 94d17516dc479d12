/**
 * The fleet page's pure parts and its routes without a socket: the fleet
 * from key-values, the page's data, its drawing, the reboot figures for
 * the metrics, who may see and pause, and the page's weight.
 */

import assert from "node:assert/strict";
import { fleetFrom } from "../lib/etcd/store/fleet_state.ts";
import { bytes, type KeyValue } from "../lib/etcd/client/port.ts";
import { formatSemaphore } from "../lib/semaphore/document.ts";
import { formatHolderRecord } from "../lib/semaphore/holder_record.ts";
import {
  holderRecordKey,
  pausedKey,
  semaphoreKey,
  waiterKey,
} from "../lib/semaphore/keys.ts";
import { formatHistoryEntry } from "../lib/semaphore/history.ts";
import { pageSnapshot } from "../lib/fleetpage/snapshot.ts";
import { escapeHtml, renderFleet } from "../lib/fleetpage/view.ts";
import {
  rebootFigures,
  type TakenIndex,
} from "../lib/fleetpage/reboot_figures.ts";
import { FleetFeed } from "../lib/fleetpage/feed.ts";
import { createFleetPageRoutes } from "../lib/fleetpage/routes.ts";
import { PAGE_HTML, PAGE_SCRIPT } from "../lib/fleetpage/page.ts";

let revision = 0;
function kv(key: string, value: string, createRevision?: number): KeyValue {
  revision++;
  return {
    key: bytes(key),
    value: bytes(value),
    createRevision: createRevision ?? revision,
    modRevision: revision,
    version: 1,
    lease: "0",
  };
}

const WEB = semaphoreKey("web");
const T0 = "2024-06-03T02:00:00.000Z";

function webFleet(): KeyValue[] {
  return [
    kv(WEB, formatSemaphore({ semaphore: 0, max: 1, holders: ["w1"] })),
    kv(
      holderRecordKey(WEB, "w1"),
      formatHolderRecord({ id: "w1", since: T0, by: "locksmithd" }),
    ),
    kv(pausedKey(WEB), JSON.stringify({ since: T0, by: "x" })),
    kv(waiterKey(WEB, "w3"), "w3", 50),
    kv(waiterKey(WEB, "w2"), "w2", 40),
    kv(
      `${WEB}/history/1`,
      formatHistoryEntry([{ kind: "taken", id: "w0", at: T0 }]),
    ),
    kv(
      `${WEB}/history/2`,
      formatHistoryEntry([
        { kind: "released", id: "w0", at: "2024-06-03T02:04:00.000Z" },
        { kind: "taken", id: "w1", at: T0 },
      ]),
    ),
    kv(`${WEB}/history/3`, "junk"),
    kv("coreos.com/updateengine/rebootlock/other", "not a semaphore"),
  ];
}

Deno.test("the fleet from key-values: every group, its holders, queue in order, history and junk", () => {
  const fleet = fleetFrom(webFleet(), revision);
  assert.deepEqual(fleet.map((g) => g.group), ["", "web"]);
  const snapshot = pageSnapshot(fleet, new Date("2024-06-03T02:10:00Z"), 9);
  const web = snapshot.groups[1]!;
  assert.equal(web.available, 0);
  assert.equal(web.paused, true);
  assert.deepEqual(web.holders.map((h) => [h.id, h.by]), [[
    "w1",
    "locksmithd",
  ]]);
  assert.deepEqual(web.queue.map((w) => w.id), ["w2", "w3"]);
  assert.deepEqual(
    web.reboots.map((r) => [r.id, r.outcome, r.awayMs, r.never]),
    [["w1", "holding", undefined, true], ["w0", "back", 240_000, false]],
  );
  assert.equal(web.skipped, 1);
  assert.equal(snapshot.groups[0]!.max, 1); // the default semaphore, absent: initial
});

Deno.test("the page draws ages against the server's time and escapes what it shows", () => {
  const fleet = fleetFrom(webFleet(), revision);
  const snapshot = pageSnapshot(fleet, new Date("2024-06-03T02:10:00Z"), 9);
  const received = 1_000_000;
  const html = renderFleet(snapshot, received, received + 5_000, ["web"]);
  assert.match(html, /<td class="id">w1<\/td><td>10m5s<\/td>/);
  assert.match(html, /&#9888; w1/); // never came back (yet): marked
  assert.match(html, /data-action="resume" data-group="web">Resume</);
  assert.equal(
    renderFleet(snapshot, received, received, []).includes("<button"),
    false,
  );
  assert.equal(
    escapeHtml(`<img src=x onerror="a">`),
    "&#60;img src=x onerror=&#34;a&#34;&#62;",
  );
});

Deno.test("reboot figures: a release after boot with its time away, and a reclaim, from the taken events seen before", () => {
  const taken: TakenIndex = new Map();
  const kvs = webFleet();
  // Seen at the read: w0 and w1 taken at T0, w0 released 4 minutes later.
  assert.deepEqual(rebootFigures([kvs[5]!], taken), []);
  assert.deepEqual(rebootFigures([kvs[6]!, kvs[7]!, kvs[0]!], taken), [
    { group: "web", outcome: "back", awaySeconds: 240 },
  ]);
  const reclaim = kv(
    `${WEB}/history/4`,
    formatHistoryEntry([
      { kind: "reclaimed", id: "w1", at: "2024-06-03T03:00:00.000Z" },
      { kind: "released", id: "w9", at: T0 }, // taken before the history began
    ]),
  );
  assert.deepEqual(rebootFigures([reclaim], taken), [
    { group: "web", outcome: "reclaimed", awaySeconds: 3_600 },
    { group: "web", outcome: "back", awaySeconds: undefined },
  ]);
  assert.equal(taken.size, 0);
});

Deno.test("routes: the page, a token to see the fleet, and pause only with a token of the group", async () => {
  const feed = new FleetFeed({ coalesceMs: 0 });
  const paused: string[] = [];
  const route = createFleetPageRoutes({
    feed,
    tokens: {
      groups: ["default", "web"],
      allows: (g, a) => a === `Bearer ${g}-token`,
    },
    pause: (group, p) => {
      paused.push(`${group}:${p}`);
      return Promise.resolve(true);
    },
  });
  const call = (path: string, init: RequestInit = {}) =>
    route(new Request(`http://x${path}`, init));
  const page = await call("/");
  assert.equal(page?.status, 200);
  assert.match(
    page!.headers.get("content-security-policy")!,
    /script-src 'sha256-/,
  );
  assert.equal(call("/v1/pre-reboot", { method: "POST" }), undefined);
  assert.equal(call("/metrics"), undefined);
  assert.equal((await call("/api/events"))?.status, 401);
  const events = await call("/api/events", {
    headers: { authorization: "Bearer web-token" },
  });
  assert.equal(events?.status, 200);
  const reader = events!.body!.pipeThrough(new TextDecoderStream()).getReader();
  assert.match(
    (await reader.read()).value!,
    /event: access\ndata: {"groups":\["web"\]}/,
  );
  await reader.cancel();
  assert.equal(feed.viewers, 0);
  const pause = (group: string, token: string) =>
    call("/api/pause", {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ group }),
    });
  assert.equal((await pause("", "web-token"))?.status, 403);
  assert.equal((await pause("web", "web-token"))?.status, 200);
  assert.equal((await pause("", "default-token"))?.status, 200);
  assert.deepEqual(paused, ["web:true", ":true"]);
});

Deno.test("without tokens the page shows the fleet to anyone and offers no pause", async () => {
  const feed = new FleetFeed({ coalesceMs: 0 });
  const route = createFleetPageRoutes({ feed });
  const events = await route(new Request("http://x/api/events"));
  const reader = events!.body!.pipeThrough(new TextDecoderStream()).getReader();
  assert.match((await reader.read()).value!, /data: {"groups":\[\]}/);
  feed.update(() => fleetFrom(webFleet(), revision), revision);
  assert.match((await reader.read()).value!, /^event: fleet\ndata: {"now":/);
  await reader.cancel();
  const pause = await route(
    new Request("http://x/api/pause", { method: "POST", body: '{"group":""}' }),
  );
  assert.equal(pause?.status, 403);
});

Deno.test("the page and its script weigh under 50 KB", () => {
  const size = new TextEncoder().encode(PAGE_HTML).length;
  assert.ok(size < 50_000, `${size} bytes`);
  assert.ok(PAGE_HTML.includes(PAGE_SCRIPT));
  assert.doesNotMatch(PAGE_HTML, /https?:\/\//); // nothing fetched from elsewhere
});
