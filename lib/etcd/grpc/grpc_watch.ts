/**
 * One watch stream over gRPC (`Watch`, a bidirectional stream): one
 * `create_request` per watched key or range, then the member's responses.
 * The `hasleader` metadata asks the member to refuse or end the stream when
 * it has no leader, as the gateway adapter's `Grpc-Metadata-hasleader`
 * header does. A stream whose watches are not all created within the create
 * timeout (a frozen member) ends as disconnected.
 *
 * @module
 */

import type { Etcd3, IWatchResponse } from "npm:etcd3@1.1.2";
import {
  callInterceptor,
  describeUnavailable,
  grpcStatusOf,
  TOKEN_REJECTED,
} from "./grpc_client.ts";
import { watchCreateMessage, watchMessageFrom } from "./grpc_messages.ts";
import type { WatchEnd, WatchStream } from "../client/port.ts";
import {
  WatchDispatch,
  type WatchDispatchOptions,
} from "../client/watch_dispatch.ts";

/** The duplex stream etcd3's `WatchClient.watch` resolves to. */
type Duplex = Awaited<ReturnType<Etcd3["watchClient"]["watch"]>>;

/** What a {@link GrpcWatch} needs. */
export interface GrpcWatchOptions extends WatchDispatchOptions {
  /** The member's client (throws when the port is closed). */
  client(): Etcd3;
  /** Whether the member is reached over TLS (for messages). */
  readonly secure: boolean;
}

/** A running gRPC watch stream; see the module documentation. */
export class GrpcWatch implements WatchStream {
  /** The member that serves the stream. */
  readonly endpoint: string;
  readonly #options: GrpcWatchOptions;
  readonly #abort = new AbortController();
  #ended = false;
  #stream: Duplex | undefined;
  readonly #dispatch: WatchDispatch<string>;

  /**
   * Starts the stream.
   *
   * @param options member, watches, handlers
   */
  constructor(options: GrpcWatchOptions) {
    this.endpoint = options.endpoint;
    this.#options = options;
    this.#dispatch = new WatchDispatch(options, (end) => this.#end(end));
    this.#run().catch((error) => this.#failed(error));
  }

  /** Ends the stream; no handler is called afterwards. */
  cancel(): void {
    this.#ended = true;
    this.#close();
  }

  /** Stops the timer and the call. Half-closing first keeps etcd3 from taking the cancellation for a member failure. */
  #close(): void {
    this.#dispatch.stop();
    this.#abort.abort();
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream) {
      stream.end();
      stream.cancel();
    }
  }

  #end(end: WatchEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#close();
    this.#options.handlers.onEnd(end);
  }

  #failed(error: unknown): void {
    const { details } = grpcStatusOf(error);
    if (details === TOKEN_REJECTED) this.#options.dropToken();
    this.#end({
      kind: "disconnected",
      reason: `${this.endpoint}: ${
        describeUnavailable(details, this.#options.secure)
      }`,
    });
  }

  async #run(): Promise<void> {
    const { client, requests } = this.#options;
    const token = await this.#options.token(this.#abort.signal);
    if (this.#ended) return;
    const stream = await client().watchClient.watch({
      interceptors: [callInterceptor({ token, requireLeader: true })],
    });
    if (this.#ended) {
      stream.end();
      stream.cancel();
      return;
    }
    this.#stream = stream;
    stream.on("data", (response: IWatchResponse) => this.#message(response));
    stream.on("error", (error: unknown) => this.#failed(error));
    stream.on("end", () =>
      this.#end({
        kind: "disconnected",
        reason: `${this.endpoint} ended the watch stream`,
      }));
    for (const request of requests) stream.write(watchCreateMessage(request));
  }

  #message(response: IWatchResponse): void {
    if (this.#ended) return;
    this.#dispatch.dispatch(watchMessageFrom(response));
  }
}
