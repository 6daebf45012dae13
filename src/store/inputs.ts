import { ValidationError } from '../errors.js';
import { badName, MAX_ID_LENGTH, MAX_KEY_LENGTH, toStoredJson } from '../values.js';
import type { PartitionInput } from './store.js';

/**
 * What every store checks of what it is given, in one place, so that memory, SQLite and PostgreSQL
 * refuse the same things with the same errors. The engine checks keys and ids first; the stores
 * check again because they are public, and because each database would otherwise treat a bad name
 * its own way (PostgreSQL refuses NUL, both SQL drivers rewrite a lone surrogate to U+FFFD).
 */

/** A partition as a store holds it between the iterator and the database: nothing of the caller's. */
export interface CapturedPartition {
  key: string;
  /** The payload's JSON text; undefined for an undefined payload (SQL NULL). */
  json: string | undefined;
}

/** Refuses a batch id that src/values.ts `badName` refuses, before anything is written. */
export function checkBatchId(id: unknown): void {
  const reason = badName(id, MAX_ID_LENGTH);
  if (reason) throw new ValidationError(`Batch id ${reason}`, [{ path: 'id', message: reason }]);
}

/**
 * Checks partition `index` as the iterator hands it over and takes its payload's JSON text at once:
 * a source may reuse one payload object for every partition, so a store that kept the object until
 * its chunk is written would store the last value for all of them.
 */
export function capturePartition(p: PartitionInput, index: number, batchId: string): CapturedPartition {
  const at = `partitions[${index}]`;
  const refuse = (path: string, message: string) =>
    new ValidationError(`Partition ${index} of batch "${batchId}": ${path} ${message}`, [
      { path: `${at}.${path}`, message },
    ]);
  if (typeof p !== 'object' || p === null) {
    throw new ValidationError(`Partition ${index} of batch "${batchId}" is not an object`, [
      { path: at, message: 'expected { key, payload }' },
    ]);
  }
  const reason = badName(p.key, MAX_KEY_LENGTH);
  if (reason) throw refuse('key', reason);
  if (p.json !== undefined) {
    if (typeof p.json !== 'string') throw refuse('json', `must be a string, received ${typeof p.json}`);
    return { key: p.key, json: p.json };
  }
  try {
    return { key: p.key, json: toStoredJson(p.payload) };
  } catch (err) {
    throw refuse('payload', `cannot be stored as JSON: ${(err as Error).message}`);
  }
}

/**
 * Close a partition source read no further, as `for await` would. Not awaited: a source stuck in its
 * own `await` must not hold the submit's answer, and a failure to close is the source's own affair.
 */
export function closeSource(iterator: AsyncIterator<unknown> | Iterator<unknown>): void {
  try {
    const closed = iterator.return?.();
    if (closed && typeof (closed as Promise<unknown>).then === 'function')
      (closed as Promise<unknown>).then(undefined, () => {});
  } catch {
    // a `return` that throws at once: nothing more to close
  }
}

export function duplicateKey(batchId: string, key: string): ValidationError {
  return new ValidationError(`Duplicate partition key "${key}" in batch "${batchId}"`, [
    { path: 'key', message: `duplicate: ${key}` },
  ]);
}

/** listBatches' `limit` as a whole number, or undefined for none. Anything but a finite number >= 0 is refused. */
export function checkLimit(limit: unknown): number | undefined {
  if (limit === undefined) return undefined;
  if (typeof limit !== 'number' || !Number.isFinite(limit) || limit < 0) {
    const shown = typeof limit === 'number' ? String(limit) : typeof limit;
    throw new ValidationError(`listBatches: "limit" must be a finite number >= 0, received ${shown}`, [
      { path: 'limit', message: 'expected a finite number >= 0' },
    ]);
  }
  return Math.trunc(limit);
}
