/**
 * One watch stream over etcd's JSON gateway: `POST /v3/watch` with one
 * `create_request` per watched key or range in the body, answered by a
 * never-ending stream of JSON lines. The header `Grpc-Metadata-hasleader`
 * asks the member to cancel the stream when it loses its leader, so that a
 * member cut off from the cluster does not leave its watchers deaf. A stream
 * that is not set up within its create timeout (a frozen member) ends as
 * disconnected.
 *
 * @module
 */

import { describeEtcdFetchError } from "./gateway.ts";
import {
  type Json,
  watchCreateJson,
  watchMessageFrom,
} from "./gateway_json.ts";
import type { WatchEnd, WatchStream } from "../client/port.ts";
import {
  WatchDispatch,
  type WatchDispatchOptions,
} from "../client/watch_dispatch.ts";

/** What a {@link GatewayWatch} needs. */
export interface GatewayWatchOptions extends WatchDispatchOptions {
  /** HTTP client with the TLS settings, if any. */
  readonly client: Deno.HttpClient | undefined;
}

/** A running gateway watch stream; see the module documentation. */
export class GatewayWatch implements WatchStream {
  /** The member that serves the stream. */
  readonly endpoint: string;
  readonly #options: GatewayWatchOptions;
  readonly #abort = new AbortController();
  #ended = false;
  readonly #dispatch: WatchDispatch<number>;

  /**
   * Starts the stream.
   *
   * @param options member, watches, handlers
   */
  constructor(options: GatewayWatchOptions) {
    this.endpoint = options.endpoint;
    this.#options = options;
    this.#dispatch = new WatchDispatch(options, (end) => this.#end(end));
    this.#run().catch((error) => {
      this.#end({
        kind: "disconnected",
        reason: `${this.endpoint}: ${describeEtcdFetchError(error)}`,
      });
    });
  }

  /** Ends the stream; no handler is called afterwards. */
  cancel(): void {
    this.#ended = true;
    this.#dispatch.stop();
    this.#abort.abort();
  }

  #end(end: WatchEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#dispatch.stop();
    this.#abort.abort();
    this.#options.handlers.onEnd(end);
  }

  async #run(): Promise<void> {
    const { requests, client } = this.#options;
    const signal = this.#abort.signal;
    const token = await this.#options.token(signal);
    const res = await fetch(new URL("/v3/watch", this.endpoint), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "grpc-metadata-hasleader": "true",
        ...(token ? { authorization: token } : {}),
      },
      body: requests.map((r) => JSON.stringify(watchCreateJson(r))).join("\n"),
      signal,
      ...(client ? { client } : {}),
    });
    if (!res.ok || res.body === null) {
      const text = await res.text().catch(() => "");
      if (res.status === 401 || /auth token/.test(text)) {
        this.#options.dropToken();
      }
      this.#end({
        kind: "disconnected",
        reason: `${this.endpoint} answered HTTP ${res.status}: ${
          text.slice(0, 200).replace(/\s+/g, " ")
        }`,
      });
      return;
    }
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      if (this.#ended) return;
      buffer += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line !== "") this.#line(line);
        if (this.#ended) return;
      }
    }
    const rest = buffer.trim();
    if (rest !== "") this.#line(rest);
    this.#end({
      kind: "disconnected",
      reason: `${this.endpoint} ended the watch stream`,
    });
  }

  #line(line: string): void {
    let json: Json;
    try {
      json = JSON.parse(line);
    } catch {
      this.#end({
        kind: "disconnected",
        reason: `${this.endpoint} sent a watch line that is not JSON`,
      });
      return;
    }
    const message = watchMessageFrom(json);
    if (message.kind === "error") {
      if (/auth token/.test(message.message)) this.#options.dropToken();
      this.#end({
        kind: "disconnected",
        reason: `${this.endpoint}: ${message.message}`,
      });
      return;
    }
    this.#dispatch.dispatch(message);
  }
}
