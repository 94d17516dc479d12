/**
 * locksmithd's decisions, as pure functions of their inputs (time and
 * randomness are parameters), so that they are tested without sleeping.
 *
 * @module
 */

import type { RebootStrategy } from "./config.ts";
import {
  ContentionError,
  CorruptDocumentError,
  EtcdUnavailableError,
  SemaphoreRefusedError,
} from "../common/errors.ts";
import { nextWindow, type RebootWindow } from "./reboot_window.ts";

/** First delay after a failed attempt to take or release a slot: 5 s. */
export const BACKOFF_MIN_MS = 5_000;
/** Longest delay between attempts: 5 min. */
export const BACKOFF_MAX_MS = 300_000;

/** Whether `strategy` takes a slot in etcd before rebooting. */
export function usesLock(strategy: RebootStrategy): boolean {
  return strategy === "etcd-lock" || strategy === "best-effort";
}

/**
 * Delay before attempt `attempt + 1` (attempt counts from 1): 5 s doubling to
 * 5 min, with jitter in [50 %, 100 %] so that a fleet spreads out.
 */
export function backoffMs(attempt: number, random: () => number): number {
  const base = Math.min(
    BACKOFF_MAX_MS,
    BACKOFF_MIN_MS * 2 ** Math.max(0, attempt - 1),
  );
  return Math.round(base * (0.5 + random() / 2));
}

/** Whether a reboot may start now, and until when; or when it may next. */
export type WindowState =
  | { readonly open: true; readonly closesAt: Date | undefined }
  | { readonly open: false; readonly opensAt: Date };

/** Where `now` stands relative to the reboot window; no window means always open. */
export function windowState(
  window: RebootWindow | undefined,
  now: Date,
): WindowState {
  if (window === undefined) return { open: true, closesAt: undefined };
  const next = nextWindow(window, now);
  if (next.start.getTime() <= now.getTime()) {
    return { open: true, closesAt: next.end };
  }
  return { open: false, opensAt: next.start };
}

/** What to do at start about a slot this machine holds. */
export type StartupAction = "release" | "keep" | "none";

/**
 * At start: a slot held while no reboot is pending means the reboot happened,
 * so release it; a slot held while a reboot is still pending is kept.
 */
export function startupAction(
  holding: boolean,
  rebootPending: boolean,
): StartupAction {
  if (!holding) return "none";
  return rebootPending ? "keep" : "release";
}

/** What a failed attempt to take a slot means. */
export type LockFailureAction =
  | "holding" // this machine already holds a slot: go on to reboot
  | "wait-for-slot" // the semaphore is full: watch it
  | "retry" // etcd trouble or a corrupt document: back off and retry
  | "reboot-without-slot"; // best-effort and etcd does not answer

/** Decides what a failed lock attempt means under `strategy`. */
export function onLockFailure(
  strategy: RebootStrategy,
  error: unknown,
): LockFailureAction {
  if (error instanceof SemaphoreRefusedError) {
    return error.reason === "holder_exists" ? "holding" : "wait-for-slot";
  }
  if (error instanceof EtcdUnavailableError && strategy === "best-effort") {
    return "reboot-without-slot";
  }
  // A lost compare-and-swap (a single attempt) means someone else got there
  // first: look at the new document and wait, without backing off.
  if (error instanceof ContentionError) return "wait-for-slot";
  if (
    error instanceof EtcdUnavailableError ||
    error instanceof CorruptDocumentError
  ) {
    return "retry";
  }
  return "retry";
}

/** What a queued waiter does next. */
export type Turn =
  | { readonly action: "try"; readonly evictAhead: number }
  | {
    readonly action: "wait";
    /** When a free slot was first left to the waiters ahead (kept across waits). */
    readonly freeSince: number | undefined;
    /** Longest wait before looking again; `undefined` for the safety re-check. */
    readonly waitMs: number | undefined;
  };

/**
 * Decides whether a queued waiter tries for a slot: when fewer waiters are
 * ahead of it than slots are free (it is among the first in line), or when a
 * free slot has been left to those ahead for `handoverMs` (they are dead or
 * stuck: it tries, and evicts up to `free` of them). Else it waits, at most
 * until the hand-over time runs out.
 */
export function decideTurn(
  free: number,
  ahead: number,
  freeSince: number | undefined,
  now: number,
  handoverMs: number,
): Turn {
  if (free <= 0) {
    return { action: "wait", freeSince: undefined, waitMs: undefined };
  }
  if (ahead < free) return { action: "try", evictAhead: 0 };
  const since = freeSince ?? now;
  if (now - since >= handoverMs) {
    return { action: "try", evictAhead: Math.min(free, ahead) };
  }
  return { action: "wait", freeSince: since, waitMs: since + handoverMs - now };
}
