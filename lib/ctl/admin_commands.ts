/**
 * locksmithctl's commands beyond the original's: the whole `status` (once,
 * `--watch`, `--all-groups`), `history`, `pause`, `resume`, `set-ttl` and
 * `unlock --stale`, over the {@link SemaphoreAdmin} port.
 *
 * @module
 */

import type { CtlInvocation } from "./args.ts";
import { oneLine } from "../common/errors.ts";
import { formatDuration } from "../common/duration.ts";
import {
  formatHistory,
  historyJson,
  historyLines,
  skippedWarning,
} from "./history_text.ts";
import { withClosing } from "../common/closing.ts";
import type { SemaphoreAdmin } from "../semaphore/admin.ts";
import {
  formatSlotTtl,
  type StoredSettings,
  storedSlotTtl,
} from "../semaphore/settings.ts";
import {
  ageSince,
  formatGroups,
  formatStatusView,
  groupsJson,
  idCell,
  statusJson,
} from "./status_text.ts";

/** What the admin commands need from the outside world. */
export interface AdminDeps {
  /** Opens the operator's port on the invocation's semaphore. */
  openAdmin(invocation: CtlInvocation): Promise<SemaphoreAdmin>;
  /** The time now (for ages). */
  now(): Date;
  /** Writes to standard output. */
  stdout(text: string): void;
  /** Writes to standard error. */
  stderr(text: string): void;
  /** Whether standard output is a terminal (`--watch` then redraws in place). */
  stdoutIsTerminal(): boolean;
  /** Aborts on SIGINT or SIGTERM (`--watch` then ends with exit status 0); `dispose` removes the handlers. */
  interrupts(): { signal: AbortSignal; dispose(): void };
}

/** A command's output: text, and the JSON fields for `--json`. */
export interface Output {
  /** What is printed without `--json`. */
  readonly text: string;
  /** The fields printed with `--json` (after `ok` and `command`). */
  readonly json: Record<string, unknown>;
}

function withAdmin<T>(
  inv: CtlInvocation,
  deps: AdminDeps,
  body: (admin: SemaphoreAdmin) => Promise<T>,
): Promise<T> {
  return withClosing(deps.openAdmin(inv), body);
}

/** A stored TTL for `set-ttl`'s output: `10m`, `off`, `default` (none stored), `unreadable`. */
function ttlText(settings: StoredSettings): string {
  if (settings.kind === "corrupt") return "unreadable";
  const ttl = storedSlotTtl(settings);
  return ttl === undefined ? "default" : formatSlotTtl(ttl);
}

/** Runs `status` (without `--watch`), `history`, `pause`, `resume`, `set-ttl` or `unlock --stale`. */
export function executeAdmin(
  inv: CtlInvocation,
  deps: AdminDeps,
): Promise<Output> {
  return withAdmin(inv, deps, (admin): Promise<Output> => {
    switch (inv.command) {
      case "status":
        return adminStatus(inv, deps, admin);
      case "history":
        return adminHistory(inv, deps, admin);
      case "pause":
      case "resume":
        return adminPause(inv.command === "pause", admin);
      case "set-ttl":
        return adminSetTtl(inv, admin);
      default: // unlock --stale
        return adminReclaim(deps, admin);
    }
  });
}

/** `status`: one group, or every group with `--all-groups`. */
async function adminStatus(
  inv: CtlInvocation,
  deps: AdminDeps,
  admin: SemaphoreAdmin,
): Promise<Output> {
  if (inv.allGroups) {
    const groups = await admin.groups();
    return { text: formatGroups(groups), json: groupsJson(groups) };
  }
  const view = await admin.view();
  const now = deps.now();
  return { text: formatStatusView(view, now), json: statusJson(view, now) };
}

