/**
 * The fleet page wired to its source: the one live view of the fleet (a
 * {@link FleetSource}, e.g. the etcd watch) feeds the hub that every
 * viewer reads, and the history's new entries feed the reboot metrics.
 *
 * @module
 */

import type { FleetGroupState } from "../etcd/fleet_state.ts";
import type { KeyValue } from "../etcd/port.ts";
import { FleetFeed } from "./feed.ts";
import { type RebootFigure, rebootFigures } from "./reboot_figures.ts";
import {
  createFleetPageRoutes,
  type PageTokens,
  type PauseGroup,
} from "./routes.ts";

/** What the fleet's live view reports. */
export interface FleetSourceHandlers {
  /** The fleet at `revision` after a read (no `puts`) or a batch of changes (`puts`: the keys written). */
  onFleet(
    fleet: FleetGroupState[],
    puts: readonly KeyValue[],
    revision: number,
  ): void;
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
  let skippedWarned = false;
  const source = options.source({
    onFleet(fleet, puts, revision) {
      if (troubled) log.info("fleet page: etcd answers again");
      troubled = false;
      const skipped = fleet.flatMap((g) => g.history.skipped);
      if (skipped.length > 0 && !skippedWarned) {
        log.warn(
          `fleet page: skipped ${skipped.length} history entr${
            skipped.length === 1 ? "y" : "ies"
          } that do not parse (e.g. ${skipped[0]})`,
        );
      }
      skippedWarned = skipped.length > 0;
      feed.update(fleet, revision);
      if (puts.length > 0) {
        const figures = rebootFigures(fleet, puts);
        if (figures.length > 0) options.onReboots?.(figures);
      }
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
