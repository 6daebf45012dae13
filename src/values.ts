/**
 * What partita can store: one definition for payloads, results, partition keys and batch ids,
 * checked at the boundary and identical on every store (docs/guide.md, "What can be stored").
 *
 * Payloads and results are stored as JSON text (SQLite, PostgreSQL) or as a copy of that JSON
 * (memory), so only values that survive JSON unchanged are accepted: `null`, booleans, finite
 * numbers, strings, arrays and plain objects of those. An object member that is `undefined` is
 * left out, as JSON does; everything else (NaN, Infinity, BigInt, functions, symbols, Map, Set,
 * Date, Error, class instances, cycles, `undefined` inside an array) is refused with its path,
 * because it would come back as something else (`{}`, `null`, a string) or not at all.
 *
 * This module depends on nothing but Node.js: the worker runner imports it too.
 */
import { types } from 'node:util';

/** Longest partition key, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 1024;
/** Longest batch id, in UTF-16 code units. */
export const MAX_ID_LENGTH = 200;
/** Longest job name: a trigger's child batch id (`${parent}>${job}`) must still fit MAX_ID_LENGTH. */
export const MAX_JOB_NAME_LENGTH = 100;
/**
 * Longest id a batch of a job with triggers may have: each child's id adds `>`, its job name and a
 * run number `#NNNN` (a batch's later runs, after `retryFailed`), and a child with triggers of its
 * own has children too, so the deepest chain of triggers below the job must still fit
 * MAX_ID_LENGTH. Without triggers, MAX_ID_LENGTH. `jobs` gives the triggered jobs' own triggers
 * (the engine has refused cycles already).
 */
export function longestParentId(
  job: { readonly triggers?: readonly { job: string }[] | undefined },
  jobs: ReadonlyMap<string, { readonly triggers?: readonly { job: string }[] | undefined }>,
): number {
  return MAX_ID_LENGTH - chainSuffix(job, jobs, 0, new Map());
}

type TriggeringJob = { readonly triggers?: readonly { job: string }[] | undefined };

/** The longest suffix the children of `job` add to its ids, memoized by job (a shared child is walked once). */
function chainSuffix(
  job: TriggeringJob,
  jobs: ReadonlyMap<string, TriggeringJob>,
  depth: number,
  memo: Map<TriggeringJob, number>,
): number {
  const known = memo.get(job);
  if (known !== undefined) return known;
  let longest = 0;
  // A guard only: the engine refuses trigger cycles before any id is checked.
  if (depth > jobs.size) return longest;
  for (const t of job.triggers ?? []) {
    const child = jobs.get(t.job);
    const below = child ? chainSuffix(child, jobs, depth + 1, memo) : 0;
    longest = Math.max(longest, '>'.length + t.job.length + '#NNNN'.length + below);
  }
  memo.set(job, longest);
  return longest;
}
/** Deepest nesting of a payload or result. */
export const MAX_DEPTH = 200;

/**
 * Why `value` cannot be stored faithfully as JSON, naming the first offending path; undefined when
 * it can. A top-level `undefined` is storable (stored as absent).
 */
export function unstorable(value: unknown, options: { crossesThreads?: boolean } = {}): string | undefined {
  if (value === undefined) return undefined;
  const crossesThreads = options.crossesThreads === true;
  // Most values pass: check them without building a path or a set of the objects on the way, and
  // walk again, naming the path, only a value that fails. `storable` accepts no more than `walk`.
  if (storable(value, 0, crossesThreads)) return undefined;
  return walk(value, '(root)', new Set(), 0, crossesThreads);
}

/**
 * `walk`'s rules with no path and no `seen` set: whether `value` can be stored. A cycle is not told
 * apart: it nests deeper than MAX_DEPTH, and `walk` then names it.
 */
function storable(value: unknown, depth: number, crossesThreads: boolean): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth >= MAX_DEPTH || (crossesThreads && types.isProxy(value))) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!storable(value[i], depth + 1, crossesThreads)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key of Object.keys(value)) {
    const member = (value as Record<string, unknown>)[key];
    if (member !== undefined && !storable(member, depth + 1, crossesThreads)) return false;
  }
  return Object.getOwnPropertySymbols(value).length === 0;
}

