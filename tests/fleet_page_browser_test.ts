/**
 * The fleet page in a real headless Chromium against a real etcd and a
 * real `locksmithd serve`: a slot taken with `locksmithctl lock` appears
 * without a reload, its release after boot shows as a history line with
 * the time away, and the page reconnects when serve restarts. With tokens,
 * the page asks for one, and only a token of the group shows pause. Each
 * state is saved as a screenshot in the test's temporary folder; the
 * checks are on the page's text.
 */

import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import { startEtcd } from "./harness/etcd.ts";
import { startServeProcess } from "./harness/serve_process.ts";
import { runCtlProcess } from "./harness/ctl_process.ts";
import { startChromium } from "./harness/chromium.ts";
import { openEtcdStore } from "../lib/etcd/open.ts";
import { unlockSlot } from "../lib/semaphore/lock_store.ts";

/** Removes the screenshots, unless LOCKSMITH_KEEP_SCREENSHOTS is set (then says where they are). */
async function removeShots(dir: string): Promise<void> {
  if (Deno.env.get("LOCKSMITH_KEEP_SCREENSHOTS")) {
    console.log(`screenshots kept in ${dir}`);
    return;
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** The page's text under `selector` (innerText: as a reader sees it). */
function textAt(page: Page, selector: string): Promise<string> {
  return page.evaluate(
    `document.querySelector(${JSON.stringify(selector)})?.innerText ?? ""`,
  ) as Promise<string>;
}

/** Waits until the text of `selector` matches `pattern`; returns it. */
async function textMatches(
  page: Page,
  selector: string,
  pattern: RegExp,
  timeoutMs = 10_000,
): Promise<string> {
  await page.waitForFunction(
    `new RegExp(${JSON.stringify(pattern.source)}, ${
      JSON.stringify(pattern.flags)
    }).test(document.querySelector(${
      JSON.stringify(selector)
    })?.innerText ?? "")`,
    { timeout: timeoutMs, polling: 50 },
  );
  return await textAt(page, selector);
}

Deno.test("the fleet page shows a slot taken without a reload, its release with the time away, and reconnects after serve restarts", async () => {
  const etcd = await startEtcd();
  const serve = await startServeProcess({ endpoint: etcd.endpoint });
  const chromium = await startChromium();
  const shots = await Deno.makeTempDir({ prefix: "locksmith-fleet-page-" });
  const store = await openEtcdStore({
    endpoints: etcd.endpoints,
    timeoutMs: 5_000,
  });
  try {
    const page = await chromium.browser.newPage();
    await page.setViewport({ width: 390, height: 844 }); // a phone
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(serve.url);
    await textMatches(page, "#status", /^live$/);
    await textMatches(page, "#fleet", /default\s+1 of 1 slot free/);
    await page.screenshot({ path: `${shots}/1-empty.png` });

    const ctl = (...args: string[]) =>
      runCtlProcess(["--endpoint", etcd.endpoint, ...args]);
    assert.equal((await ctl("lock", "web-01")).code, 0);
    const locked = performance.now();
    const held = await textMatches(page, "#fleet", /web-01/);
    const shownAfter = performance.now() - locked;
    assert.ok(
      shownAfter < 1_000,
      `shown ${shownAfter.toFixed(0)} ms after the lock`,
    );
    assert.match(held, /0 of 1 slot free/);
    assert.match(
      held,
      /Holding\s+for\s+by\s+boot\s+lease\s+web-01\s+\d+s\s+locksmithctl/,
    );
    assert.match(
      held,
      /web-01\s+\d\d:\d\d:\d\d\s+-\s+\d+s\+\s+away, not back yet/,
    );
    await page.screenshot({ path: `${shots}/2-held.png` });

    // Released after its boot, as locksmithd does: a history line with the time away.
    const history = JSON.parse((await ctl("history", "--json")).stdout);
    const took = history.reboots[0].took as string;
    await unlockSlot(store, "web-01", {
      kind: "released",
      at: new Date(Date.parse(took) + 125_000).toISOString(),
      since: took,
    });
    const back = await textMatches(page, "#fleet", /2m5s\s+back/);
    assert.match(back, /1 of 1 slot free/);
    assert.match(back, /No machine holds a slot/);
    assert.match(
      back,
      /web-01\s+\d\d:\d\d:\d\d\s+\d\d:\d\d:\d\d\s+2m5s\s+back/,
    );
    await page.screenshot({ path: `${shots}/3-back.png` });
    // serve counted it from the same watch: one reboot of 125 s, in its bucket.
    assert.equal(
      await serve.sample(
        'locksmith_reboot_duration_seconds_count{group="default"}',
      ),
      1,
    );
    assert.equal(
      await serve.sample(
        'locksmith_reboot_duration_seconds_bucket{le="120",group="default"}',
      ),
      0,
    );
    assert.equal(
      await serve.sample(
        'locksmith_reboot_duration_seconds_bucket{le="300",group="default"}',
      ),
      1,
    );

    // serve restarts: the page says so, then reconnects and follows again.
    await serve.stop();
    await textMatches(page, "#status", /^reconnecting$/);
    await page.screenshot({ path: `${shots}/4-reconnecting.png` });
    await serve.restart();
    await textMatches(page, "#status", /^live$/);
    assert.equal((await ctl("lock", "web-02")).code, 0);
    const again = await textMatches(page, "#fleet", /web-02/);
    assert.match(again, /web-02\s+\d+s\s+locksmithctl/);
    await page.screenshot({ path: `${shots}/5-reconnected.png` });

    // Nothing was fetched from elsewhere, and the page never reloaded.
    const origin = new URL(serve.url).origin;
    assert.deepEqual(requests.filter((u) => !u.startsWith(origin)), []);
    assert.equal(requests.filter((u) => u === serve.url).length, 1);
    for (
      const name of [
        "1-empty",
        "2-held",
        "3-back",
        "4-reconnecting",
        "5-reconnected",
      ]
    ) {
      assert.ok((await Deno.stat(`${shots}/${name}.png`)).size > 1_000);
    }
  } finally {
    await chromium.close();
    await store.close();
    await serve.close();
    await etcd.close();
    await removeShots(shots);
  }
});

Deno.test("with tokens the fleet page asks for one, and shows pause only for a token of the group", async () => {
  const etcd = await startEtcd();
  const serve = await startServeProcess({
    endpoint: etcd.endpoint,
    env: { LOCKSMITHD_FLEETLOCK_TOKENS: "default=ops-token,web=web-token" },
  });
  const chromium = await startChromium();
  const shots = await Deno.makeTempDir({ prefix: "locksmith-fleet-page-" });
  try {
    const ctl = (...args: string[]) =>
      runCtlProcess(["--endpoint", etcd.endpoint, ...args]);
    assert.equal((await ctl("--group", "web", "set-max", "2")).code, 0);
    const page = await chromium.browser.newPage();
    await page.goto(serve.url);
    await textMatches(page, "#login-error", /needs a token/);
    assert.equal(await textAt(page, "#fleet"), "");
    await page.screenshot({ path: `${shots}/1-token.png` });

    await page.type("#token", "web-token");
    await page.click("#login button");
    const shown = await textMatches(page, "#fleet", /web\s+2 of 2 slots free/);
    assert.match(
      shown,
      /default\s+1 of 1 slot free\s+Holding|default\s+1 of 1 slot free\s+No machine/,
    );
    // Pause is offered for web (this token's group), not for default.
    assert.deepEqual(
      await page.evaluate(
        `[...document.querySelectorAll("button[data-action]")].map((b) => b.dataset.group + ":" + b.textContent)`,
      ),
      ["web:Pause"],
    );
    await page.click('button[data-group="web"]');
    await textMatches(page, "#fleet", /web\s+paused/);
    assert.match(
      (await ctl("--group", "web", "status")).stdout,
      /^PAUSED since /m,
    );
    await page.screenshot({ path: `${shots}/2-paused.png` });
  } finally {
    await chromium.close();
    await serve.close();
    await etcd.close();
    await removeShots(shots);
  }
});
