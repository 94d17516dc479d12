/**
 * Error classes shared by locksmithctl, locksmithd and the library.
 *
 * Each class maps to one exit status so that the command-line tools can turn
 * any failure into a one-line message and a meaningful exit code.
 *
 * @module
 */

/**
 * An error the command-line tools turn into a one-line message and an exit
 * status: the base of the error classes below and of the D-Bus ones.
 */
export class ExitStatusError extends Error {
  /** Exit status that the command-line tools use for this error. */
  readonly exitCode: number;
  /**
   * Creates an error with exit status `exitCode` (the subclass sets `name`).
   *
   * @param exitCode the exit status
   * @param message one line
   * @param options standard error options (the underlying cause)
   */
  constructor(exitCode: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** A command line, a flag, a config value or an argument that is not acceptable. Exit status 2. */
export class UsageError extends ExitStatusError {
  /**
   * Creates a `UsageError`.
   *
   * @param message one line naming the thing at fault and what is accepted
   */
  constructor(message: string) {
    super(2, message);
    this.name = "UsageError";
  }
}

/** An operation the semaphore refused, e.g. it is full or the id holds no slot. Exit status 1. */
export class SemaphoreRefusedError extends ExitStatusError {
  /** Short machine-readable reason, stable across versions. */
  readonly reason: SemaphoreRefusal;
  /**
   * Creates a `SemaphoreRefusedError`.
   *
   * @param reason machine-readable reason
   * @param message human-readable text, one line
   */
  constructor(reason: SemaphoreRefusal, message: string) {
    super(1, message);
    this.name = "SemaphoreRefusedError";
    this.reason = reason;
  }
}

/**
 * A change refused because the stored document could not hold it within a
 * limit every reader enforces (its size in bytes, its number of holders):
 * `semaphore_full`, since no holder can be added until one releases.
 * Exit status 1.
 */
export class DocumentLimitError extends SemaphoreRefusedError {
  /** The limit, as a reader would report it: `document is 262200 bytes, more than 262144`. */
  readonly limit: string;
  /**
   * Creates a `DocumentLimitError`.
   *
   * @param limit the limit, as a reader would report it
   * @param message one line naming the limit and what was refused
   */
  constructor(limit: string, message: string) {
    super("semaphore_full", message);
    this.name = "DocumentLimitError";
    this.limit = limit;
  }
}

/** Machine-readable reasons for which the semaphore refuses an operation. */
export type SemaphoreRefusal =
  | "holder_exists"
  | "semaphore_full"
  | "holder_not_found"
  | "paused";

/** The stored semaphore document could not be parsed or has the wrong shape. Exit status 1. */
export class CorruptDocumentError extends ExitStatusError {
  /** The etcd key holding the document. */
  readonly key: string;
  /** What is wrong with the document, e.g. `"max" is not an integer`. */
  readonly defect: string;
  /** The raw stored value, exactly as read. */
  readonly raw: string;
  /**
   * Creates a `CorruptDocumentError`.
   *
   * @param key etcd key of the document
   * @param defect what is wrong with it
   * @param raw the raw stored value
   */
  constructor(key: string, defect: string, raw: string) {
    super(1, `semaphore document at ${key} is corrupt: ${defect}`);
    this.name = "CorruptDocumentError";
    this.key = key;
    this.defect = defect;
    this.raw = raw;
  }
}

/** etcd could not be reached or did not answer in time. Exit status 1. */
export class EtcdUnavailableError extends ExitStatusError {
  /**
   * Creates an `EtcdUnavailableError`.
   *
   * @param message one line naming the endpoints and the cause
   * @param options standard error options (the underlying cause)
   */
  constructor(message: string, options?: ErrorOptions) {
    super(1, message, options);
    this.name = "EtcdUnavailableError";
  }
}

/** etcd refused the credentials (wrong user or password, or none given where auth is on). Exit status 1. */
export class EtcdAuthenticationError extends ExitStatusError {
  /**
   * Creates an `EtcdAuthenticationError`.
   *
   * @param message one line naming the endpoint and what etcd said
   */
  constructor(message: string) {
    super(1, message);
    this.name = "EtcdAuthenticationError";
  }
}

/** The etcd user may not read or write the semaphore's keys (etcd RBAC). Exit status 1. */
export class EtcdPermissionDeniedError extends ExitStatusError {
  /**
   * Creates an `EtcdPermissionDeniedError`.
   *
   * @param message one line naming the endpoint and what etcd said
   */
  constructor(message: string) {
    super(1, message);
    this.name = "EtcdPermissionDeniedError";
  }
}

/** etcd answered a request with an error that is neither unavailability nor access (e.g. a lease not found). Exit status 1. */
export class EtcdRequestError extends ExitStatusError {
  /** The gRPC status code etcd answered with (5 not found, 3 invalid argument, ...). */
  readonly code: number;
  /**
   * Creates an `EtcdRequestError`.
   *
   * @param code gRPC status code
   * @param message one line naming the endpoint and what etcd said
   */
  constructor(code: number, message: string) {
    super(1, message);
    this.name = "EtcdRequestError";
    this.code = code;
  }
}

/** Too many compare-and-swap conflicts in a row; the update was not applied. Exit status 1. */
export class ContentionError extends ExitStatusError {
  /**
   * Creates a `ContentionError`.
   *
   * @param message one line naming the key and the number of attempts
   */
  constructor(message: string) {
    super(1, message);
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

/** Stable machine-readable kind of an error, printed as `"error"` with `--json`. */
export function errorKind(error: unknown): string {
  if (error instanceof SemaphoreRefusedError) return error.reason;
  if (error instanceof CorruptDocumentError) return "corrupt_document";
  if (error instanceof EtcdUnavailableError) return "etcd_unavailable";
  if (error instanceof EtcdAuthenticationError) return "etcd_auth_failed";
  if (error instanceof EtcdPermissionDeniedError) {
    return "etcd_permission_denied";
  }
  if (error instanceof ContentionError) return "contention";
  if (error instanceof UsageError) return "usage";
  return "failed";
}

/** Line breaks, including the Unicode ones a terminal or a log viewer may honour. */
const LINE_BREAKS = /\s*[\n\r\v\f\u0085\u2028\u2029]\s*/g;

/** Control characters (C0, DEL, C1) and bidirectional overrides: never printed raw. */
const UNPRINTABLE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** Whether `text` can be printed as it is: well-formed, no control or bidirectional characters. */
export function isPrintable(text: string): boolean {
  return text.search(UNPRINTABLE) === -1 && text.isWellFormed();
}

function escapeUnprintable(text: string): string {
  return text.replace(
    UNPRINTABLE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Returns a one-line message for any thrown value (no stack trace, no
 * newlines). Line breaks become spaces, tabs too; other control characters
 * are shown escaped (`\u001b`), so a hostile value cannot break the line or
 * drive the terminal.
 */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return escapeUnprintable(text.replace(LINE_BREAKS, " ").replaceAll("\t", " "))
    .trim();
}

/**
 * Quotes a value from outside (a config value, an argument, a stored field)
 * for a one-line message: a JSON string literal with control characters,
 * Unicode line separators and bidirectional overrides escaped, cut to `max`
 * characters with `...` and the full length when longer.
 */
export function quote(value: string, max = 80): string {
  if (value.length <= max) return escapeUnprintable(JSON.stringify(value));
  let cut = value.slice(0, max);
  // Do not split a surrogate pair.
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return `${
    escapeUnprintable(JSON.stringify(cut)).slice(0, -1)
  }..." (${value.length} characters)`;
}