function walk(
  value: unknown,
  path: string,
  seen: Set<object>,
  depth: number,
  crossesThreads: boolean,
): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${String(value)} (JSON has no such number)`;
    case 'undefined':
      return `${path} is undefined inside an array (JSON would turn it into null)`;
    case 'bigint':
      return `${path} is a BigInt (convert it to a string or a number)`;
    case 'function':
    case 'symbol':
      return `${path} is a ${typeof value}`;
  }
  if (value === null) return undefined;
  const object = value as object;
  if (depth >= MAX_DEPTH) return `${path} is nested deeper than ${MAX_DEPTH} levels`;
  if (seen.has(object)) return `${path} is a circular reference`;
  // A worker thread's result crosses to the main thread by structured clone, which refuses a Proxy
  // (JSON would store what its traps return; on the main thread one is stored that way).
  if (crossesThreads && types.isProxy(object))
    return `${path} is a Proxy (it cannot leave the worker thread)`;
  seen.add(object);
  try {
    if (Array.isArray(object)) {
      for (let i = 0; i < object.length; i++) {
        const reason = walk(object[i], `${path}[${i}]`, seen, depth + 1, crossesThreads);
        if (reason) return reason;
      }
      return undefined;
    }
    const proto = Object.getPrototypeOf(object);
    if (proto !== Object.prototype && proto !== null) {
      const kind = (object as { constructor?: { name?: string } }).constructor?.name || 'object';
      return `${path} is ${/^[AEIOU]/.test(kind) && !/^U(int|RL)/.test(kind) ? 'an' : 'a'} ${kind}, not a plain object (JSON would store it as ${describeJson(object)})`;
    }
    for (const key of Object.keys(object)) {
      const member = (object as Record<string, unknown>)[key];
      if (member === undefined) continue; // left out, as JSON.stringify does
      const reason = walk(member, `${path}.${key}`, seen, depth + 1, crossesThreads);
      if (reason) return reason;
    }
    if (Object.getOwnPropertySymbols(object).length > 0) return `${path} has symbol keys`;
    return undefined;
  } finally {
    seen.delete(object);
  }
}

function describeJson(object: object): string {
  try {
    const text = JSON.stringify(object);
    return text === undefined ? 'nothing' : text.length > 40 ? `${text.slice(0, 40)}…` : text;
  } catch {
    // Only for the message: a value JSON cannot even serialize is described as such.
    return 'an error';
  }
}

/**
 * The JSON text to store for a storable value (undefined for `undefined`). Taken when the value is
 * handed over, so later changes to the caller's object change nothing stored.
 */
export function toStoredJson(value: unknown): string | undefined {
  return value === undefined ? undefined : JSON.stringify(value);
}

const LONE_SURROGATE = /\p{Surrogate}/u;

/** Why `text` cannot be a partition key or batch id, or undefined when it can. */
export function badName(text: unknown, maxLength: number): string | undefined {
  if (typeof text !== 'string') return `expected a string, received ${typeof text}`;
  if (text.length === 0) return 'must not be empty';
  if (text.length > maxLength) return `must be at most ${maxLength} characters (is ${text.length})`;
  if (text.includes('\u0000')) return 'must not contain the NUL character (U+0000)';
  if (LONE_SURROGATE.test(text)) return 'must be well-formed Unicode (it contains a lone surrogate)';
  return undefined;
}

/**
 * `.` and `..`: no URL path can name them (`/batches/..` is `/`), so they are refused as batch ids
 * (the HTTP API, the dashboard and `partita --url` could never reach such a batch).
 */
export function isDotSegment(id: string): boolean {
  return id === '.' || id === '..';
}

/** Whether `value` is a promise (or any thenable): what an `await` would wait for. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * A copy of a value {@link unstorable} accepted, as storage would give it back (its JSON read
 * again): what a handler changes afterwards in the object it returned or was given is not in it.
 */
export function storedCopy<T>(value: T): T {
  return value === null || typeof value !== 'object' ? value : JSON.parse(JSON.stringify(value));
}
