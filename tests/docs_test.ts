/**
 * The docs' generated parts (locksmithd's key table and synopsis,
 * locksmithctl's flag table, serve's key table and synopsis, all in
 * docs/configuration.md) against the tables in lib/, and the generator
 * itself (`scripts/docs.ts`, run by `deno task docs`).
 */

import assert from "node:assert/strict";
import {
  GENERATED_FILES,
  generatedSections as sectionsOf,
  markdownTable,
  renderGenerated,
  REPO_URL,
  sectionText,
  staleSections as staleOf,
} from "../scripts/docs.ts";

const FILE = "docs/configuration.md";
const doc = await Deno.readTextFile(new URL(FILE, REPO_URL));
const generatedSections = () => sectionsOf(FILE);
const staleSections = (text: string) => staleOf(text, FILE);
const render = (text: string) => renderGenerated(text, FILE);

/** A doc with every generated section, each holding `filler`. */
function skeleton(filler: string): string {
  return generatedSections().map(({ name }) =>
    `## ${name}\n\nprose before\n\n<!-- BEGIN generated: ${name} -->\n${filler}\n<!-- END generated: ${name} -->\n\nprose after\n`
  ).join("\n");
}

Deno.test("every doc file's generated sections match the key and flag tables", async () => {
  const files = Object.keys(GENERATED_FILES);
  assert.ok(files.includes(FILE));
  for (const file of files) {
    const text = await Deno.readTextFile(new URL(file, REPO_URL));
    const stale = staleOf(text, file);
    assert.deepEqual(
      stale,
      [],
      stale.map((name) =>
        `${file} section "${name}" differs from the tables in lib/config/config_keys.ts, lib/ctl/flags.ts and lib/serve/serve_options.ts; run \`deno task docs\``
      ).join("\n"),
    );
  }
});

Deno.test("the generated doc is as deno fmt formats it", async () => {
  const rendered = render(doc);
  const fmt = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext", "md", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = fmt.stdin.getWriter();
  await writer.write(new TextEncoder().encode(rendered));
  await writer.close();
  const { code, stdout, stderr } = await fmt.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.equal(new TextDecoder().decode(stdout), rendered);
});

Deno.test("render() rewrites the text between the markers and nothing else", () => {
  const rendered = render(skeleton("old table"));
  assert.ok(!rendered.includes("old table"));
  assert.deepEqual(staleSections(rendered), []);
  for (const { name, content } of generatedSections()) {
    assert.equal(sectionText(rendered, name), `\n\n${content}\n\n`);
    assert.ok(rendered.includes(`## ${name}\n\nprose before\n\n<!-- BEGIN`));
  }
  assert.equal(
    rendered.split("prose after").length,
    generatedSections().length + 1,
  );
  assert.equal(render(rendered), rendered);
});

Deno.test("staleSections() names each section edited by hand or missing", () => {
  const fresh = render(skeleton(""));
  const [first, second] = generatedSections();
  assert.ok(first !== undefined && second !== undefined);
  const edited = fresh.replace(first.content, `${first.content}\n| x | y |`);
  assert.deepEqual(staleSections(edited), [first.name]);
  const missing = fresh.replace(`<!-- END generated: ${second.name} -->`, "");
  assert.deepEqual(staleSections(missing), [second.name]);
});

Deno.test("render() names the section whose markers are missing", () => {
  const [first] = generatedSections();
  assert.ok(first !== undefined);
  const text = skeleton("").replace(
    `<!-- BEGIN generated: ${first.name} -->`,
    "",
  );
  assert.throws(
    () => render(text),
    new Error(
      `${FILE} has no section ${first.name}: add the lines <!-- BEGIN generated: ${first.name} --> and <!-- END generated: ${first.name} --> where it belongs`,
    ),
  );
});

Deno.test("markdownTable() pads each column to its widest cell and escapes pipes", () => {
  assert.equal(
    markdownTable(["key", "meaning"], [["`A`", "x | y"], ["`LONGER`", ""]]),
    [
      "| key      | meaning |",
      "| -------- | ------- |",
      "| `A`      | x \\| y  |",
      "| `LONGER` |         |",
    ].join("\n"),
  );
});

Deno.test("the generated tables list every daemon key, every global ctl flag and every serve key", () => {
  const text = generatedSections().map((s) => s.content).join("\n");
  for (
    const key of [
      "REBOOT_STRATEGY",
      "LOCKSMITHD_LOGIN_DELAY",
      "REBOOT_WINDOW_START",
    ]
  ) {
    assert.ok(text.includes(`\`${key}\``), key);
  }
  for (const flag of ["--endpoint URL", "--timeout DURATION", "-h, --help"]) {
    assert.ok(text.includes(`\`${flag}\``), flag);
  }
  assert.ok(!text.includes("--force"), "--force belongs to reset only");
  assert.ok(text.includes("locksmithd [--config FILE]... [--strategy NAME]"));
  for (
    const key of ["LOCKSMITHD_FLEETLOCK_LISTEN", "LOCKSMITHD_FLEETLOCK_TOKENS"]
  ) {
    assert.ok(text.includes(`\`${key}\``), key);
  }
  assert.ok(text.includes("`--token GROUP=TOKEN`"));
  assert.ok(
    text.includes("locksmithd serve [--config FILE]... [--endpoint URL]..."),
  );
});
