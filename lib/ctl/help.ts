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

const GLOBAL_FLAG_ROWS: [string, string][] = CTL_FLAGS
  .filter((flag) => flag.command === undefined)
  .map((flag) => [flagSynopsis(flag), flagHelp(flag)]);

const [firstEnv, secondEnv] = valueFlags().map((f) => envNameOf(f.name));
const ENV_NOTE = wrapWords(
  `Each flag with a value can also be set with LOCKSMITHCTL_<FLAG>, e.g. ${firstEnv}, ${secondEnv}; a flag on the command line wins.`,
  HELP_WIDTH,
).join("\n");

const GLOBAL_FLAGS = `Global flags (before or after the command):
${helpColumns(GLOBAL_FLAG_ROWS)}

${ENV_NOTE}

Exit status: 0 success, 1 refused or failed, 2 usage error.`;

const COMMAND_HELP: Record<CtlCommand, string> = {
  status: `Usage: locksmithctl status

Prints the semaphore: available slots, the maximum and the holders.
  Available: 0
  Max: 1

  MACHINE ID
  69d27b356a94476da859461d3a3bc6fd`,
  lock: `Usage: locksmithctl lock [ID]

Takes a slot for ID (default: this machine's /etc/machine-id). Silent on
success; fails when no slot is free or ID already holds one.`,
  unlock: `Usage: locksmithctl unlock [ID]

Releases the slot of ID (default: this machine's /etc/machine-id), e.g. of a
machine that went away while holding it. Fails when ID holds no slot.`,
  "set-max": `Usage: locksmithctl set-max N

Sets the number of machines that may reboot at once. Prints the old and the
new maximum. Holders are kept when N is below their number; 0 pauses reboots.`,
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
    return `${COMMAND_HELP[command]}\n\n${GLOBAL_FLAGS}\n`;
  }
  return `locksmithctl: inspect and control the reboot semaphore of a locksmith fleet.

Usage: locksmithctl [flags] COMMAND [args]

Commands:
  status            show available slots, the maximum and the holders
  lock [ID]         take a slot (default ID: /etc/machine-id)
  unlock [ID]       release a slot
  set-max N         set how many machines may reboot at once
  reset --force     replace a corrupt semaphore document with the initial one
  reboot            take this machine's slot, then reboot through logind
  send-need-reboot  tell locksmithd that a reboot is needed (for testing)
  help [COMMAND]    show help

${GLOBAL_FLAGS}
`;
}
