import type { z } from 'zod';
import { type SerializedError, serializeError } from '../errors.js';
import type { RunResult } from './protocol.js';

/**
 * What a handler's answer becomes, the same on a worker thread (runner.ts) and on the main thread
 * (inline handlers, runtime/work.ts).
 */

/** A thrown error: retried unless it says `retryable: false`. */
export function thrownAnswer(err: unknown): RunResult {
  return {
    ok: false,
    error: serializeError(err),
    retryable: (err as { retryable?: unknown })?.retryable !== false,
  };
}

/** A returned result: refused (never retried) when the job's `result` schema or storage cannot take it. */
export function returnedAnswer(result: unknown, schema: z.ZodType | undefined): RunResult {
  if (schema) {
    const parsed = schema.safeParse(result);
    if (!parsed.success) {
      const text = parsed.error.issues
        .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
        .join('; ');
      const message = `Result does not match the job's result schema: ${text}`;
      return {
        ok: false,
        error: { name: 'ResultValidationError', message, code: 'RESULT_INVALID' },
        retryable: false,
      };
    }
  }
  const unstorable = notStorable(result);
  return unstorable ? { ok: false, error: unstorable, retryable: false } : { ok: true, result };
}

/**
 * Why a result cannot be stored, or undefined when it can. Results are stored as JSON (SQLite,
 * PostgreSQL) and cross threads by structured clone; a value that fails either (a BigInt, a
 * function, a cycle) would stall the batch's group commit, so it fails its partition instead.
 * Shared by the worker runner and the main thread (inline handlers).
 */
export function notStorable(result: unknown): SerializedError | undefined {
  try {
    if (typeof result === 'function' || typeof result === 'symbol') throw new TypeError(`a ${typeof result}`);
    JSON.stringify(result, (_key, value) => {
      if (typeof value === 'function' || typeof value === 'symbol')
        throw new TypeError(`contains a ${typeof value}`);
      return value;
    });
    return undefined;
  } catch (err) {
    return {
      name: 'ResultValidationError',
      message: `Result cannot be stored as JSON: ${(err as Error).message}`,
      code: 'RESULT_INVALID',
    };
  }
}
