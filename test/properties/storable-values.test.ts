import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_DEPTH, unstorable } from '../../src/values.js';

/**
 * What "storable" means (src/values.ts): a value is accepted exactly when its JSON, read again, is
 * the same value (members that are `undefined` left out, as JSON does). unstorable checks most
 * values on a fast path that names no path, and walks again to name one only when a value fails:
 * these properties hold the two to one definition.
 */

/** Is `copy` (JSON read again) the same as `value`? -0 counts as 0 (JSON writes it so). */
function sameAsJson(value: unknown, copy: unknown): boolean {
  if (value === null || typeof value !== 'object')
    return Object.is(value, copy) || (value === 0 && copy === 0);
  if (copy === null || typeof copy !== 'object') return false;
  if (Array.isArray(value) !== Array.isArray(copy)) return false;
  const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined);
  if (Array.isArray(value) && keys.length !== value.length) return false;
  if (keys.length !== Object.keys(copy).length) return false;
  return keys.every((k) =>
    sameAsJson((value as Record<string, unknown>)[k], (copy as Record<string, unknown>)[k]),
  );
}

function roundTrips(value: unknown): boolean {
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return false;
    return sameAsJson(value, JSON.parse(text)) && !hasOddObject(value, 0);
  } catch {
    return false;
  }
}

/** Objects JSON writes as something else that might still read back alike (boxed values, class instances). */
function hasOddObject(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (depth >= MAX_DEPTH) return true;
  const proto = Object.getPrototypeOf(value);
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return true;
  if (Object.getOwnPropertySymbols(value).length > 0) return true;
  return Object.values(value).some((v) => hasOddObject(v, depth + 1));
}

const anyValue = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true,
  maxDepth: 4,
});
/** fc.anything makes no NaN or infinities: doubles of every kind, alone and inside values. */
const anything = fc.oneof(
  anyValue,
  fc.double(),
  fc.array(fc.oneof(fc.double(), anyValue), { maxLength: 4 }),
  fc.dictionary(fc.string(), fc.oneof(fc.double(), anyValue), { maxKeys: 4 }),
);

describe('unstorable: one definition, checked fast', () => {
  it('accepts a value exactly when its JSON reads back the same', () => {
    fc.assert(
      fc.property(anything, (value) => {
        if (value === undefined) return; // stored as absent
        expect(unstorable(value) === undefined).toBe(roundTrips(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('names the path of what it refuses', () => {
    fc.assert(
      fc.property(anything, (value) => {
        const reason = unstorable({ wrapped: [value] });
        if (reason !== undefined) expect(reason).toMatch(/^\(root\)\.wrapped\[0\]/);
      }),
      { numRuns: 1000 },
    );
  });

  it('tells a cycle from depth, and refuses both', () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = { back: cycle };
    expect(unstorable(cycle)).toBe('(root).self.back is a circular reference');
    let deep: unknown = 'leaf';
    for (let i = 0; i <= MAX_DEPTH; i++) deep = [deep];
    expect(unstorable(deep)).toMatch(/nested deeper than 200 levels/);
    let fits: unknown = 'leaf';
    for (let i = 0; i < MAX_DEPTH; i++) fits = { d: fits };
    expect(unstorable(fits)).toBeUndefined();
  });

  it('refuses what fast-check does not make: symbol keys, class instances, holes', () => {
    expect(unstorable({ a: { [Symbol('s')]: 1 } })).toBe('(root).a has symbol keys');
    expect(unstorable([new (class Row {})()])).toMatch(/^\(root\)\[0\] is a Row, not a plain object/);
    expect(unstorable([1, undefined])).toBe(
      '(root)[1] is undefined inside an array (JSON would turn it into null)',
    );
    expect(unstorable({ a: undefined, b: [1, { c: null }] })).toBeUndefined();
  });

  it('refuses a Proxy only when it must cross threads', () => {
    const proxy = new Proxy({ a: 1 }, {});
    expect(unstorable({ p: proxy })).toBeUndefined();
    expect(unstorable({ p: proxy }, { crossesThreads: true })).toBe(
      '(root).p is a Proxy (it cannot leave the worker thread)',
    );
  });
});
