/**
 * The fleet page's HTTP routes in `locksmithd serve`: `GET /` (the page),
 * `GET /api/events` (the live data, server-sent events) and `POST
 * /api/pause`, `POST /api/resume` (`{"group": "<group>"}`). When tokens
 * are configured, the data needs one of them (any group's), and pausing
 * a group needs a token of that group (FleetLock's name: `default` for
 * the default semaphore) or of `*`; without tokens the page is read-only.
 * Any other path is not the page's: the FleetLock handler answers it.
 *
 * @module
 */

import type { FleetFeed } from "./feed.ts";
import { eventStream } from "./event_stream.ts";
import { PAGE_CSP, PAGE_HTML } from "./page.ts";

/** The tokens as the page checks them (FleetLock's `GroupTokens` and its group names). */
export interface PageTokens {
  /** The FleetLock group names that have tokens (`*` included). */
  readonly groups: readonly string[];
  /** Whether the `Authorization` header value carries a token of `group` (or of `*`). */
  allows(group: string, authorization: string | null): boolean;
}

/** Pauses or resumes the semaphore of a group (`""`: the default one); returns whether it changed. */
export type PauseGroup = (group: string, paused: boolean) => Promise<boolean>;

/** Options of {@link createFleetPageRoutes}. */
export interface FleetPageRoutesOptions {
  /** The hub of the live data. */
  readonly feed: FleetFeed;
  /** Tokens; absent: no token needed, and the page is read-only. */
  readonly tokens?: PageTokens | undefined;
  /** Pause and resume (with tokens only). */
  readonly pause?: PauseGroup | undefined;
  /** Where refused or failed pauses are logged. */
  readonly log?: { warn(message: string): void } | undefined;
}

/** The FleetLock group name of a semaphore group. */
function fleetLockName(group: string): string {
  return group === "" ? "default" : group;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
    },
  });
}

/** `POST /api/pause` and `/api/resume`: with a token of the group only. */
async function changePause(
  request: Request,
  paused: boolean,
  options: FleetPageRoutesOptions,
): Promise<Response> {
  const { tokens, pause, log } = options;
  let group: unknown;
  try {
    group = (await request.json())?.group;
  } catch {
    group = undefined;
  }
  if (typeof group !== "string" || group.length > 253) {
    return json(400, { error: 'the body must be {"group": "<group>"}' });
  }
  const name = fleetLockName(group);
  if (
    tokens === undefined || pause === undefined ||
    !tokens.allows(name, request.headers.get("authorization"))
  ) {
    return json(403, {
      error: `this token may not ${paused ? "pause" : "resume"} ${name}`,
    });
  }
  try {
    return json(200, { changed: await pause(group, paused) });
  } catch (error) {
    log?.warn(
      `fleet page: ${paused ? "pause" : "resume"} of ${name} failed: ${
        (error as Error).message
      }`,
    );
    return json(503, { error: "etcd did not answer; try again" });
  }
}

/**
 * The page's routes: a function that answers a request of the page, or
 * returns `undefined` for any other path.
 */
export function createFleetPageRoutes(
  options: FleetPageRoutesOptions,
): (request: Request) => Promise<Response> | undefined {
  const { feed, tokens, pause } = options;
  const auth = (request: Request) => request.headers.get("authorization");
  /** The FleetLock groups whose tokens the request carries (`*`: all). */
  const tokenGroups = (request: Request): string[] =>
    tokens === undefined
      ? []
      : tokens.groups.filter((g) => tokens.allows(g, auth(request)));

  return (request) => {
    const { pathname } = new URL(request.url);
    const method = request.method;
    if (pathname === "/" && (method === "GET" || method === "HEAD")) {
      return Promise.resolve(
        new Response(method === "HEAD" ? null : PAGE_HTML, {
          headers: {
            "content-type": "text/html; charset=utf-8",
            "content-security-policy": PAGE_CSP,
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer",
          },
        }),
      );
    }
    if (pathname === "/api/events" && method === "GET") {
      const groups = tokenGroups(request);
      if (tokens !== undefined && groups.length === 0) {
        return Promise.resolve(
          json(401, { error: "the fleet page needs a token" }),
        );
      }
      return Promise.resolve(
        eventStream(feed, { groups: pause ? groups : [] }),
      );
    }
    if (
      (pathname === "/api/pause" || pathname === "/api/resume") &&
      method === "POST"
    ) {
      return changePause(request, pathname === "/api/pause", options);
    }
    return undefined;
  };
}
