/**
 * What each locksmithctl subcommand does, given its dependencies (a lock
 * store, the machine id, D-Bus actions and output streams), so that the
 * command logic is tested without spawning processes.
 *
 * @module
 */

import type { CtlCommand, CtlInvocation } from "./args.ts";
import { ctlHelp } from "./ctl_help.ts";
import {
  ContentionError,
  errorKind,
  exitCodeOf,
  isPrintable,
  oneLine,
  quote,
  SemaphoreRefusedError,
  UsageError,
} from "../common/errors.ts";
import {
  lockSlot,
  type LockStore,
  setMaxSlots,
  unlockSlot,
} from "../semaphore/lock_store.ts";
import { INITIAL_SEMAPHORE, type Semaphore } from "../semaphore/document.ts";
import type { HolderRecord } from "../semaphore/holder_record.ts";
import { VERSION } from "../common/version.ts";
import { withClosing } from "../common/closing.ts";
import { type AdminDeps, executeAdmin, watchStatus } from "./admin_commands.ts";

/** systemd-logind, as `locksmithctl reboot` uses it. */
export interface LogindSession {
  /** logind's `CanReboot()`: `yes`, `challenge`, `no` or `na`. */
  canReboot(): Promise<string>;
  /** `Reboot(false)`. */
  reboot(): Promise<void>;
  /** Closes the bus connection. */
  close(): Promise<void>;
}

/** Everything locksmithctl needs from the outside world. */
export interface CtlDeps extends AdminDeps {
  /** Opens the semaphore store selected by the invocation's endpoints, TLS and group. */
  openStore(invocation: CtlInvocation): Promise<LockStore>;
  /** This machine's id (`/etc/machine-id`). */
  machineId(): Promise<string>;
  /** Whether the process runs as root (for `reboot`). */
  isRoot(): boolean;
  /** Throws a one-line `UsageError` when Deno's permissions do not allow what the invocation needs. */
  checkPermissions(invocation: CtlInvocation): Promise<void>;
  /** Connects to systemd-logind on the system bus (for `reboot`). */
  connectLogind(): Promise<LogindSession>;
  /** Emits update_engine's need-reboot signal (for `send-need-reboot`). */
  sendNeedReboot(): Promise<void>;
  /** Writes to standard output. */
  stdout(text: string): void;
  /** Writes to standard error. */
  stderr(text: string): void;
}

const ACTION: Record<CtlCommand, string> = {
  status: "reading status",
  lock: "locking",
  unlock: "unlocking",
  "set-max": "setting max",
  "set-ttl": "setting the slot TTL",
  pause: "pausing",
  resume: "resuming",
  reset: "resetting",
  reboot: "rebooting",
  "send-need-reboot": "sending need-reboot",
  help: "showing help",
};

/** Longest stored text that `reset --force` prints in full; `--json` always gives all of it. */
export const REPLACED_SHOWN_CHARS = 1_000;

/**
 * The replaced text as `reset --force` prints it: as stored when it is short
 * and printable, else as a JSON string cut to {@link REPLACED_SHOWN_CHARS}
 * with its length, so that a huge or hostile document can neither flood nor
 * drive the terminal.
 */
export function formatReplaced(raw: string | undefined): string {
  if (raw === undefined) return "(absent)";
  if (raw.length <= REPLACED_SHOWN_CHARS && isPrintable(raw)) return raw;
  return `${quote(raw, REPLACED_SHOWN_CHARS)}${
    raw.length > REPLACED_SHOWN_CHARS ? "; --json prints it all" : ""
  }`;
}

function slotFields(key: string, doc: Semaphore): Record<string, unknown> {
  return { key, available: doc.semaphore, max: doc.max, holders: doc.holders };
}

/** The holder record of a slot that locksmithctl takes for `id` now. */
function ctlRecord(id: string, deps: CtlDeps): HolderRecord {
  return { id, since: deps.now().toISOString(), by: "locksmithctl" };
}

function withStore<T>(
  invocation: CtlInvocation,
  deps: CtlDeps,
  body: (store: LockStore) => Promise<T>,
): Promise<T> {
  return withClosing(deps.openStore(invocation), body);
}

