import type { SerializedError } from '../errors.js';

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
