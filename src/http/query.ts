import { HttpProblem } from './problem.js';

/** Reading query parameters: each bad one is a 400 VALIDATION naming the parameter. */

export function invalid(param: string, message: string): HttpProblem {
  return new HttpProblem(
    400,
    'VALIDATION',
    `${param}: ${message}`,
    {},
    { issues: [{ path: param, message }] },
  );
}

/** A whole number in [1, max], or `fallback` when absent. */
export function limitParam(params: URLSearchParams, fallback: number, max: number): number {
  const raw = params.get('limit');
  if (raw === null || raw === '') return fallback;
  // Digits only: Number() also takes '0x10', '1e3' and spaces around them.
  const n = /^[0-9]+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw invalid('limit', `expected a whole number from 1 to ${max}`);
  return n;
}

/** Every value of a parameter given as `?p=a,b` or `?p=a&p=b`, empty ones dropped. */
export function listParam(params: URLSearchParams, name: string): string[] {
  return params
    .getAll(name)
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** Whether `?include=` names `what`; other values are refused so a typo does not pass silently. */
export function includes(params: URLSearchParams, what: string, allowed: readonly string[]): boolean {
  const values = listParam(params, 'include');
  for (const v of values)
    if (!allowed.includes(v)) throw invalid('include', `expected ${allowed.join(' or ')}`);
  return values.includes(what);
}
