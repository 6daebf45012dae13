import { visible } from './text.js';

/**
 * Every error partita raises is a {@link PartitaError} with a stable string `code`.
 * Codes are part of the public contract; messages are for humans and may change.
 *
 * @example
 * ```ts
 * try { await engine.submit('nope', {}); }
 * catch (err) { if (err instanceof PartitaError && err.code === 'UNKNOWN_JOB') { ... } }
 * ```
 */
export type ErrorCode =
  | 'VALIDATION'
  | 'UNKNOWN_JOB'
  | 'NOT_FOUND'
  | 'TIMEOUT'
  | 'CANCELLED'
  | 'WORKER_CRASHED'
  | 'WORKER_LOAD'
  | 'RESULT_INVALID'
  | 'STORE'
  | 'SNAPSHOT_VERSION'
  | 'LEASE_LOST'
  | 'ENGINE_STATE'
  | 'CONFLICT'
  | 'INTERNAL';

/**
 * Base class of every error partita raises. Each subclass fixes its `code`: after
 * `err instanceof NotFoundError`, `err.code` is typed `'NOT_FOUND'`.
 */
export class PartitaError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    // Messages name ids, keys and upstream errors, anyone's text: its control characters are shown
    // as escapes (text.ts), so a log line or a terminal shows what partita said, as it said it.
    // The structured fields (`batchId`, `issues`, …) keep the text exactly.
    super(visible(message), options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Input, options or a job definition failed validation. `issues` lists each problem with its path. */
export class ValidationError extends PartitaError {
  declare readonly code: 'VALIDATION';
  readonly issues: ReadonlyArray<{ path: string; message: string }>;
  constructor(
    message: string,
    issues: ReadonlyArray<{ path: string; message: string }> = [],
    cause?: unknown,
  ) {
    super('VALIDATION', message, { cause });
    this.issues = issues;
  }
}

/** `submit` named a job that the engine does not know. */
export class UnknownJobError extends PartitaError {
  declare readonly code: 'UNKNOWN_JOB';
  readonly job: string;
  /** `why`: said instead of the list of known jobs (a definition that is not the registered one). */
  constructor(job: string, known: readonly string[], why?: string) {
    super(
      'UNKNOWN_JOB',
      why
        ? `Unknown job "${job}": ${why}`
        : `Unknown job "${job}". Known jobs: ${known.length ? known.join(', ') : '(none)'}`,
    );
    this.job = job;
  }
}

/** No batch with this id exists in the store. */
export class NotFoundError extends PartitaError {
  declare readonly code: 'NOT_FOUND';
  readonly batchId: string;
  constructor(batchId: string) {
    super('NOT_FOUND', `Batch "${batchId}" not found`);
    this.batchId = batchId;
  }
}

/** A partition ran longer than the job's `timeoutMs`. */
export class TimeoutError extends PartitaError {
  declare readonly code: 'TIMEOUT';
  readonly timeoutMs: number;
  constructor(timeoutMs: number, what = 'Partition') {
    super('TIMEOUT', `${what} timed out after ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/** The batch or partition was cancelled. */
export class CancelledError extends PartitaError {
  declare readonly code: 'CANCELLED';
  constructor(reason = 'cancelled') {
    super('CANCELLED', reason);
  }
}

/** The worker thread running a partition died (uncaught error, `process.exit`, out of memory). */
export class WorkerCrashedError extends PartitaError {
  declare readonly code: 'WORKER_CRASHED';
  constructor(message: string, cause?: unknown) {
    super('WORKER_CRASHED', `Worker thread crashed: ${message}`, { cause });
  }
}

/** A job's worker module could not be loaded (missing default export, a throw or a hang at import). */
export class WorkerLoadError extends PartitaError {
  declare readonly code: 'WORKER_LOAD';
  constructor(message: string, cause?: unknown) {
    super('WORKER_LOAD', message, { cause });
  }
}

/** A partition's result did not match the job's `result` schema. */
export class ResultValidationError extends PartitaError {
  declare readonly code: 'RESULT_INVALID';
  constructor(message: string) {
    super('RESULT_INVALID', message);
  }
}

/** The store could not read or write. The batch is left as it was durably recorded. */
export class StoreError extends PartitaError {
  declare readonly code: 'STORE';
  /**
   * The store answered, but what it holds cannot be read (a stored record, state or value that is
   * not valid): retrying will not help, someone must look at it. Otherwise the store could not be
   * reached or could not write, which may pass.
   */
  readonly corrupt: boolean;
  constructor(message: string, cause?: unknown, options: { corrupt?: boolean } = {}) {
    super('STORE', message, { cause });
    this.corrupt = options.corrupt === true;
  }
}

/** A stored snapshot or record was written by a newer, unknown version of partita. */
export class SnapshotVersionError extends PartitaError {
  declare readonly code: 'SNAPSHOT_VERSION';
  readonly found: unknown;
  readonly supported: number;
  /** `field`: which version the stored value carries (a machine snapshot's is `machineVersion`). */
  constructor(found: unknown, supported: number, what = 'record', field = 'schemaVersion') {
    super(
      'SNAPSHOT_VERSION',
      `Stored ${what} has ${field} ${String(found)}; this partita reads up to ${supported}`,
    );
    this.found = found;
    this.supported = supported;
  }
}

/** This engine no longer owns the batch's lease; its write was refused. */
export class LeaseLostError extends PartitaError {
  declare readonly code: 'LEASE_LOST';
  readonly batchId: string;
  constructor(batchId: string) {
    super('LEASE_LOST', `Lease on batch "${batchId}" was lost; write refused`);
    this.batchId = batchId;
  }
}

/** The engine is not in a state that allows the call (e.g. `submit` before `start`). */
export class EngineStateError extends PartitaError {
  declare readonly code: 'ENGINE_STATE';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENGINE_STATE', message, options);
  }
}

/** The batch is in a state that does not allow the call (e.g. pausing a batch that is not PROCESSING). */
export class ConflictError extends PartitaError {
  declare readonly code: 'CONFLICT';
  readonly batchId: string;
  constructor(batchId: string, message: string) {
    super('CONFLICT', message);
    this.batchId = batchId;
  }
}

/** An error as it crosses a thread or is stored: plain data. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string | undefined;
  code?: string | undefined;
  cause?: SerializedError | undefined;
}

/** Longest error message stored or reported, in characters (the rest is cut, with a note). */
export const MAX_ERROR_MESSAGE = 8 * 1024;
/** Longest error stack stored or reported, in characters. */
export const MAX_ERROR_STACK = 16 * 1024;
/** Nested `cause`s kept. */
const MAX_CAUSE_DEPTH = 3;

/** Coerce anything thrown into an Error. Never throws (BigInts, cycles, proxies and throwing getters included). */
export function toError(value: unknown): Error {
  try {
    if (value instanceof Error) return value;
    if (typeof value === 'object' && value !== null && 'message' in value) {
      const { message, name, code, stack } = value as Record<string, unknown>;
      const err = new Error(safeString(message));
      if (typeof name === 'string') err.name = name;
      if (typeof code === 'string' || typeof code === 'number') (err as { code?: unknown }).code = code;
      if (typeof stack === 'string') err.stack = stack;
      else stackFree(err);
      return err;
    }
    return stackFree(new Error(typeof value === 'string' ? value : describeThrown(value)));
  } catch (err) {
    return stackFree(
      new Error(`Thrown value could not be read: ${safeString((err as { message?: unknown })?.message)}`),
    );
  }
}

/**
 * Errors toError made for a thrown value that had no stack of its own: their stack is partita's
 * (`at toError …`), which says nothing of where the value was thrown, so none is stored.
 */
const stackless = new WeakSet<Error>();
const stackFree = (err: Error): Error => {
  stackless.add(err);
  return err;
};

/** What a thrown non-Error was, readable and never throwing. */
function describeThrown(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  try {
    const json = JSON.stringify(value);
    if (json !== undefined) return json;
  } catch {
    // a cycle or a BigInt member: fall back to String()
  }
  return safeString(value);
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}… [${text.length - max} more characters cut by partita]`;
}

/**
 * Turn anything thrown into plain data that survives structured clone and JSON. Messages and stacks
 * are cut at {@link MAX_ERROR_MESSAGE} and {@link MAX_ERROR_STACK} characters.
 */
export function serializeError(value: unknown, depth = 0): SerializedError {
  try {
    return serializeOnce(value, depth);
  } catch (err) {
    // A getter on the error itself threw: say so rather than fail the caller.
    return {
      name: 'Error',
      message: `Error could not be read: ${safeString((err as { message?: unknown })?.message)}`,
    };
  }
}

function serializeOnce(value: unknown, depth: number): SerializedError {
  const err = toError(value);
  const out: SerializedError = {
    name: cut(safeString(err.name), 200),
    message: cut(safeString(err.message), MAX_ERROR_MESSAGE),
  };
  if (typeof err.stack === 'string' && err.stack && !stackless.has(err))
    out.stack = cut(err.stack, MAX_ERROR_STACK);
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = cut(String(code), 200);
  if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serializeError(err.cause, depth + 1);
  return out;
}

/**
 * A stored batch that is there but cannot be read: its row is corrupt, or a newer partita wrote it.
 * Retrying will not help (the HTTP API answers 500, not 503; listeners hear it with its error).
 */
export function isUnreadableRow(err: unknown): boolean {
  return err instanceof SnapshotVersionError || (err instanceof StoreError && err.corrupt);
}
