// Bench 10, redrive: what `engine.retryFailed` costs per partition it runs again, next to the
// batch's first run. One batch of `n` no-op worker partitions (batching 'auto', concurrency 256:
// at most 4 lanes a thread, 8 on 2 threads) with a pattern of failures: every other partition,
// every tenth, or the first half.
// The handler is fixed, then `retryFailed` runs the failed ones again; the retried partitions lie
// between succeeded ones, and dispatch steps over those. Raw Piscina, one task per item, runs
// before each store as the reference.
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { envInt, envList, log, partita, printTable, round, tempDir, workerUrl } from './lib/common.mjs';
import { openStore, poolTaskCounter, timeRawPiscina } from './lib/engine.mjs';

export const description = 'redrive: retryFailed of a batch with failures spread through it, by store';

const PATTERNS = {
  'every other': (i) => i % 2 === 0,
  'every tenth': (i) => i % 10 === 0,
  'first half': (i, n) => i < n / 2,
};

export default async function redrive() {
  const n = envInt('BENCH_REDRIVE_N', 100_000);
  const threads = envInt('BENCH_THREADS', 2);
  const stores = envList('BENCH_REDRIVE_STORES', ['sqlite']);
  const patterns = envList('BENCH_REDRIVE_PATTERNS', Object.keys(PATTERNS));
  const { createEngine, defineJob } = await partita();
  const flag = tempDir('partita-redrive-');
  process.env.PARTITA_BENCH_FIXED = `${flag.dir}/fixed`;
  const rows = [];
  try {
    for (const kind of stores) {
      const raw = await timeRawPiscina({ file: 'noop.mjs', threads, n, window: 1000 });
      rows.push({
        store: 'raw Piscina',
        pattern: 'one task per item',
        'first run /s': (n / raw.totalMs) * 1000,
      });
      for (const name of patterns) {
        const fails = PATTERNS[name];
        if (!fails) throw new Error(`unknown pattern "${name}"; known: ${Object.keys(PATTERNS).join(', ')}`);
        const opened = await openStore(kind, `redrive_${name.replaceAll(' ', '_')}`);
        if (opened.skip) {
          log(`redrive: ${kind} skipped: ${opened.skip}`);
          break;
        }
        try {
          rows.push({ store: kind, pattern: name, ...(await run(n, threads, fails, opened.store)) });
        } finally {
          await opened.cleanup();
        }
      }
    }
  } finally {
    flag.remove();
  }
  printTable(
    `redrive: ${n.toLocaleString('en-US')} no-op worker partitions, ${threads} threads, concurrency 256 (at most 4 lanes a thread), batching 'auto'`,
    [
      'store',
      'pattern',
      'failed',
      'first run /s',
      'retryFailed ms',
      'retried /s',
      'retried / first',
      'mean group, first',
      'mean group, retry',
    ],
    rows,
  );
  return { sizes: { n, threads, stores, patterns }, rows: rows.map(rounded) };

  async function run(n, threads, fails, store) {
    const job = defineJob({
      name: 'redrive',
      partition: function* ({ n }) {
        for (let i = 0; i < n; i++) yield { key: `p${i}`, payload: fails(i, n) ? { i, fail: true } : { i } };
      },
      worker: workerUrl('fail-until-fixed.mjs'),
      concurrency: 256,
    });
    const engine = createEngine({ jobs: [job], store, workers: { maxThreads: threads }, logger: false });
    const counter = poolTaskCounter();
    await engine.start();
    try {
      const warm = await engine.submit('redrive', { n: 4 * threads });
      await engine.wait(warm.id);
      counter.start();
      const t0 = performance.now();
      const { id } = await engine.submit('redrive', { n });
      const first = await engine.wait(id);
      const t1 = performance.now();
      const firstGroups = counter.stop();
      if (first.failed === 0) throw new Error('the first run failed nothing');
      writeFileSync(process.env.PARTITA_BENCH_FIXED, '');
      counter.start();
      const t2 = performance.now();
      await engine.retryFailed(id);
      const t3 = performance.now();
      const second = await engine.wait(id);
      const t4 = performance.now();
      const retryGroups = counter.stop();
      if (second.status !== 'COMPLETED' || second.succeeded !== n)
        throw new Error(`the retry ended ${second.status} with ${second.succeeded}/${n} succeeded`);
      return {
        failed: first.failed,
        'first run /s': (n / (t1 - t0)) * 1000,
        'retryFailed ms': t3 - t2,
        'retried /s': (first.failed / (t4 - t2)) * 1000,
        'retried / first': ((first.failed / (t4 - t2)) * 1000) / ((n / (t1 - t0)) * 1000),
        'mean group, first': firstGroups.items / firstGroups.tasks,
        'mean group, retry': retryGroups.items / retryGroups.tasks,
      };
    } finally {
      await engine.stop();
      // The next batch starts failing again.
      await import('node:fs').then((fs) => fs.rmSync(process.env.PARTITA_BENCH_FIXED, { force: true }));
    }
  }
}

const rounded = (r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)]));
