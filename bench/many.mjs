// Bench "many": many small batches through one engine. One-partition batches with an inline no-op
// handler, SQLite (and the memory store for comparison), maxConcurrentBatches 4:
// - sequential: each submit awaited before the next, then every batch awaited;
// - backlog: every submit started at once (a backlog of QUEUED batches), then every batch awaited,
//   with the heap while the backlog is queued and the time each fifth of the submits took;
// - recovery: a backlog left in the store, a new engine's start() and the time until all are done.
import { performance } from 'node:perf_hooks';
import { budget, envInt, envList, log, partita, printBudgets, printTable } from './lib/common.mjs';
import { openStore } from './lib/engine.mjs';

export const description = 'many one-partition batches: sequential, as a backlog, and recovered';

const gc = () => globalThis.gc?.();

export default async function many() {
  const sizes = envList('BENCH_MANY', ['2000', '20000', '100000']).map(Number);
  const stores = envList('BENCH_MANY_STORES', ['sqlite', 'memory']);
  const api = await partita();
  const noop = api.defineJob({
    name: 'noop',
    partition: (n) => [{ key: 'only', payload: n }],
    handler: (n) => n,
  });
  const engineOn = (store) =>
    api.createEngine({ jobs: [noop], store, logger: false, maxConcurrentBatches: 4 });
  const rows = [];

  for (const kind of stores) {
    for (const n of sizes) {
      if (kind === 'memory' && n > 20_000) continue; // the memory store keeps every batch: not its use
      // --- sequential -------------------------------------------------------------------------
      {
        const s = await openStore(kind, `many-seq-${n}`);
        const engine = engineOn(s.store);
        await engine.start();
        const t0 = performance.now();
        const ids = [];
        for (let i = 0; i < n; i++) ids.push((await engine.submit('noop', i)).id);
        for (const id of ids) await engine.wait(id);
        const ms = performance.now() - t0;
        await engine.stop();
        await s.cleanup();
        rows.push({
          store: kind,
          mode: 'sequential',
          batches: n,
          seconds: ms / 1000,
          per_s: (n / ms) * 1000,
        });
        log(`many: ${kind} sequential ${n}: ${Math.round((n / ms) * 1000)}/s`);
      }
      // --- backlog ----------------------------------------------------------------------------
      {
        const s = await openStore(kind, `many-backlog-${n}`);
        const engine = engineOn(s.store);
        await engine.start();
        gc();
        const heap0 = process.memoryUsage().heapUsed;
        const t0 = performance.now();
        const fifths = [];
        const submits = [];
        let mark = t0;
        for (let i = 0; i < n; i++) {
          submits.push(engine.submit('noop', i).then((b) => b.id)); // ids only: the bench holds no summaries
          if ((i + 1) % Math.ceil(n / 5) === 0 || i === n - 1) {
            // A fifth is done when its submits have resolved.
            await Promise.all(submits.slice(-Math.ceil(n / 5)));
            const now = performance.now();
            fifths.push((now - mark) / 1000);
            mark = now;
          }
        }
        const ids = await Promise.all(submits);
        gc();
        const queued = engine.metrics().queued;
        const heap = process.memoryUsage().heapUsed - heap0;
        const rss = process.memoryUsage().rss;
        for (const id of ids) await engine.wait(id);
        const ms = performance.now() - t0;
        await engine.stop();
        await s.cleanup();
        rows.push({
          store: kind,
          mode: 'backlog',
          batches: n,
          seconds: ms / 1000,
          per_s: (n / ms) * 1000,
          queued_at_end: queued,
          heap_per_queued_kb: queued > 0 ? heap / queued / 1024 : undefined,
          rss_mb: rss / 1024 / 1024,
          fifths_s: fifths.map((f) => f.toFixed(2)).join(' '),
          last_vs_first: fifths.at(-1) / fifths[0],
        });
        log(
          `many: ${kind} backlog ${n}: ${Math.round((n / ms) * 1000)}/s, fifths ${fifths.map((f) => f.toFixed(2))}`,
        );
      }
    }
  }

  // --- recovery of a QUEUED backlog ---------------------------------------------------------------
  const recoverN = envInt('BENCH_MANY_RECOVER', 100_000);
  const recovery = [];
  if (recoverN > 0 && stores.includes('sqlite')) {
    const s = await openStore('sqlite', 'many-recover');
    // The only slot is held by a batch that never ends on this first engine: every other stays QUEUED.
    const gate = (handler) =>
      api.defineJob({ name: 'gate', partition: () => [{ key: 'g', payload: 0 }], handler });
    const first = api.createEngine({
      jobs: [noop, gate(() => new Promise(() => {}))],
      store: s.store,
      logger: false,
      maxConcurrentBatches: 1,
    });
    await first.start();
    await first.submit('gate', 0);
    const submits = [];
    for (let i = 0; i < recoverN; i++) submits.push(first.submit('noop', i));
    await Promise.all(submits);
    await first.stop();
    const second = api.createEngine({
      jobs: [noop, gate((n) => n)],
      store: api.sqliteStore({ path: s.path }),
      logger: false,
      maxConcurrentBatches: 4,
    });
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    await second.start();
    const startMs = performance.now() - t0;
    const queued = second.metrics().queued;
    gc();
    const heap = process.memoryUsage().heapUsed - heap0;
    const all = await second.list({ status: ['QUEUED', 'PROCESSING'], limit: 100_000 });
    for (const b of all) await second.wait(b.id);
    const totalMs = performance.now() - t0;
    const left = await second.list({ status: ['QUEUED', 'PROCESSING', 'FINALIZING'], limit: 10 });
    await second.stop();
    await s.cleanup();
    recovery.push({
      batches: recoverN,
      queued_after_start: queued,
      start_s: startMs / 1000,
      heap_per_queued_kb: queued > 0 ? heap / queued / 1024 : undefined,
      all_done_s: totalMs / 1000,
      unfinished_after: left.length,
    });
  }

  printTable(
    'many: one-partition batches (inline no-op, maxConcurrentBatches 4)',
    [
      'store',
      'mode',
      'batches',
      'seconds',
      'per_s',
      'queued_at_end',
      'heap_per_queued_kb',
      'rss_mb',
      'fifths_s',
      'last_vs_first',
    ],
    rows,
  );
  if (recovery.length > 0)
    printTable('many: recovery of a QUEUED backlog (SQLite)', Object.keys(recovery[0]), recovery);

  const sq = (mode, n) => rows.find((r) => r.store === 'sqlite' && r.mode === mode && r.batches === n);
  const budgets = [];
  const seq = sq('sequential', 20_000);
  const back = sq('backlog', 20_000);
  if (seq) budgets.push(budget('SQLite sequential, 20,000 (batches/s)', seq.per_s, '>=', 5000, 10_000));
  if (back) budgets.push(budget('SQLite backlog, 20,000 (batches/s)', back.per_s, '>=', 5000, 10_000));
  if (back)
    budgets.push(budget('last fifth / first fifth of the 20,000 backlog', back.last_vs_first, '<=', 1.5));
  const big = sq('backlog', 100_000);
  if (big?.heap_per_queued_kb !== undefined)
    budgets.push(budget('heap per QUEUED batch (KB, 100,000 backlog)', big.heap_per_queued_kb, '<=', 4));
  if (big) budgets.push(budget('RSS with a 100,000 backlog (MB)', big.rss_mb, '<=', 400));
  return { rows, recovery, budgets: printBudgets(budgets) };
}
