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
