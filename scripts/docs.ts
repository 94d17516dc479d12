/**
 * Generates the parts of README.md that follow from data: locksmithd's
 * synopsis and key table (`lib/config/config_keys.ts`) and locksmithctl's
 * global flag table (`lib/ctl/flags.ts`). Each part sits between
 * `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->`; the
 * text around them is left alone.
 *
 * `deno task docs` rewrites README.md; `tests/docs_test.ts` fails when
 * README.md differs from what this generates. Tables are laid out as
 * `deno fmt` lays out Markdown tables, so that it leaves them unchanged.
 *
 * @module
 */

import { DAEMON_KEYS } from "../lib/config/config_keys.ts";
import { daemonSynopsis } from "../lib/config/daemon_args.ts";
import { CTL_FLAGS, envNameOf, flagSynopsis } from "../lib/ctl/flags.ts";

/** Where README.md is. */
export const README_URL: URL = new URL("../README.md", import.meta.url);

/** One generated part of the README: its marker name and its content. */
export interface GeneratedSection {
  /** The name in the markers, e.g. `daemon-keys`. */
  readonly name: string;
  /** What goes between the markers, without the blank lines around it. */
  readonly content: string;
}

const code = (text: string): string => `\`${text}\``;

/**
 * A Markdown table as `deno fmt` writes it: cells padded to the widest cell
 * of their column, a dash row as wide, `|` in cells escaped.
 */
export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const cells = [header, ...rows].map((row) =>
    row.map((cell) => cell.replaceAll("|", "\\|"))
  );
  const widths = header.map((_, i) =>
    Math.max(1, ...cells.map((row) => (row[i] ?? "").length))
  );
  const line = (row: readonly string[]): string =>
    `| ${widths.map((w, i) => (row[i] ?? "").padEnd(w)).join(" | ")} |`;
  const [head, ...body] = cells;
  return [
    line(head ?? []),
    line(widths.map((w) => "-".repeat(w))),
    ...body.map(line),
  ].join("\n");
}

/** locksmithd's keys: key (and fallback), flag, default, meaning. */
function daemonKeysTable(): string {
  return markdownTable(
    ["key", "flag", "default", "meaning"],
    DAEMON_KEYS.map((row) => [
      row.fallback === undefined
        ? code(row.key)
        : `${code(row.key)} (fallback ${code(row.fallback)})`,
      row.flag === undefined
        ? ""
        : code(`--${row.flag.name} ${row.flag.value}`),
      row.shownDefault ?? "",
      row.description,
    ]),
  );
}

/** locksmithctl's global flags: flag, environment variable, default, meaning. */
function ctlFlagsTable(): string {
  return markdownTable(
    ["flag", "environment", "default", "meaning"],
    CTL_FLAGS.filter((flag) => flag.command === undefined).map((flag) => [
      code(flagSynopsis(flag)),
      flag.value === undefined ? "" : code(envNameOf(flag.name)),
      flag.value === undefined ? "" : flag.shownDefault ?? "",
      flag.description,
    ]),
  );
}

/** Every generated part of the README, in the order they appear. */
export function generatedSections(): GeneratedSection[] {
  return [
    { name: "ctl-flags", content: ctlFlagsTable() },
    {
      name: "daemon-synopsis",
      content: ["```", daemonSynopsis(), "```"].join("\n"),
    },
    { name: "daemon-keys", content: daemonKeysTable() },
  ];
}

function markers(name: string): [string, string] {
  return [
    `<!-- BEGIN generated: ${name} -->`,
    `<!-- END generated: ${name} -->`,
  ];
}

/** The text between the markers of section `name`, or `undefined` when the markers are missing. */
export function sectionText(readme: string, name: string): string | undefined {
  const [begin, end] = markers(name);
  const start = readme.indexOf(begin);
  const stop = readme.indexOf(end, start);
  if (start === -1 || stop === -1) return undefined;
  return readme.slice(start + begin.length, stop);
}

/** What the markers of a section enclose: the content between blank lines. */
function enclosed(content: string): string {
  return `\n\n${content}\n\n`;
}

/**
 * The names of the generated sections that README text `readme` lacks or
 * that differ from what the tables generate.
 */
export function staleSections(readme: string): string[] {
  return generatedSections()
    .filter(({ name, content }) =>
      sectionText(readme, name) !== enclosed(content)
    )
    .map(({ name }) => name);
}

/**
 * Returns `readme` with every generated section replaced by what the tables
 * generate. Throws an error naming the section whose markers are missing.
 */
export function renderReadme(readme: string): string {
  let text = readme;
  for (const { name, content } of generatedSections()) {
    const old = sectionText(text, name);
    if (old === undefined) {
      const [begin, end] = markers(name);
      throw new Error(
        `README.md has no section ${name}: add the lines ${begin} and ${end} where it belongs`,
      );
    }
    const [begin] = markers(name);
    const at = text.indexOf(begin) + begin.length;
    text = text.slice(0, at) + enclosed(content) +
      text.slice(at + old.length);
  }
  return text;
}

if (import.meta.main) {
  try {
    const readme = await Deno.readTextFile(README_URL);
    const stale = staleSections(readme);
    if (stale.length === 0) {
      console.log("README.md is up to date");
    } else {
      await Deno.writeTextFile(README_URL, renderReadme(readme));
      console.log(`README.md: regenerated ${stale.join(", ")}`);
    }
  } catch (error) {
    console.error(`docs: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
