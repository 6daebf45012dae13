// Bench 4, latency: many small batches of an inline handler job. For each batch: the time from
// the last partition's finish (the handler records performance.now() just before returning) to the
// final summary reaching a subscriber (finalization), and from the submit call to the first
// partition's start. Sequential (one batch at a time) and burst (all submitted at once).
import { performance } from 'node:perf_hooks';
import {
  budget,
  envInt,
  envList,
  partita,
  percentile,
  printBudgets,
  printTable,
  round,
} from './lib/common.mjs';
import { openStore, partitionsOf } from './lib/engine.mjs';

export const description = 'small batches: last outcome → final state, submit → first partition start';

const FINAL = new Set(['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED']);

export default async function latency() {
  const batches = envInt('BENCH_LATENCY_BATCHES', 200);
  const size = envInt('BENCH_LATENCY_SIZE', 10);
  const stores = envList('BENCH_LATENCY_STORES', ['sqlite', 'memory']);
  const modes = ['sequential', 'burst'];
  const rows = [];
  const data = [];
  for (const kind of stores) {
    for (const mode of modes) {
      const m = await measure({ kind, mode, batches, size });
      const row = {
        store: kind,
        mode: mode === 'burst' ? `burst (${batches} at once, maxConcurrentBatches 4)` : 'sequential',
        batches,
        'final p50 ms': percentile(m.finalization, 50),
        'final p90 ms': percentile(m.finalization, 90),
        'final p99 ms': percentile(m.finalization, 99),
        'final max ms': Math.max(...m.finalization),
        'first start p50 ms': percentile(m.firstStart, 50),
        'first start p99 ms': percentile(m.firstStart, 99),
        'submit→final p50 ms': percentile(m.total, 50),
      };
      rows.push(row);
      data.push({
        store: kind,
        mode,
        ...Object.fromEntries(
          Object.entries(row)
            .filter(([, v]) => typeof v === 'number')
            .map(([k, v]) => [k, round(v)]),
        ),
      });
    }
  }
  printTable(
    `latency: ${batches} batches of ${size} partitions, inline no-op handler`,
    [
      'store',
      'mode',
      'batches',
      'final p50 ms',
      'final p90 ms',
      'final p99 ms',
      'final max ms',
      'first start p50 ms',
      'first start p99 ms',
      'submit→final p50 ms',
    ],
    rows,
  );
  // Finalization of one larger batch as a function of the job's concurrency (number of lanes).
  const wide = envList('BENCH_LATENCY_WIDE', ['16', '256', '1024']).map(Number);
  const wideN = envInt('BENCH_LATENCY_WIDE_N', 2000);
  const wideRows = [];
  for (const c of wide) {
    const n = Math.max(wideN, 2 * c);
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await finalizeOne({ concurrency: c, n }));
    wideRows.push({
      concurrency: c,
      partitions: n,
      'final ms (median of 3)': percentile(
        runs.map((r) => r.finalization),
        50,
      ),
      'submit→final ms': percentile(
        runs.map((r) => r.total),
        50,
      ),
    });
  }
  printTable(
    'latency: one batch, last outcome → final state by concurrency (SQLite, inline no-op handler)',
    ['concurrency', 'partitions', 'final ms (median of 3)', 'submit→final ms'],
    wideRows,
  );
  const budgets = printBudgets([
    ...data
      .filter((d) => d.mode === 'sequential')
      .flatMap((d) => [
        budget(`finalization p50 ms (${d.store}, sequential)`, d['final p50 ms'], '<', 5),
        budget(`finalization p99 ms (${d.store}, sequential)`, d['final p99 ms'], '<', 5),
      ]),
    ...wideRows.map((r) =>
      budget(
        `finalization ms, one batch at concurrency ${r.concurrency}`,
        r['final ms (median of 3)'],
        '<',
        5,
      ),
    ),
  ]);
  return {
    sizes: { batches, size, stores, wide, wideN },
    results: data,
    byConcurrency: wideRows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)]))),
    budgets,
  };
}

/** One batch of `n` partitions at `concurrency`: last handler return → final summary. */
async function finalizeOne({ concurrency, n }) {
  const { createEngine, defineJob } = await partita();
  let lastEnd = 0;
  const job = defineJob({
    name: 'wide',
    partition: partitionsOf,
    handler: async () => {
      lastEnd = performance.now();
      return { ok: true };
    },
    concurrency,
  });
  const opened = await openStore('sqlite');
  const engine = createEngine({ jobs: [job], store: opened.store, logger: false });
  await engine.start();
  try {
    let finalAt;
    const id = `wide-${concurrency}`;
    engine.subscribe(id, (s) => {
      if (FINAL.has(s.status)) finalAt ??= performance.now();
    });
    const t0 = performance.now();
    await engine.submit('wide', { n }, { id });
    await engine.wait(id);
    return { finalization: finalAt - lastEnd, total: finalAt - t0 };
  } finally {
    await engine.stop();
    await opened.cleanup();
  }
}

async function measure({ kind, mode, batches, size }) {
  const { createEngine, defineJob } = await partita();
  const stats = new Map();
  const statOf = (id) => {
    let s = stats.get(id);
    if (!s) {
      s = { submitAt: 0, firstStart: undefined, lastEnd: 0, finalAt: undefined };
      stats.set(id, s);
    }
    return s;
  };
  const job = defineJob({
    name: 'tiny',
    partition: partitionsOf,
    handler: async (_payload, ctx) => {
      const s = statOf(ctx.batchId);
      s.firstStart ??= performance.now();
      s.lastEnd = performance.now();
      return { ok: true };
    },
    concurrency: size,
  });
  const opened = await openStore(kind);
  const engine = createEngine({ jobs: [job], store: opened.store, logger: false });
  await engine.start();
  const ids = Array.from({ length: batches }, (_, i) => `lat-${mode}-${i}`);
  const finals = [];
  try {
    // Warm up the code paths once.
    await engine.wait((await engine.submit('tiny', { n: size }, { id: `warm-${mode}` })).id);
    for (const id of ids) {
      const s = statOf(id);
      finals.push(
        new Promise((resolve) => {
          const off = engine.subscribe(id, (summary) => {
            if (FINAL.has(summary.status) && s.finalAt === undefined) {
              s.finalAt = performance.now();
              off();
              resolve();
            }
          });
        }),
      );
    }
    if (mode === 'sequential') {
      for (const id of ids) {
        statOf(id).submitAt = performance.now();
        await engine.submit('tiny', { n: size }, { id });
        await engine.wait(id);
      }
    } else {
      await Promise.all(
        ids.map((id) => {
          statOf(id).submitAt = performance.now();
          return engine.submit('tiny', { n: size }, { id });
        }),
      );
      await Promise.all(ids.map((id) => engine.wait(id)));
    }
    await Promise.all(finals);
  } finally {
    await engine.stop();
    await opened.cleanup();
  }
  const all = ids.map((id) => stats.get(id));
  return {
    finalization: all.map((s) => s.finalAt - s.lastEnd),
    firstStart: all.map((s) => s.firstStart - s.submitAt),
    total: all.map((s) => s.finalAt - s.submitAt),
  };
}
