/**
 * The fleet page wired to its source: the one live view of the fleet (a
 * {@link FleetSource}, e.g. the etcd watch) feeds the hub that every
 * viewer reads, and the history's new entries feed the reboot metrics.
 * The fleet's state is computed only when viewers are sent it (at most
 * every 50 ms), never per watch event.
 *
 * @module
 */

import type { FleetUpdate } from "../etcd/store/fleet_watch.ts";
import { FleetFeed } from "./feed.ts";
import {
  figuresOf,
  type RebootFigure,
  rebootFigures,
  type TakenIndex,
} from "./reboot_figures.ts";
import {
  createFleetPageRoutes,
  type PageTokens,
  type PauseGroup,
} from "./routes.ts";

/** What the fleet's live view reports. */
export interface FleetSourceHandlers {
  /** The fleet after a read or a batch of changes. */
  onFleet(update: FleetUpdate): void;
  /** Reading or watching failed, and is retried. */
  onTrouble(message: string): void;
}

/** The fleet followed live (one etcd read and watch): started with handlers, stopped with `close`. */
export type FleetSource = (handlers: FleetSourceHandlers) => {
  close(): void;
};

/** Options of {@link startFleetPage}. */
export interface FleetPageOptions {
  /** The fleet's live view. */
  readonly source: FleetSource;
  /** Tokens (absent: no token needed, read-only). */
  readonly tokens?: PageTokens | undefined;
  /** Pause and resume. */
  readonly pause?: PauseGroup | undefined;
  /** Reboots that ended, for the metrics. */
  readonly onReboots?: (figures: readonly RebootFigure[]) => void;
  /** Where trouble goes (once per spell of trouble). */
  readonly log: { warn(message: string): void; info(message: string): void };
}

/** A running fleet page. */
export interface FleetPage {
  /** Answers a request of the page, or `undefined` for another path. */
  readonly route: (request: Request) => Promise<Response> | undefined;
  /** The hub (viewers, messages sent). */
  readonly feed: FleetFeed;
  /** Stops the live view and ends every viewer's stream. */
  close(): void;
}

/** Starts following the fleet and returns the page's routes. */
export function startFleetPage(options: FleetPageOptions): FleetPage {
  const feed = new FleetFeed();
  const { log } = options;
  let troubled = false;
  const taken: TakenIndex = new Map();
  const source = options.source({
    onFleet(update) {
      if (troubled) log.info("fleet page: etcd answers again");
      troubled = false;
      if (update.read) {
        // Everything is new: index the open slots, count nothing yet.
        taken.clear();
        const fleet = update.fleet();
        for (const g of fleet) figuresOf(g.group, g.history.events, taken);
        const skipped = fleet.flatMap((g) => g.history.skipped);
        if (skipped.length > 0) {
          log.warn(
            `fleet page: skipped ${skipped.length} history entr${
              skipped.length === 1 ? "y" : "ies"
            } that do not parse (e.g. ${skipped[0]})`,
          );
        }
      } else {
        const figures = rebootFigures(update.puts, taken);
        if (figures.length > 0) options.onReboots?.(figures);
      }
      feed.update(update.fleet, update.revision);
    },
    onTrouble(message) {
      if (!troubled) log.warn(`fleet page: ${message}`);
      troubled = true;
      feed.trouble(message);
    },
  });
  return {
    route: createFleetPageRoutes({
      feed,
      tokens: options.tokens,
      pause: options.pause,
      log,
    }),
    feed,
    close() {
      source.close();
      feed.close();
    },
  };
}
