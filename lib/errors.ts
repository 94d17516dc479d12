/**
 * Error classes shared by locksmithctl, locksmithd and the library.
 *
 * Each class maps to one exit status so that the command-line tools can turn
 * any failure into a one-line message and a meaningful exit code.
 *
 * @module
 */

/** A command line, a flag, a config value or an argument that is not acceptable. Exit status 2. */
export class UsageError extends Error {
  /** Exit status that locksmithctl uses for this error. */
  readonly exitCode: number = 2;
  /** @param message one line naming the thing at fault and what is accepted */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** An operation the semaphore refused, e.g. it is full or the id holds no slot. Exit status 1. */
export class SemaphoreRefusedError extends Error {
  /** Exit status that locksmithctl uses for this error. */
  readonly exitCode: number = 1;
  /** Short machine-readable reason, stable across versions. */
  readonly reason: SemaphoreRefusal;
  /**
   * @param reason machine-readable reason
   * @param message human-readable text, one line
   */
  constructor(reason: SemaphoreRefusal, message: string) {
    super(message);
    this.name = "SemaphoreRefusedError";
    this.reason = reason;
  }
}

/** Machine-readable reasons for which the semaphore refuses an operation. */
export type SemaphoreRefusal =
  | "holder_exists"
  | "semaphore_full"
  | "holder_not_found";

/** The stored semaphore document could not be parsed or has the wrong shape. Exit status 1. */
export class CorruptDocumentError extends Error {
  /** Exit status that locksmithctl uses for this error. */
  readonly exitCode: number = 1;
  /** The etcd key holding the document. */
  readonly key: string;
  /** What is wrong with the document, e.g. `"max" is not an integer`. */
  readonly defect: string;
  /** The raw stored value, exactly as read. */
  readonly raw: string;
  /**
   * @param key etcd key of the document
   * @param defect what is wrong with it
   * @param raw the raw stored value
   */
  constructor(key: string, defect: string, raw: string) {
    super(`semaphore document at ${key} is corrupt: ${defect}`);
    this.name = "CorruptDocumentError";
    this.key = key;
    this.defect = defect;
    this.raw = raw;
  }
}

/** etcd could not be reached or did not answer in time. Exit status 1. */
export class EtcdUnavailableError extends Error {
  /** Exit status that locksmithctl uses for this error. */
  readonly exitCode: number = 1;
  /**
   * @param message one line naming the endpoints and the cause
   * @param options standard error options (the underlying cause)
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EtcdUnavailableError";
  }
}

/** Too many compare-and-swap conflicts in a row; the update was not applied. Exit status 1. */
export class ContentionError extends Error {
  /** Exit status that locksmithctl uses for this error. */
  readonly exitCode: number = 1;
  /** @param message one line naming the key and the number of attempts */
  constructor(message: string) {
    super(message);
    this.name = "ContentionError";
  }
}

/** Returns the exit status for any thrown value: its `exitCode` when it has one, else 1. */
export function exitCodeOf(error: unknown): number {
  if (
    error instanceof Error && "exitCode" in error &&
    typeof error.exitCode === "number"
  ) {
    return error.exitCode;
  }
  return 1;
}

/** Returns a one-line message for any thrown value (no stack trace, no newlines). */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*\n\s*/g, " ").trim();
}
