/**
 * locksmithctl's help texts.
 *
 * @module
 */

import type { CtlCommand } from "./args.ts";
import {
  HELP_WIDTH,
  helpColumns,
  plainText,
  wrapWords,
} from "../common/help_layout.ts";
import {
  CTL_FLAGS,
  type CtlFlag,
  envNameOf,
  flagSynopsis,
  valueFlags,
} from "./flags.ts";

/** A flag's right-hand column in the help: what it does, and its default. */
function flagHelp(flag: CtlFlag): string {
  const shown = flag.value === undefined || flag.shownDefault === undefined
    ? ""
    : `. Default: ${flag.shownDefault}`;
  return plainText(`${flag.description}${shown}`);
}

/** The end of every help text: the global flags, their variables, the exit status (built when help is asked for). */
function globalFlags(): string {
  const rows: [string, string][] = CTL_FLAGS
    .filter((flag) => flag.command === undefined)
    .map((flag) => [flagSynopsis(flag), flagHelp(flag)]);
  const [firstEnv, secondEnv] = valueFlags().map((f) => envNameOf(f.name));
  const envNote = wrapWords(
    `Each flag with a value can also be set with LOCKSMITHCTL_<FLAG>, e.g. ${firstEnv}, ${secondEnv}; a flag on the command line wins.`,
    HELP_WIDTH,
  ).join("\n");
  return `Global flags (before or after the command):
${helpColumns(rows)}

${envNote}

Exit status: 0 success, 1 refused or failed, 2 usage error.`;
}

const COMMAND_HELP: Record<CtlCommand, string> = {
  status: `Usage: locksmithctl status [--watch | --all-groups]

Prints the semaphore: available slots, the maximum and the holders.
  Available: 0
  Max: 1

  MACHINE ID
  69d27b356a94476da859461d3a3bc6fd

When there is more to say, it also says whether the semaphore is paused and
its stored slot TTL, gives each holder's age, who took the slot, its boot
and its lease (alive, or expired: stale), and lists the wait queue in order.

  --watch       redraw on every change (a watch, not polling) until Ctrl-C;
                with --json, one JSON line per change
  --all-groups  one table of every group's semaphore`,
  lock: `Usage: locksmithctl lock [ID]

Takes a slot for ID (default: this machine's /etc/machine-id). Silent on
success; fails when no slot is free or ID already holds one.`,
  unlock: `Usage: locksmithctl unlock [ID]
       locksmithctl unlock --stale

Releases the slot of ID (default: this machine's /etc/machine-id), e.g. of a
machine that went away while holding it. Fails when ID holds no slot.

With --stale, reclaims every slot whose holder's lease expired (its
locksmithd stopped renewing it), as a slot TTL would, and prints each one.`,
  "set-max": `Usage: locksmithctl set-max N

Sets the number of machines that may reboot at once. Prints the old and the
new maximum. Holders are kept when N is below their number; 0 pauses reboots.`,
  "set-ttl": `Usage: locksmithctl set-ttl DURATION | 0 | off | default

Stores the slot TTL with the semaphore, for every locksmithd of the group:
the slot of a holder whose locksmithd has not renewed it for DURATION (a
dead machine) is reclaimed by the first machine waiting. At least 1m, and
longer than the slowest reboot (the machine is down meanwhile). 0 or off
stores "no TTL"; default removes the stored TTL, leaving each locksmithd's
LOCKSMITHD_SLOT_TTL. Prints the old and the new TTL.`,
  pause: `Usage: locksmithctl pause

Stops new slots being taken (locksmithd, locksmithctl lock, FleetLock) without
changing the maximum; holders keep their slots and can release them.`,
  resume: `Usage: locksmithctl resume

Lets slots be taken again after 'locksmithctl pause'.`,
  reset: `Usage: locksmithctl reset --force

Replaces the semaphore document with the initial one (max 1, no holders),
e.g. when it is corrupt. Without --force it only says what it would replace.
Prints the document it replaced.`,
  reboot: `Usage: locksmithctl reboot

Must run as root. Takes this machine's slot, then asks systemd-logind to reboot.`,
  "send-need-reboot": `Usage: locksmithctl send-need-reboot

Emits update_engine's StatusUpdate signal with UPDATE_STATUS_UPDATED_NEED_REBOOT
on the system bus, so that locksmithd acts as after an OS update (for testing).`,
  help: `Usage: locksmithctl help [COMMAND]

Shows the list of commands, or the help of COMMAND.`,
};

/** The help text of `command`, or the overview when absent; ends with the global flags. */
export function ctlHelp(command?: CtlCommand): string {
  if (command !== undefined && command !== "help") {
    return `${COMMAND_HELP[command]}\n\n${globalFlags()}\n`;
  }
  return `locksmithctl: inspect and control the reboot semaphore of a locksmith fleet.

Usage: locksmithctl [flags] COMMAND [args]

Commands:
  status            show available slots, the maximum, holders and waiters
  lock [ID]         take a slot (default ID: /etc/machine-id)
  unlock [ID]       release a slot (--stale: every expired one)
  set-max N         set how many machines may reboot at once
  set-ttl DURATION  reclaim the slot of a machine silent for this long
  pause             stop new slots being taken (holders keep theirs)
  resume            let slots be taken again
  reset --force     replace a corrupt semaphore document with the initial one
  reboot            take this machine's slot, then reboot through logind
  send-need-reboot  tell locksmithd that a reboot is needed (for testing)
  help [COMMAND]    show help

${globalFlags()}
`;
}
