/** Reads locksmithd's Prometheus `/metrics` over real HTTP. */
import assert from "node:assert/strict";

/** Every metric family locksmithd exposes, with its `# TYPE`. */
export const DAEMON_METRIC_FAMILIES: Readonly<Record<string, string>> = {
  locksmithd_build_info: "gauge",
  locksmithd_reboot_needed: "gauge",
  locksmithd_waiting_since_timestamp_seconds: "gauge",
  locksmithd_slot_held: "gauge",
  locksmithd_window_open: "gauge",
  locksmithd_queue_position: "gauge",
  locksmithd_last_reboot_request_timestamp_seconds: "gauge",
  locksmithd_lock_attempts_total: "counter",
  locksmithd_etcd_request_duration_seconds: "histogram",
  locksmithd_commands_total: "counter",
  locksmithd_notifications_total: "counter",
};

/** One scrape of `/metrics`. */
export interface Scrape {
  /** `# TYPE` of each metric family. */
  types: Map<string, string>;
  /** `# HELP` of each metric family. */
  helps: Map<string, string>;
  /** Sample values by `name{labels}` exactly as exposed. */
  samples: Map<string, number>;
  contentType: string | null;
}

/** Scrapes `http://127.0.0.1:PORT/metrics`; every line must parse. */
export async function scrape(port: number): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  const text = await response.text();
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (TYPE|HELP) (\S+) (.*)$/.exec(line);
    if (meta) {
      (meta[1] === "TYPE" ? types : helps).set(
        meta[2] as string,
        meta[3] as string,
      );
      continue;
    }
    const sample = /^(\S+) (\S+)$/.exec(line);
    assert.ok(sample, `unparsable line ${JSON.stringify(line)}`);
    samples.set(sample[1] as string, Number(sample[2]));
  }
  return {
    types,
    helps,
    samples,
    contentType: response.headers.get("content-type"),
  };
}
