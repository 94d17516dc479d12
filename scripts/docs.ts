/**
 * Generates the parts of the docs that follow from data: locksmithd's
 * synopsis and key table (`lib/config/config_keys.ts`), locksmithctl's
 * global flag table (`lib/ctl/flags.ts`), and `locksmithd serve`'s synopsis
 * and key table (`lib/serve/serve_options.ts`). Each part sits between
 * `<!-- BEGIN generated: NAME -->` and `<!-- END generated: NAME -->` in
 * its file (see {@link GENERATED_FILES}); the text around them is left
 * alone.
 *
 * `deno task docs` rewrites the files; `tests/docs_test.ts` fails when one
 * differs from what this generates. Tables are laid out as `deno fmt` lays
 * out Markdown tables, so that it leaves them unchanged.
 *
 * @module
 */

import { DAEMON_KEYS } from "../lib/config/config_keys.ts";
import { daemonSynopsis } from "../lib/config/daemon_args.ts";
import { CTL_FLAGS, envNameOf, flagSynopsis } from "../lib/ctl/flags.ts";
import { SERVE_OPTIONS } from "../lib/serve/serve_options.ts";
import { flagText, type KeyRow } from "../lib/common/key_table.ts";

/** The repository's root. */
export const REPO_URL: URL = new URL("../", import.meta.url);

/** One generated part of a doc file: its marker name and its content. */
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

/**
 * A key table (locksmithd's or serve's): key (and fallback), flag, default,
 * meaning; one row per {@link KeyRow}.
 */
export function keyTable(
  rows: readonly (KeyRow & { readonly fallback?: string | undefined })[],
): string {
  return markdownTable(
    ["key", "flag", "default", "meaning"],
    rows.map((row) => [
      row.fallback === undefined
        ? code(row.key)
        : `${code(row.key)} (fallback ${code(row.fallback)})`,
      row.flag === undefined ? "" : code(flagText(row.flag)),
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

/** `locksmithd serve [--config FILE]... [--endpoint URL]... [--listen HOST:PORT] ...`. */
export function serveSynopsis(): string {
  return [
    "locksmithd serve",
    "[--config FILE]...",
    "[--endpoint URL]...",
    ...SERVE_OPTIONS.map((row) =>
      `[${flagText(row.flag)}]${row.flag.repeatable ? "..." : ""}`
    ),
  ].join(" ");
}

const fenced = (text: string): string => ["```", text, "```"].join("\n");

/** The doc files with generated parts, relative to the repository's root, and their parts in order. */
export const GENERATED_FILES: Readonly<
  Record<string, () => readonly GeneratedSection[]>
> = Object.freeze({
  "docs/configuration.md": () => [
    { name: "daemon-synopsis", content: fenced(daemonSynopsis()) },
    { name: "daemon-keys", content: keyTable(DAEMON_KEYS) },
    { name: "ctl-flags", content: ctlFlagsTable() },
    { name: "serve-synopsis", content: fenced(serveSynopsis()) },
    { name: "serve-keys", content: keyTable(SERVE_OPTIONS) },
  ],
});

/** Every generated part of doc file `file` (see {@link GENERATED_FILES}), in the order they appear. */
export function generatedSections(file: string): GeneratedSection[] {
  const sections = GENERATED_FILES[file];
  if (sections === undefined) throw new Error(`${file} has no generated part`);
  return [...sections()];
}

function markers(name: string): [string, string] {
  return [
    `<!-- BEGIN generated: ${name} -->`,
    `<!-- END generated: ${name} -->`,
  ];
}

/** The text between the markers of section `name`, or `undefined` when the markers are missing. */
export function sectionText(text: string, name: string): string | undefined {
  const [begin, end] = markers(name);
  const start = text.indexOf(begin);
  const stop = text.indexOf(end, start);
  if (start === -1 || stop === -1) return undefined;
  return text.slice(start + begin.length, stop);
}

/** What the markers of a section enclose: the content between blank lines. */
function enclosed(content: string): string {
  return `\n\n${content}\n\n`;
}

/**
 * The names of the generated sections of `file` that its text `text` lacks
 * or that differ from what the tables generate.
 */
export function staleSections(text: string, file: string): string[] {
  return generatedSections(file)
    .filter(({ name, content }) =>
      sectionText(text, name) !== enclosed(content)
    )
    .map(({ name }) => name);
}

/**
 * Returns `text` (the content of `file`) with every generated section
 * replaced by what the tables generate. Throws an error naming the section
 * whose markers are missing.
 */
export function renderGenerated(text: string, file: string): string {
  let result = text;
  for (const { name, content } of generatedSections(file)) {
    const old = sectionText(result, name);
    if (old === undefined) {
      const [begin, end] = markers(name);
      throw new Error(
        `${file} has no section ${name}: add the lines ${begin} and ${end} where it belongs`,
      );
    }
    const [begin] = markers(name);
    const at = result.indexOf(begin) + begin.length;
    result = result.slice(0, at) + enclosed(content) +
      result.slice(at + old.length);
  }
  return result;
}

if (import.meta.main) {
  try {
    for (const file of Object.keys(GENERATED_FILES)) {
      const url = new URL(file, REPO_URL);
      const text = await Deno.readTextFile(url);
      const stale = staleSections(text, file);
      if (stale.length === 0) {
        console.log(`${file} is up to date`);
      } else {
        await Deno.writeTextFile(url, renderGenerated(text, file));
        console.log(`${file}: regenerated ${stale.join(", ")}`);
      }
    }
  } catch (error) {
    console.error(`docs: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