/** `history`: one line per reboot since `--since`. */
async function adminHistory(
  inv: CtlInvocation,
  deps: AdminDeps,
  admin: SemaphoreAdmin,
): Promise<Output> {
  const histories = await admin.history(inv.allGroups);
  const warning = skippedWarning(histories);
  if (warning !== undefined) deps.stderr(`locksmithctl: ${warning}\n`);
  const now = deps.now();
  const sinceMs = now.getTime() - inv.sinceMs;
  const lines = historyLines(histories, sinceMs);
  return {
    text: formatHistory(
      lines,
      now,
      formatDuration(inv.sinceMs),
      inv.allGroups,
    ),
    json: historyJson(histories, lines, sinceMs),
  };
}

/** `pause` or `resume`. */
async function adminPause(
  paused: boolean,
  admin: SemaphoreAdmin,
): Promise<Output> {
  const changed = await admin.setPaused(paused, "locksmithctl");
  const text = paused
    ? changed
      ? "Paused: no new slot is given until 'locksmithctl resume'; holders keep theirs\n"
      : "Already paused\n"
    : changed
    ? "Resumed\n"
    : "Not paused\n";
  return { text, json: { key: admin.key, paused, changed } };
}

/** `set-ttl`: the old and the new stored slot TTL. */
async function adminSetTtl(
  inv: CtlInvocation,
  admin: SemaphoreAdmin,
): Promise<Output> {
  const seconds = inv.ttl === "default" ? undefined : inv.ttl;
  const { before, after } = await admin.setSlotTtl(seconds);
  return {
    text: `Old: ${ttlText(before)}\nNew: ${ttlText(after)}\n`,
    json: {
      key: admin.key,
      old: storedSlotTtl(before) ?? null,
      new: storedSlotTtl(after) ?? null,
    },
  };
}

/** `unlock --stale`: reclaims the slots whose lease expired. */
async function adminReclaim(
  deps: AdminDeps,
  admin: SemaphoreAdmin,
): Promise<Output> {
  const reclaimed = await admin.reclaimStale();
  const now = deps.now();
  const lines = reclaimed.map((h) => {
    const age = ageSince(h.record?.since, now);
    const held = age === undefined ? "" : `; held for ${age}`;
    const boot = h.record?.boot ? ` (boot ${idCell(h.record.boot)})` : "";
    return `Reclaimed ${
      idCell(h.id)
    }: its lease ${h.record?.lease} expired${held}${boot}\n`;
  });
  return {
    text: lines.length > 0 ? lines.join("") : "No stale slot\n",
    json: {
      key: admin.key,
      reclaimed: reclaimed.map((h) => ({
        id: h.id,
        since: h.record?.since ?? null,
        boot: h.record?.boot ?? null,
        lease: h.record?.lease ?? null,
      })),
    },
  };
}

/**
 * `status --watch`: prints the status now and after every change (a
 * watch, not polling) until SIGINT or SIGTERM; then exit status 0. On a
 * terminal each drawing replaces the last; elsewhere each one starts with
 * a `--- <time>` line. With `--json`, one JSON line per change. Trouble
 * (etcd unreachable, a lost watch) is one line on stderr, and retried.
 */
export async function watchStatus(
  inv: CtlInvocation,
  deps: AdminDeps,
): Promise<number> {
  const { signal, dispose } = deps.interrupts();
  try {
    await withAdmin(inv, deps, (admin) =>
      admin.watch({
        onView: (view) => {
          const now = deps.now();
          if (inv.json) {
            deps.stdout(
              `${
                JSON.stringify({
                  ok: true,
                  command: "status",
                  ...statusJson(view, now),
                })
              }\n`,
            );
            return;
          }
          const text = formatStatusView(view, now);
          deps.stdout(
            deps.stdoutIsTerminal()
              ? `\x1b[H\x1b[2J${admin.key} at ${now.toISOString()} (Ctrl-C to stop)\n\n${text}`
              : `--- ${now.toISOString()}\n${text}`,
          );
        },
        onTrouble: (message) =>
          deps.stderr(`locksmithctl: ${oneLine(message)}\n`),
      }, signal));
    return 0;
  } finally {
    dispose();
  }
}
