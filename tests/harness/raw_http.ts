/**
 * HTTP/1.1 by hand over a TCP socket, for requests `fetch` cannot make:
 * exact bytes (Zincati's request), repeated headers, bodies that stall or
 * never end, malformed framing.
 */

/** A response as read from the socket. */
export interface RawResponse {
  /** Status code. */
  readonly status: number;
  /** Headers (repeated ones joined by `, `). */
  readonly headers: Headers;
  /** Body text (by Content-Length). */
  readonly body: string;
}

/** A pause between the parts of a request. */
export interface Pause {
  /** Milliseconds to wait before sending the next part. */
  readonly pauseMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function parse(bytes: Uint8Array): RawResponse | undefined {
  const text = decoder.decode(bytes);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? "")?.[1]);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const length = Number(headers.get("content-length") ?? 0);
  const bodyBytes = encoder.encode(text.slice(end + 4));
  if (bodyBytes.length < length) return undefined;
  return {
    status,
    headers,
    body: decoder.decode(bodyBytes.subarray(0, length)),
  };
}

/**
 * Sends `parts` (text, bytes, or pauses) on a new connection to
 * `127.0.0.1:port` and returns the first complete response, or `undefined`
 * when the server closed the connection without one. Fails after
 * `timeoutMs`. A write that fails because the server already answered and
 * closed is not an error.
 */
export async function rawExchange(
  port: number,
  parts: readonly (string | Uint8Array | Pause)[],
  timeoutMs = 10_000,
): Promise<RawResponse | undefined> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  let received = new Uint8Array(0);
  let timedOut = true;
  const reading = (async () => {
    const buffer = new Uint8Array(64 * 1024);
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(buffer);
      } catch {
        return parse(received);
      }
      if (n === null) {
        timedOut = false;
        return parse(received);
      }
      const next = new Uint8Array(received.length + n);
      next.set(received);
      next.set(buffer.subarray(0, n), received.length);
      received = next;
      const response = parse(received);
      if (response !== undefined) {
        timedOut = false;
        return response;
      }
    }
  })();
  try {
    for (const part of parts) {
      if (typeof part === "object" && "pauseMs" in part) {
        await new Promise((r) => setTimeout(r, part.pauseMs));
        continue;
      }
      const bytes = typeof part === "string" ? encoder.encode(part) : part;
      let offset = 0;
      while (offset < bytes.length) {
        offset += await conn.write(bytes.subarray(offset));
      }
    }
  } catch {
    // The server answered early and closed: read what it said.
  }
  const response = await reading;
  clearTimeout(timer);
  try {
    conn.close();
  } catch { /* already closed */ }
  if (response === undefined && timedOut) {
    throw new Error(`no response within ${timeoutMs} ms`);
  }
  return response;
}
