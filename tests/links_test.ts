/**
 * Every relative link in README.md and docs/*.md leads somewhere: the file
 * (or folder) exists, and a `#anchor` names a heading of the Markdown file
 * it points into (slugged as GitHub slugs headings).
 */

import assert from "node:assert/strict";
import { marked, type Token, type Tokens } from "npm:marked@18.2.1";
import GithubSlugger from "npm:github-slugger@2.0.0";

const ROOT = new URL("../", import.meta.url);

/**
 * Pages that other work creates (the host install guide, the fleet page):
 * linked already, allowed to be missing until they land. Empty this list
 * once they exist.
 */
const PENDING_PAGES: readonly string[] = [
  "docs/fleet-page.md",
];

/** README.md and every Markdown file in docs/, relative to the root. */
function markdownFiles(): string[] {
  const docs = [...Deno.readDirSync(new URL("docs/", ROOT))]
    .filter((entry) => entry.isFile && entry.name.endsWith(".md"))
    .map((entry) => `docs/${entry.name}`)
    .sort();
  return ["README.md", ...docs];
}

/** Every link target of a Markdown text, outside code blocks and code spans. */
export function linkTargets(markdown: string): string[] {
  const targets: string[] = [];
  marked.walkTokens(marked.lexer(markdown), (token: Token) => {
    if (token.type === "link" || token.type === "image") {
      targets.push((token as Tokens.Link).href);
    }
  });
  return targets;
}

/** The anchors of a Markdown text's headings, as GitHub makes them. */
export function headingAnchors(markdown: string): Set<string> {
  const slugger = new GithubSlugger();
  const anchors = new Set<string>();
  marked.walkTokens(marked.lexer(markdown), (token: Token) => {
    if (token.type === "heading") {
      anchors.add(slugger.slug((token as Tokens.Heading).text));
    }
  });
  return anchors;
}

/** Whether `path` (relative to the root) exists. */
function exists(path: string): boolean {
  try {
    Deno.statSync(new URL(path, ROOT));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** What is wrong with link `target` in `file`, or `undefined` when it resolves. */
function linkDefect(file: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // https:, mailto:
  const [path = "", anchor] = target.split("#", 2);
  const resolved = path === ""
    ? file
    : new URL(decodeURI(path), new URL(file, ROOT)).pathname.slice(
      ROOT.pathname.length,
    );
  if (!exists(resolved)) {
    return PENDING_PAGES.includes(resolved)
      ? undefined
      : `${resolved} does not exist`;
  }
  if (anchor === undefined || !resolved.endsWith(".md")) return undefined;
  const text = Deno.readTextFileSync(new URL(resolved, ROOT));
  return headingAnchors(text).has(anchor)
    ? undefined
    : `${resolved} has no heading #${anchor}`;
}

Deno.test("every relative link in README.md and docs/ resolves, anchors included", () => {
  const defects: string[] = [];
  let links = 0;
  for (const file of markdownFiles()) {
    const text = Deno.readTextFileSync(new URL(file, ROOT));
    for (const target of linkTargets(text)) {
      links++;
      const defect = linkDefect(file, target);
      if (defect !== undefined) defects.push(`${file}: (${target}) ${defect}`);
    }
  }
  assert.deepEqual(defects, []);
  assert.ok(links > 50, `only ${links} links found`);
});

Deno.test("the link check finds links outside code only, and anchors as GitHub makes them", () => {
  const text = [
    "# Exit status, errors and --json",
    "",
    "See [a](docs/a.md#x) and `[not](a link)`.",
    "",
    "```",
    "[nor](this)",
    "```",
    "",
    "## `locksmithd serve`",
    "## Exit status, errors and --json",
  ].join("\n");
  assert.deepEqual(linkTargets(text), ["docs/a.md#x"]);
  assert.deepEqual(
    [...headingAnchors(text)],
    [
      "exit-status-errors-and---json",
      "locksmithd-serve",
      "exit-status-errors-and---json-1",
    ],
  );
});

Deno.test("a link to a missing file or heading is named as such", () => {
  assert.equal(
    linkDefect("README.md", "docs/nowhere.md"),
    "docs/nowhere.md does not exist",
  );
  assert.equal(
    linkDefect("docs/design.md", "../README.md#no-such-heading"),
    "README.md has no heading #no-such-heading",
  );
  assert.equal(linkDefect("docs/design.md", "#the-wait-queue"), undefined);
  assert.equal(linkDefect("README.md", "https://example.com/x#y"), undefined);
});
