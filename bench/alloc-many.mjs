// Where many one-partition batches allocate: V8's sampling heap profiler through the inspector,
// keeping the objects already collected (what `--heap-prof` leaves out), summed by function; a
// built-in (`Set`, `Map`, `sort`) is named with the two frames that called it. Bytes per batch.
// The batches are those of bench/profile-many.mjs (inline no-op handler, maxConcurrentBatches 4).
//
//   node bench/alloc-many.mjs      # ALLOC_N (5000), ALLOC_MODE (backlog | sequential), ALLOC_STORE (sqlite | memory), ALLOC_TOP (40)
import { mkdtempSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { envInt, partita, printTable } from './lib/common.mjs';

const n = envInt('ALLOC_N', 5000);
const top = envInt('ALLOC_TOP', 40);
const mode = process.env.ALLOC_MODE ?? 'backlog';
const storeKind = process.env.ALLOC_STORE ?? 'sqlite';
const api = await partita();
const noop = api.defineJob({
  name: 'noop',
  partition: (x) => [{ key: 'only', payload: x }],
  handler: (x) => x,
});
const dir = mkdtempSync(join(tmpdir(), 'partita-alloc-many-'));
const engine = api.createEngine({
  jobs: [noop],
  store: storeKind === 'memory' ? api.memoryStore() : api.sqliteStore({ path: join(dir, 'bench.db') }),
  logger: false,
  maxConcurrentBatches: 4,
});
await engine.start();
for (let i = 0; i < 500; i++) await engine.wait((await engine.submit('noop', i)).id); // warm up

const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');
await session.post('HeapProfiler.startSampling', {
  samplingInterval: 512,
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
let ids = [];
if (mode === 'sequential') for (let i = 0; i < n; i++) ids.push((await engine.submit('noop', i)).id);
else ids = await Promise.all(Array.from({ length: n }, (_, i) => engine.submit('noop', i).then((b) => b.id)));
for (const id of ids) await engine.wait(id);
const { profile } = await session.post('HeapProfiler.stopSampling');
session.disconnect();
await engine.stop();
rmSync(dir, { recursive: true, force: true });

const where = (f) =>
  `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}`;
const bytes = new Map();
const visit = (node, callers) => {
  const f = node.callFrame;
  const name =
    f.url === '' && callers.length
      ? `${where(f)} ← ${callers.slice(-2).reverse().map(where).join(' ← ')}`
      : where(f);
  bytes.set(name, (bytes.get(name) ?? 0) + node.selfSize);
  for (const child of node.children) visit(child, [...callers, f]);
};
visit(profile.head, []);
let total = 0;
for (const b of bytes.values()) total += b;
printTable(
  `alloc-many: ${n.toLocaleString('en-US')} one-partition batches (${mode}, ${storeKind}): ${Math.round(total / n).toLocaleString('en-US')} bytes allocated per batch`,
  ['bytes per batch', 'allocated in'],
  [...bytes.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, b]) => ({ 'bytes per batch': Math.round(b / n), 'allocated in': name })),
);
