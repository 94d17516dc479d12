/**
 * Layout of `--help` texts: words wrapped to a width, and two-column lists
 * (a flag or key on the left, what it does on the right). Pure.
 *
 * @module
 */

/** Width of help texts, in characters. */
export const HELP_WIDTH = 80;

/**
 * Wraps `text` into lines of at most `width` characters, breaking at spaces.
 * A word longer than `width` gets a line of its own.
 */
export function wrapWords(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line === "") line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== "") lines.push(line);
  return lines;
}

/**
 * Lays out `[left, right]` pairs in two aligned columns, indented by two
 * spaces: the right column starts two spaces after the longest left text,
 * and wraps within {@link HELP_WIDTH}. Each returned line has no trailing
 * space; the result has no final newline.
 */
export function helpColumns(
  rows: readonly (readonly [string, string])[],
): string {
  const leftWidth = Math.max(0, ...rows.map(([left]) => left.length));
  const indent = 2 + leftWidth + 2;
  const lines: string[] = [];
  for (const [left, right] of rows) {
    const wrapped = wrapWords(right, HELP_WIDTH - indent);
    const first = wrapped.shift() ?? "";
    lines.push(`  ${left.padEnd(leftWidth)}  ${first}`.trimEnd());
    for (const more of wrapped) lines.push(`${" ".repeat(indent)}${more}`);
  }
  return lines.join("\n");
}

/** Markdown for the terminal: `code` spans lose their backticks. */
export function plainText(markdown: string): string {
  return markdown.replaceAll("`", "");
}
