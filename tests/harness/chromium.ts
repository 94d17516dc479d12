/**
 * Debian's Chromium, headless, driven by puppeteer-core, for the browser
 * tests: the installed executable (`apt-get install -y chromium`), a fresh
 * profile in a temporary folder, nothing fetched from the network.
 */

import puppeteer, { type Browser } from "puppeteer-core";

/** Where Debian installs Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** A running headless Chromium and its profile folder. */
export interface HeadlessChromium {
  /** The browser. */
  readonly browser: Browser;
  /** Closes the browser and removes the profile. */
  close(): Promise<void>;
}

/** Starts Chromium headless; throws with an install hint when it is missing. */
export async function startChromium(): Promise<HeadlessChromium> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `${CHROMIUM} is missing: apt-get install -y chromium (scripts/dev.sh does)`,
    );
  }
  const profile = await Deno.makeTempDir({ prefix: "locksmith-chromium-" });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}
