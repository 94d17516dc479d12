/**
 * README.md's generated parts (locksmithd's key table and synopsis,
 * locksmithctl's flag table) against the tables in lib/, and the generator
 * itself (`scripts/docs.ts`, run by `deno task docs`).
 */

import assert from "node:assert/strict";
import {
  generatedSections,
  markdownTable,
  README_URL,
  renderReadme,
  sectionText,
  staleSections,
} from "../scripts/docs.ts";

const readme = await Deno.readTextFile(README_URL);

/** A README with every generated section, each holding `filler`. */
function skeleton(filler: string): string {
  return generatedSections().map(({ name }) =>
    `## ${name}\n\nprose before\n\n<!-- BEGIN generated: ${name} -->\n${filler}\n<!-- END generated: ${name} -->\n\nprose after\n`
  ).join("\n");
}

Deno.test("README.md's generated sections match the key and flag tables", () => {
  const stale = staleSections(readme);
  assert.deepEqual(
    stale,
    [],
    stale.map((name) =>
      `README.md section "${name}" differs from the tables in lib/config/config_keys.ts and lib/ctl/flags.ts; run \`deno task docs\``
    ).join("\n"),
  );
});

Deno.test("the generated README is as deno fmt formats it", async () => {
  const rendered = renderReadme(readme);
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

Deno.test("renderReadme() rewrites the text between the markers and nothing else", () => {
  const rendered = renderReadme(skeleton("old table"));
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
  assert.equal(renderReadme(rendered), rendered);
});

Deno.test("staleSections() names each section edited by hand or missing", () => {
  const fresh = renderReadme(skeleton(""));
  const [first, second] = generatedSections();
  assert.ok(first !== undefined && second !== undefined);
  const edited = fresh.replace(first.content, `${first.content}\n| x | y |`);
  assert.deepEqual(staleSections(edited), [first.name]);
  const missing = fresh.replace(`<!-- END generated: ${second.name} -->`, "");
  assert.deepEqual(staleSections(missing), [second.name]);
});

Deno.test("renderReadme() names the section whose markers are missing", () => {
  const [first] = generatedSections();
  assert.ok(first !== undefined);
  const text = skeleton("").replace(
    `<!-- BEGIN generated: ${first.name} -->`,
    "",
  );
  assert.throws(
    () => renderReadme(text),
    new Error(
      `README.md has no section ${first.name}: add the lines <!-- BEGIN generated: ${first.name} --> and <!-- END generated: ${first.name} --> where it belongs`,
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

Deno.test("the generated tables list every daemon key and every global ctl flag", () => {
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
});
