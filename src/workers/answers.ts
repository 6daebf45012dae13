import { inspect } from 'node:util';
import type { z } from 'zod';
import { ResultValidationError, type SerializedError, serializeError, WorkerLoadError } from '../errors.js';
import { storedCopy, unstorable } from '../values.js';
import type { RunResult } from './protocol.js';

/**
 * What a handler's answer becomes, the same on a worker thread (runner.ts) and on the main thread
 * (inline handlers, runtime/work.ts). Nothing here throws, whatever the handler returned or threw:
 * an exception escaping the runner would be reported as a crashed thread (WORKER_CRASHED).
 */

/** A thrown value: retried unless it says `retryable: false` ({@link retryableOf}). */
export function thrownAnswer(err: unknown): RunResult {
  return { ok: false, error: serializeThrown(err), retryable: retryableOf(err) };
}

/**
 * A returned result: refused with RESULT_INVALID (never retried) when storage cannot keep it
 * ({@link unstorable}, the one definition shared with payloads) or the job's `result` schema refuses it.
 */
export function returnedAnswer(
  result: unknown,
  schema: z.ZodType | undefined,
  /** On a worker thread: the result still has to cross to the main thread (structured clone). */
  crossesThreads = false,
  /**
   * Keep a copy of the result as it is now (its JSON), not the object: an inline handler's result
   * is stored a moment later, a group member's crosses with the group's answer, and a handler may
   * reuse the object it returned (a scratch row filled anew for each partition) meanwhile.
   */
  snapshot = false,
): RunResult {
  let reason: string | undefined;
  try {
    reason = unstorable(result, { crossesThreads });
  } catch (err) {
    // A getter or a proxy trap threw while the result was read.
    reason = `(root) could not be read (${describeSafely(err)})`;
  }
  if (reason) return invalidResult(`Result cannot be stored as JSON: ${reason}`);
  if (snapshot) {
    try {
      result = storedCopy(result);
    } catch (err) {
      // A getter that throws (or answers differently) when read a second time.
      return invalidResult(
        `Result cannot be stored as JSON: (root) could not be read (${describeSafely(err)})`,
      );
    }
  }
  if (schema) {
    let parsed: ReturnType<z.ZodType['safeParse']>;
    try {
      parsed = schema.safeParse(result);
    } catch (err) {
      return invalidResult(`The job's result schema threw: ${describeSafely(err)}`);
    }
    if (!parsed.success) {
      const text = parsed.error.issues
        .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      return invalidResult(`Result does not match the job's result schema: ${text}`);
    }
  }
  return { ok: true, result };
}

function invalidResult(message: string): RunResult {
  return { ok: false, error: serializeError(new ResultValidationError(message)), retryable: false };
}

/**
 * A job's worker module that threw while it was imported, or has no default export function: every
 * attempt would fail the same way, so it is not retried.
 */
export function loadFailedAnswer(module: string, err: unknown): RunResult {
  if (err instanceof WorkerLoadError) return { ok: false, error: serializeError(err), retryable: false };
  const error = serializeError(
    new WorkerLoadError(`worker module ${module} failed to load: ${describeSafely(err)}`),
  );
  // The cause is serialized on its own: whatever the module threw, the code stays WORKER_LOAD.
  error.cause = serializeThrown(err);
  return { ok: false, error, retryable: false };
}

/**
 * A job's worker module that did not finish loading within `ms` (pool.ts terminates its thread). Retried
 * like a TIMEOUT when attempts remain: a hang at import may depend on the moment (a network call).
 */
export function loadTimedOutAnswer(module: string, ms: number): RunResult {
  return {
    ok: false,
    error: serializeError(new WorkerLoadError(`worker module ${module} did not load within ${ms} ms`)),
    retryable: true,
  };
}

/** `retryable` of a thrown value; true when it cannot be read. */
export function retryableOf(err: unknown): boolean {
  try {
    return (err as { retryable?: unknown } | null | undefined)?.retryable !== false;
  } catch {
    return true;
  }
}

/**
 * Anything thrown as plain data, never throwing. Errors and error-like objects go through
 * `serializeError`; a plain object JSON cannot show (a cycle, a BigInt member) is described with
 * `util.inspect`; a value that throws while it is read (a getter, a proxy) is described as such.
 */
export function serializeThrown(value: unknown): SerializedError {
  try {
    if (
      typeof value === 'object' &&
      value !== null &&
      !(value instanceof Error) &&
      !('message' in value) &&
      !jsonable(value)
    ) {
      return serializeError(inspectSafely(value));
    }
    return serializeError(value);
  } catch (readErr) {
    return serializeError(
      `Thrown value could not be read (${describeSafely(readErr)}): ${inspectSafely(value)}`,
    );
  }
}

function jsonable(value: object): boolean {
  try {
    return JSON.stringify(value) !== undefined;
  } catch {
    return false;
  }
}

/** `Name: message` of an error (or what else was thrown), never throwing. */
function describeSafely(err: unknown): string {
  try {
    if (err instanceof Error) return `${String(err.name)}: ${String(err.message)}`;
    if (typeof err === 'string') return err;
  } catch {
    // a getter or a proxy trap threw: inspect it instead
  }
  return inspectSafely(err);
}

/** util.inspect without running the value's code (custom inspect, getters), and never throwing. */
function inspectSafely(value: unknown): string {
  try {
    return inspect(value, {
      depth: 3,
      breakLength: Number.POSITIVE_INFINITY,
      maxArrayLength: 20,
      maxStringLength: 1000,
      customInspect: false,
      getters: false,
    });
  } catch {
    return `[unreadable ${typeof value}]`;
  }
}
