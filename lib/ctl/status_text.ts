/**
 * What `locksmithctl status` prints, as text and as JSON, from a view of
 * the semaphore and the time now. Pure.
 *
 * Without holder records, waiters, a pause or stored settings the text is
 * exactly the original's: `Available: N`, `Max: M`, and when there are
 * holders a blank line, `MACHINE ID` and the ids. Otherwise the holders
 * become a table (age, who took the slot, boot, lease) and the wait queue
 * follows, in order.
 *
 * @module
 */

import { isPrintable, quote } from "../common/errors.ts";
import { formatAge } from "../common/duration.ts";
import { MAX_ID_BYTES } from "../common/machine_id.ts";
import type { Semaphore } from "../semaphore/document.ts";
import type { GroupSummary } from "../semaphore/admin.ts";
import {
  hasDetails,
  type HolderState,
  livenessOf,
  type SemaphoreView,
  staleHolders,
} from "../semaphore/semaphore_view.ts";
import { formatSlotTtl, storedSlotTtl } from "../semaphore/settings.ts";

/** The first two lines of every `status`, as the original prints them. */
function counts(doc: Semaphore): string {
  return `Available: ${doc.semaphore}\nMax: ${doc.max}\n`;
}

/** The text of `status`: exactly as the original locksmithctl prints it. */
export function formatStatus(doc: Semaphore): string {
  let text = counts(doc);
  if (doc.holders.length > 0) {
    text += `\nMACHINE ID\n${doc.holders.join("\n")}\n`;
  }
  return text;
}

/** A stored value for a table cell: as it is when printable, else quoted and cut. */
function cell(text: string | undefined, max = 64): string {
  if (text === undefined || text === "") return "-";
  return isPrintable(text) && text.length <= max && !text.includes(" ")
    ? text
    : quote(text, max);
}

/** The age at `now` of a stored ISO time (`12m3s`), or `undefined` when it does not parse. */
export function ageSince(
  since: string | undefined,
  now: Date,
): string | undefined {
  const t = Date.parse(since ?? "");
  return Number.isNaN(t) ? undefined : formatAge(now.getTime() - t);
}

/** Columns padded to their widest cell, two spaces apart, no trailing blanks. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  }
  return rows.map((row) =>
    row.map((c, i) => i === row.length - 1 ? c : c.padEnd(widths[i]!))
      .join("  ").trimEnd()
  ).join("\n") + "\n";
}

/**
 * An id (or another stored value) as listed: in full as stored when
 * printable (as the original lists ids), else quoted and cut at
 * {@link MAX_ID_BYTES} characters.
 */
export function idCell(id: string): string {
  return isPrintable(id) ? id : quote(id, MAX_ID_BYTES);
}

function holderRow(h: HolderState, now: Date): string[] {
  const r = h.record;
  const liveness = livenessOf(h);
  return [
    idCell(h.id),
    ageSince(r?.since, now) ?? "-",
    cell(r?.by),
    cell(r?.boot),
    liveness === "untracked" ? "-" : liveness,
  ];
}

/**
 * The text of `status` for `view` at `now`: the original's when there is
 * nothing more to say (see the module documentation).
 */
export function formatStatusView(view: SemaphoreView, now: Date): string {
  if (!hasDetails(view)) return formatStatus(view.doc);
  let text = counts(view.doc);
  if (view.paused) {
    text += `PAUSED${
      view.pausedSince ? ` since ${cell(view.pausedSince)}` : ""
    }: no new slot is given until 'locksmithctl resume'\n`;
  }
  const s = view.settings;
  const ttl = storedSlotTtl(s);
  if (s.kind === "corrupt") {
    text += `Slot TTL: none (the stored settings do not parse: ${s.defect})\n`;
  } else if (ttl !== undefined) {
    text += `Slot TTL: ${formatSlotTtl(ttl)}\n`;
  }
  if (view.holders.length > 0) {
    text += `\n${
      table([
        ["MACHINE ID", "HELD FOR", "BY", "BOOT", "LEASE"],
        ...view.holders.map((h) => holderRow(h, now)),
      ])
    }`;
  }
  if (view.waiting > 0) {
    const rows = view.waiters.map((w) => {
      const age = ageSince(w.since, now);
      return [idCell(w.id), age === undefined ? "-" : `${age} ago`];
    });
    text += `\n${table([["WAITING", "SINCE"], ...rows])}`;
    if (view.waiting > view.waiters.length) {
      text += `... and ${view.waiting - view.waiters.length} more\n`;
    }
  }
  return text;
}

function storedTtl(view: SemaphoreView): number | null {
  return storedSlotTtl(view.settings) ?? null;
}

/** The JSON fields of `status` for `view` at `now` (the original fields first). */
export function statusJson(
  view: SemaphoreView,
  now: Date,
): Record<string, unknown> {
  return {
    key: view.key,
    available: view.doc.semaphore,
    max: view.doc.max,
    holders: view.doc.holders,
    paused: view.paused,
    pausedSince: view.pausedSince ?? null,
    slotTtlSeconds: storedTtl(view),
    settingsDefect: view.settings.kind === "corrupt"
      ? view.settings.defect
      : null,
    holderDetails: view.holders.map((h) => {
      const since = Date.parse(h.record?.since ?? "");
      return {
        id: h.id,
        since: h.record?.since ?? null,
        heldSeconds: Number.isNaN(since)
          ? null
          : Math.max(0, Math.floor((now.getTime() - since) / 1_000)),
        by: h.record?.by ?? null,
        boot: h.record?.boot ?? null,
        lease: h.record?.lease ?? null,
        liveness: livenessOf(h),
      };
    }),
    waiting: view.waiters.map((w) => ({ id: w.id, since: w.since ?? null })),
    waitingCount: view.waiting,
  };
}

/** The group as shown in the table: `(default)` for the fleet-wide semaphore. */
function groupName(group: string): string {
  return group === "" ? "(default)" : cell(group);
}

/** The text of `status --all-groups`: one row per semaphore. */
export function formatGroups(groups: readonly GroupSummary[]): string {
  return table([
    [
      "GROUP",
      "AVAILABLE",
      "MAX",
      "HOLDERS",
      "STALE",
      "WAITING",
      "SLOT TTL",
      "STATE",
    ],
    ...groups.map((g) => {
      if (!("view" in g)) {
        return [groupName(g.group), "-", "-", "-", "-", "-", "-", g.error];
      }
      const v = g.view;
      const ttl = storedTtl(v);
      return [
        groupName(g.group),
        String(v.doc.semaphore),
        String(v.doc.max),
        String(v.doc.holders.length),
        String(staleHolders(v).length),
        String(v.waiting),
        ttl === null ? "-" : formatSlotTtl(ttl),
        v.paused ? "PAUSED" : "",
      ];
    }),
  ]);
}

/** The JSON of `status --all-groups`. */
export function groupsJson(
  groups: readonly GroupSummary[],
): Record<string, unknown> {
  return {
    groups: groups.map((g) =>
      "view" in g
        ? {
          group: g.group,
          key: g.view.key,
          available: g.view.doc.semaphore,
          max: g.view.doc.max,
          holders: g.view.doc.holders,
          stale: staleHolders(g.view).map((h) => h.id),
          waitingCount: g.view.waiting,
          slotTtlSeconds: storedTtl(g.view),
          paused: g.view.paused,
        }
        : { group: g.group, key: g.key, error: g.error }
    ),
  };
}
