/**
 * Reading a child's output line by line, as the process harnesses
 * (`machine.ts`, `serve_process.ts`) and the benchmarks do.
 */

/**
 * Hands each whole line of `stream` to `onLine` as it comes; at its end,
 * the text after the last newline, if any, to `onRest` (default `onLine`).
 */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
  onRest: (rest: string) => void = onLine,
): Promise<void> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      onLine(line);
    }
  }
  if (buffer) onRest(buffer);
}