async function execute(
  inv: CtlInvocation,
  deps: CtlDeps,
): Promise<{ text: string; json: Record<string, unknown> }> {
  switch (inv.command) {
    case "help": {
      const help = ctlHelp(inv.helpTopic);
      return { text: help, json: { help } };
    }
    case "status":
    case "pause":
    case "resume":
    case "set-ttl":
      return await executeAdmin(inv, deps);
    case "lock":
    case "unlock": {
      if (inv.command === "unlock" && inv.stale) {
        return await executeAdmin(inv, deps);
      }
      const id = inv.id ?? await deps.machineId();
      return await withStore(inv, deps, async (store) => {
        const { after } = inv.command === "lock"
          ? await lockSlot(store, id, { record: ctlRecord(id, deps) })
          : await unlockSlot(store, id);
        return { text: "", json: { id, ...slotFields(store.key, after) } };
      });
    }
    case "set-max":
      return await withStore(inv, deps, async (store) => {
        const { before, after } = await setMaxSlots(store, inv.max as number);
        return {
          text: `Old: ${before.max}\nNew: ${after.max}\n`,
          json: {
            old: before.max,
            new: after.max,
            ...slotFields(store.key, after),
          },
        };
      });
    case "reset":
      return await withStore(inv, deps, async (store) => {
        const { raw, revision } = await store.readRaw();
        if (!inv.force) {
          throw new UsageError(
            `reset would replace the document at ${store.key}: ${
              raw === undefined ? "(absent)" : quote(raw, 200)
            }; add --force to confirm`,
          );
        }
        if (!await store.replace(revision, INITIAL_SEMAPHORE)) {
          throw new ContentionError(
            `the document at ${store.key} changed while resetting it; nothing was replaced`,
          );
        }
        return {
          text: `Replaced: ${formatReplaced(raw)}\nNew: ${
            JSON.stringify(INITIAL_SEMAPHORE)
          }\n`,
          json: {
            key: store.key,
            replaced: raw ?? null,
            new: INITIAL_SEMAPHORE,
          },
        };
      });
    case "reboot":
      return await rebootCommand(inv, deps);
    case "send-need-reboot":
      await deps.sendNeedReboot();
      return {
        text: "",
        json: { signal: "UPDATE_STATUS_UPDATED_NEED_REBOOT" },
      };
  }
}

/**
 * `reboot`: checks what can be checked before taking a slot (root, the
 * bus, logind's `CanReboot`), takes this machine's slot, asks logind to
 * reboot, and gives the slot back when logind refuses.
 */
async function rebootCommand(
  inv: CtlInvocation,
  deps: CtlDeps,
): Promise<{ text: string; json: Record<string, unknown> }> {
  if (!deps.isRoot()) throw new UsageError("reboot must be run as root");
  const id = await deps.machineId();
  return await withClosing(deps.connectLogind(), async (logind) => {
    const can = await logind.canReboot();
    if (can !== "yes") {
      throw new Error(
        `logind says CanReboot is ${
          quote(can)
        }: this process may not reboot the machine; no slot was taken`,
      );
    }
    return await withStore(inv, deps, async (store) => {
      let took = false;
      try {
        await lockSlot(store, id, { record: ctlRecord(id, deps) });
        took = true;
      } catch (error) {
        // Our own slot from an earlier attempt is ours to use.
        if (
          !(error instanceof SemaphoreRefusedError &&
            error.reason === "holder_exists")
        ) {
          throw error;
        }
      }
      try {
        await logind.reboot();
      } catch (error) {
        if (!took) {
          throw new Error(
            `logind refused the reboot: ${
              oneLine(error)
            }; the slot ${id} held before was kept`,
          );
        }
        try {
          await unlockSlot(store, id);
        } catch (release) {
          throw new Error(
            `logind refused the reboot: ${
              oneLine(error)
            }; releasing the slot taken for ${id} failed too (${
              oneLine(release)
            }): run locksmithctl unlock ${id}`,
          );
        }
        throw new Error(
          `logind refused the reboot: ${
            oneLine(error)
          }; the slot taken for ${id} was released`,
        );
      }
      return { text: "", json: { id, reboot: "requested" } };
    });
  });
}

/**
 * Runs one parsed invocation and returns the exit status: 0 success, 1 refused
 * or failed, 2 usage error. Errors are one line on stderr (`Error locking: ...`);
 * with `--json` stdout also gets `{"ok": false, "error": <kind>, ...}`.
 */
export async function runCtlInvocation(
  inv: CtlInvocation,
  deps: CtlDeps,
): Promise<number> {
  if (inv.version) {
    deps.stdout(
      inv.json
        ? `${JSON.stringify({ version: VERSION })}\n`
        : `locksmithctl ${VERSION}\n`,
    );
    return 0;
  }
  try {
    await deps.checkPermissions(inv);
    if (inv.command === "status" && inv.watch) {
      return await watchStatus(inv, deps);
    }
    const { text, json } = await execute(inv, deps);
    if (inv.json) {
      deps.stdout(
        `${JSON.stringify({ ok: true, command: inv.command, ...json })}\n`,
      );
    } else {
      deps.stdout(text);
    }
    return 0;
  } catch (error) {
    const message = oneLine(error);
    const prefix = error instanceof UsageError
      ? "locksmithctl"
      : `Error ${ACTION[inv.command]}`;
    deps.stderr(`${prefix}: ${message}\n`);
    if (inv.json) {
      deps.stdout(
        `${
          JSON.stringify({
            ok: false,
            command: inv.command,
            error: errorKind(error),
            message,
          })
        }\n`,
      );
    }
    return exitCodeOf(error);
  }
}
