// Split a main-thread .cpuprofile (from `node --cpu-prof`) into shares, in µs per unit of work:
// the SQLite store (every sample under src/store/sqlite, the SQL stores' shared code or
// better-sqlite3, whatever the leaf), GC, XState, partita, zod, node internals.
//
//   node bench/cpuprofile-split.mjs <file.cpuprofile | dir> <units, e.g. batches>
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const [target, unitsArg] = process.argv.slice(2);
if (!target) {
  process.stderr.write('usage: node bench/cpuprofile-split.mjs <file.cpuprofile | dir> [units]\n');
  process.exit(2);
}
const units = Number(unitsArg ?? 1);
const file = statSync(target).isDirectory()
  ? readdirSync(target)
      .filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f))
      .map((f) => join(target, f))[0]
  : target;
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((x) => [x.id, x]));
const parent = new Map();
for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
const inStore = (url) => /\/store\/(sqlite|sql-[a-z-]+)\.js/.test(url) || url.includes('better-sqlite3');
const shares = new Map();
const add = (k, us) => shares.set(k, (shares.get(k) ?? 0) + us);
for (let i = 0; i < p.samples.length; i++) {
  const us = p.timeDeltas[i] ?? 0;
  const leaf = byId.get(p.samples[i]).callFrame;
  if (leaf.functionName === '(idle)') continue;
  if (leaf.functionName === '(garbage collector)') {
    add('GC', us);
    continue;
  }
  let store = false;
  for (let id = p.samples[i]; id !== undefined && !store; id = parent.get(id))
    store = inStore(byId.get(id).callFrame.url);
  if (store) add('SQLite store (statements, transactions, rows)', us);
  else if (leaf.url.includes('/node_modules/xstate/')) add('XState', us);
  else if (leaf.url.includes('/node_modules/zod/')) add('zod', us);
  else if (/\/dist\//.test(leaf.url)) add('partita', us);
  else if (leaf.url.startsWith('node:') || leaf.url === '') add('node internals, native', us);
  else add('other', us);
}
let total = 0;
for (const v of shares.values()) total += v;
for (const [k, v] of [...shares].sort((a, b) => b[1] - a[1]))
  console.log(
    `${k.padEnd(48)} ${(v / units).toFixed(0).padStart(7)} µs ${((100 * v) / total).toFixed(0).padStart(4)} %`,
  );
console.log(`${'total'.padEnd(48)} ${(total / units).toFixed(0).padStart(7)} µs`);
