// What checking a payload or a result costs (`unstorable`, src/values.ts: run on every payload at
// submit and every result a handler returns, on the thread that returns it) and what copying one
// costs (`storedCopy`: an inline handler's payload per attempt and its result), in ns per call, for
// a few shapes. PARTITA_DIST points it at another build, to compare two side by side.
//
//   node bench/values.mjs               # VALUES_CALLS calls per cell (500000), VALUES_ROUNDS (5; the median)
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DIST_DIR, envInt, median, printTable } from './lib/common.mjs';

const { unstorable, storedCopy } = await import(pathToFileURL(join(DIST_DIR, 'values.js')).href);
const calls = envInt('VALUES_CALLS', 500_000);
const rounds = envInt('VALUES_ROUNDS', 5);

const shapes = {
  'a number': 42,
  '{ ok: true }': { ok: true },
  'a user-day payload (4 members, an array of 3)': {
    i: 5,
    user: 'user-1',
    day: '2026-01-01',
    totals: [1, 2, 3],
  },
  'nested (4 levels)': { a: { b: { c: [1, { d: 'e' }] } } },
  'a row of 20 members': Object.fromEntries(
    Array.from({ length: 20 }, (_, i) => [`col${i}`, i % 2 ? `v${i}` : i]),
  ),
};

function nsPerCall(fn, value) {
  const times = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) fn(value);
    times.push(Number(process.hrtime.bigint() - t0) / calls);
  }
  return median(times);
}

printTable(
  `values: ns per call (median of ${rounds} rounds of ${calls.toLocaleString('en-US')}; build ${DIST_DIR})`,
  ['value', 'unstorable ns', 'storedCopy ns'],
  Object.entries(shapes).map(([name, value]) => {
    if (unstorable(value) !== undefined) throw new Error(`${name} should be storable`);
    return {
      value: name,
      'unstorable ns': Math.round(nsPerCall(unstorable, value)),
      'storedCopy ns': Math.round(nsPerCall(storedCopy, value)),
    };
  }),
);
