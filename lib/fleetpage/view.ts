/**
 * The fleet page's drawing: from the server's data (`PageSnapshot`) to
 * HTML, with every age measured against the server's time. Pure, and
 * self-contained on purpose: the page's script is these functions' own
 * source text (`page.ts` joins them), so each may call only the others
 * named in {@link VIEW_FUNCTIONS} (`formatAge` included) and the
 * browser's built-ins.
 *
 * @module
 */

import { formatAge } from "../common/duration.ts";
import type { PageGroup, PageReboot, PageSnapshot } from "./snapshot.ts";

/** Escapes text for HTML text and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The time of day of an ISO time in the viewer's zone, `-` when absent. */
export function clockText(iso: string | undefined): string {
  if (iso === undefined) return "-";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "-";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

/** The age at `nowMs` of an ISO time (`12m3s`), or `-`. */
export function ageText(iso: string | undefined, nowMs: number): string {
  const t = iso === undefined ? NaN : Date.parse(iso);
  return Number.isNaN(t) ? "-" : formatAge(nowMs - t);
}

/** The words for an outcome. */
export function outcomeText(outcome: string): string {
  const words: Record<string, string> = {
    holding: "away, not back yet",
    lost: "no end recorded",
    back: "back",
    returned: "returned unused",
    reclaimed: "never came back: reclaimed",
    unlocked: "unlocked by an operator",
  };
  return words[outcome] ?? outcome;
}

/** One reboot's table row. */
export function rebootRow(r: PageReboot, nowMs: number): string {
  const away = r.awayMs !== undefined
    ? formatAge(r.awayMs)
    : r.back === undefined
    ? `${ageText(r.took, nowMs)}+`
    : "-";
  return `<tr class="${r.never ? "never" : ""}"><td class="id">${
    r.never ? "&#9888; " : ""
  }${escapeHtml(r.id)}</td><td>${clockText(r.took)}</td><td>${
    clockText(r.back)
  }</td><td>${away}</td><td>${escapeHtml(outcomeText(r.outcome))}</td></tr>`;
}

/** One group's card; `canPause`: show the pause or resume button. */
export function groupCard(
  g: PageGroup,
  nowMs: number,
  canPause: boolean,
): string {
  const name = g.group === "" ? "default" : g.group;
  const head = `<h2>${escapeHtml(name)}${
    g.paused ? ' <span class="badge">paused</span>' : ""
  }</h2>`;
  if (g.error !== undefined) {
    return `<section class="group" data-group="${
      escapeHtml(g.group)
    }">${head}<p class="error">${escapeHtml(g.error)}</p></section>`;
  }
  const button = canPause
    ? `<button data-action="${g.paused ? "resume" : "pause"}" data-group="${
      escapeHtml(g.group)
    }">${g.paused ? "Resume" : "Pause"}</button>`
    : "";
  const holders = g.holders.length === 0
    ? '<p class="none">No machine holds a slot.</p>'
    : `<table><tr><th>Holding</th><th>for</th><th>by</th><th>boot</th><th>lease</th></tr>${
      g.holders.map((h) =>
        `<tr class="${
          h.liveness === "expired" ? "never" : ""
        }"><td class="id">${escapeHtml(h.id)}</td><td>${
          ageText(h.since, nowMs)
        }</td><td>${escapeHtml(h.by ?? "-")}</td><td class="id">${
          escapeHtml((h.boot ?? "-").slice(0, 8))
        }</td><td>${
          h.liveness === "untracked" ? "-" : escapeHtml(h.liveness)
        }</td></tr>`
      ).join("")
    }</table>`;
  const queue = g.waiting === 0
    ? ""
    : `<h3>Queue (${g.waiting})</h3><ol>${
      g.queue.map((w) =>
        `<li><span class="id">${escapeHtml(w.id)}</span> waiting ${
          ageText(w.since, nowMs)
        }</li>`
      ).join("")
    }</ol>`;
  const reboots = g.reboots.length === 0
    ? '<p class="none">No reboot recorded yet.</p>'
    : `<table class="history"><tr><th>Machine</th><th>took</th><th>back</th><th>away</th><th>outcome</th></tr>${
      g.reboots.map((r) => rebootRow(r, nowMs)).join("")
    }</table>`;
  return `<section class="group" data-group="${
    escapeHtml(g.group)
  }">${head}<p class="counts">${g.available} of ${g.max} slot${
    g.max === 1 ? "" : "s"
  } free${
    g.paused ? ` &middot; paused ${ageText(g.pausedSince, nowMs)}` : ""
  }${button}</p>${holders}${queue}<h3>Recent reboots</h3>${reboots}${
    g.skipped > 0
      ? `<p class="none">${g.skipped} history entr${
        g.skipped === 1 ? "y" : "ies"
      } skipped (do not parse).</p>`
      : ""
  }</section>`;
}

/**
 * The whole fleet at the viewer's `clientNowMs`, given the server's data
 * (received when the viewer's clock said `receivedMs`) and the groups the
 * viewer's token may pause.
 */
export function renderFleet(
  s: PageSnapshot,
  receivedMs: number,
  clientNowMs: number,
  pausable: readonly string[],
): string {
  const nowMs = Date.parse(s.now) + (clientNowMs - receivedMs);
  return s.groups.map((g) => groupCard(g, nowMs, pausable.includes(g.group)))
    .join("");
}

/** The functions the page's script is made of, in order (see the module documentation). */
export const VIEW_FUNCTIONS: readonly ((...args: never[]) => unknown)[] = [
  formatAge,
  escapeHtml,
  clockText,
  ageText,
  outcomeText,
  rebootRow,
  groupCard,
  renderFleet,
];
