// Many one-partition batches through one engine on SQLite, for `node --cpu-prof` (bench "many"
// without its harness): inline no-op handler, maxConcurrentBatches 4, submitted one after another
// (sequential) or all at once (backlog), then every batch awaited. Prints batches/s and the
// process's CPU per batch.
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-many.mjs     # PROFILE_N (10000), PROFILE_MODE,
//                                                                       # PROFILE_STORE (sqlite | memory)
//   node bench/cpuprofile-split.mjs /tmp/prof 10000                     # µs per batch by share
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { partita } from './lib/common.mjs';

const n = Number(process.env.PROFILE_N ?? 10_000);
const modes = (process.env.PROFILE_MODE ?? 'sequential,backlog').split(',');
// memory: the engine's own cost per batch, with no store behind it (the floor the SQLite store adds to).
const storeKind = process.env.PROFILE_STORE ?? 'sqlite';
const api = await partita();
const noop = api.defineJob({
  name: 'noop',
  partition: (x) => [{ key: 'only', payload: x }],
  handler: (x) => x,
});
for (const mode of modes) {
  const dir = mkdtempSync(join(tmpdir(), 'partita-profile-many-'));
  const engine = api.createEngine({
    jobs: [noop],
    store: storeKind === 'memory' ? api.memoryStore() : api.sqliteStore({ path: join(dir, 'bench.db') }),
    logger: false,
    maxConcurrentBatches: 4,
  });
  await engine.start();
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let ids = [];
  if (mode === 'sequential') for (let i = 0; i < n; i++) ids.push((await engine.submit('noop', i)).id);
  else
    ids = await Promise.all(Array.from({ length: n }, (_, i) => engine.submit('noop', i).then((b) => b.id)));
  let notCompleted = 0;
  for (const id of ids) if ((await engine.wait(id)).status !== 'COMPLETED') notCompleted++;
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await engine.stop();
  rmSync(dir, { recursive: true, force: true });
  console.log(
    `${mode} ${n}: ${Math.round((n / ms) * 1000)}/s, CPU ${((cpu.user + cpu.system) / n).toFixed(0)} µs/batch` +
      (notCompleted > 0 ? `, ${notCompleted} NOT COMPLETED` : ''),
  );
  if (notCompleted > 0) process.exitCode = 1;
}
