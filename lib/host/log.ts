/**
 * locksmithd's log: one line per decision on stderr. Under systemd (when
 * `JOURNAL_STREAM` is set) lines carry syslog priority prefixes (`<6>`,
 * `<4>`, `<3>`) that the journal turns into levels; elsewhere each line starts
 * with an ISO timestamp and the level.
 *
 * @module
 */

import type { DaemonLog } from "../machine/machine_ports.ts";

const PRIORITY = { info: 6, warn: 4, error: 3 } as const;

/**
 * Creates a logger writing whole lines through `write`.
 *
 * @param write writes one line (with its newline)
 * @param journal whether stderr is connected to the systemd journal
 * @param now the clock used for timestamps outside the journal
 */
export function createDaemonLog(
  write: (line: string) => void,
  journal: boolean,
  now: () => Date = () => new Date(),
): DaemonLog {
  const line = (level: keyof typeof PRIORITY, message: string) => {
    const text = message.replace(/\s*\n\s*/g, " ");
    write(
      journal
        ? `<${PRIORITY[level]}>${text}\n`
        : `${now().toISOString()} ${level.toUpperCase().padEnd(5)} ${text}\n`,
    );
  };
  return {
    info: (m) => line("info", m),
    warn: (m) => line("warn", m),
    error: (m) => line("error", m),
  };
}
