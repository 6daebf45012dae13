import type { z } from 'zod';
import { ValidationError } from './errors.js';

/** Parse with a zod schema; on failure throw a ValidationError whose message names each field and problem. */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw validationErrorFrom(result.error, what);
}

export function validationErrorFrom(error: z.ZodError, what: string): ValidationError {
  const issues = error.issues.map((i) => ({
    path: i.path.map(String).join('.') || '(root)',
    message: i.message,
  }));
  const text = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  return new ValidationError(`Invalid ${what}: ${text}`, issues, error);
}

/**
 * Options parsed with `schema` (a strict object whose fields are all optional and have no defaults),
 * where `{}` and `undefined` (the usual call, once per submit and per wait) skip zod: both parse to `{}`.
 */
export function parseOptions<T extends object>(schema: z.ZodType<T>, value: unknown, what: string): T {
  if (value === undefined || isEmptyPlainObject(value)) return {} as T;
  return parseOrThrow(schema, value, what);
}

function isEmptyPlainObject(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype)
    return false;
  for (const _ in value) return false;
  return Object.getOwnPropertySymbols(value).length === 0;
}

/** A batch id given to an engine method: a non-empty string (else VALIDATION, on every store alike). */
export function requireBatchId(id: unknown, method: string): asserts id is string {
  if (typeof id !== 'string' || id.length === 0)
    throw new ValidationError(
      `${method}(id): the batch id must be a non-empty string (got ${describe(id)})`,
      [{ path: 'id', message: 'expected a non-empty string' }],
    );
}

/** Longest cancel reason, as over HTTP: it is stored as the batch's error message. */
export const MAX_REASON_LENGTH = 1000;

/** cancel()'s reason: a string of at most {@link MAX_REASON_LENGTH} characters. */
export function requireReason(reason: unknown): asserts reason is string {
  if (typeof reason !== 'string' || reason.length > MAX_REASON_LENGTH)
    throw new ValidationError(
      `cancel(id, reason): the reason must be a string of at most ${MAX_REASON_LENGTH} characters (got ${describe(reason)})`,
      [{ path: 'reason', message: `expected a string of at most ${MAX_REASON_LENGTH} characters` }],
    );
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `a string of ${value.length} characters`;
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
}
