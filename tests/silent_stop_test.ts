/**
 * No silent stop (issue 19): when every source of "reboot needed" fails
 * (update_engine answers GetStatus with nonsense, the sentinel file cannot
 * be checked), locksmithd ends with a non-zero status and one line naming
 * each source and its failure, so that systemd restarts it; it never ends
 * with status 0 as if it had been asked to stop.
 */

import assert from "node:assert/strict";
import { startMachine } from "./harness/machine.ts";

Deno.test("locksmithd exits 1 with one line naming both failures when no reboot-need source works", async () => {
  // The sentinel's directory is missing at start (fine: no reboot needed);
  // at the first GetStatus it becomes a file, so every check fails after.
  const dir = await Deno.makeTempDir({ prefix: "locksmith-silent-" });
  const parent = `${dir}/sentinel-dir`;
  const m = await startMachine({
    id: "no-source",
    endpoint: "http://127.0.0.1:1",
    env: { LOCKSMITHD_REBOOT_SENTINEL: `${parent}/reboot-required` },
    allowRead: [dir],
  });
  m.bus.updateEngine.setRawReply({ signature: "s", body: ["nonsense"] });
  m.bus.updateEngine.onGetStatus = () => Deno.writeTextFileSync(parent, "");
  try {
    m.startDaemon();
    const code = await m.exited();
    const log = m.lines.join("\n");
    assert.equal(code, 1, log);
    assert.match(
      log,
      /ERROR no source can tell whether a reboot is needed \(update_engine: .*; sentinel file .*sentinel-dir\/reboot-required: cannot check reboot sentinel .*\): stopping so that systemd restarts locksmithd/,
    );
  } finally {
    await m.close();
    await Deno.remove(dir, { recursive: true });
  }
});
