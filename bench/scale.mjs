// Bench 3, scale: one batch of 1,000,000 no-op partitions on SQLite, in a child process so its
// peak RSS is the engine's own. Memory is sampled every 100 ms; RSS at 25/50/75/100 % shows that it
// does not grow with the number of settled partitions.

import { runChild } from './lib/child.mjs';
import { budget, envInt, log, printBudgets, printTable, round, tempDir } from './lib/common.mjs';

export const description = '1,000,000 partitions on SQLite: peak RSS, RSS over progress, partitions/s';

const MB = 1024 * 1024;

export default async function scale() {
  const n = envInt('BENCH_SCALE_N', 1_000_000);
  const threads = envInt('BENCH_THREADS', 2);
  const concurrency = envInt('BENCH_SCALE_CONCURRENCY', 256);
  const tmp = tempDir();
  let result;
  try {
    const child = await runChild('scale-child.mjs', {
      SCALE_N: String(n),
      SCALE_DB: `${tmp.dir}/scale.db`,
      SCALE_THREADS: String(threads),
      SCALE_CONCURRENCY: String(concurrency),
      SCALE_WORKER_YOUNG_MB: process.env.BENCH_SCALE_WORKER_YOUNG_MB ?? '',
    });
    result = child.messages.at(-1);
    if (!result || child.code !== 0)
      throw new Error(`scale child exited with ${child.code ?? child.signal} and no result`);
    if (!result.ok)
      throw new Error(`scale batch ended ${result.status} with ${result.succeeded}/${n} succeeded`);
  } finally {
    tmp.remove();
  }
  const { samples } = result;
  const peak = (phase, key) =>
    Math.max(...samples.filter((s) => !phase || s.phase === phase).map((s) => s[key]));
  const at = [0.25, 0.5, 0.75].map((p) => ({
    p,
    s: samples.find((s) => s.phase === 'process' && s.progress >= p),
  }));
  at.push({ p: 1, s: result.final });
  const atRows = at.map(({ p, s }) => ({
    progress: `${p * 100} %`,
    't s': s ? s.t / 1000 : undefined,
    'rss MB': s ? s.rss / MB : undefined,
    'heapUsed MB': s ? s.heapUsed / MB : undefined,
    'external MB': s ? s.external / MB : undefined,
  }));
  const rate = (n / result.processMs) * 1000;
  printTable(
    `scale: ${n.toLocaleString('en-US')} no-op partitions, SQLite, concurrency ${concurrency}, ${threads} threads (child process)`,
    ['phase', 's', 'partitions/s', 'peak rss MB', 'peak heapUsed MB'],
    [
      {
        phase: 'submit (store every partition)',
        s: result.submitMs / 1000,
        'partitions/s': (n / result.submitMs) * 1000,
        'peak rss MB': peak('submit', 'rss') / MB,
        'peak heapUsed MB': peak('submit', 'heapUsed') / MB,
      },
      {
        phase: 'process (submitted → final)',
        s: result.processMs / 1000,
        'partitions/s': rate,
        'peak rss MB': peak('process', 'rss') / MB,
        'peak heapUsed MB': peak('process', 'heapUsed') / MB,
      },
      {
        phase: 'whole run',
        s: result.totalMs / 1000,
        'partitions/s': (n / result.totalMs) * 1000,
        'peak rss MB': peak(undefined, 'rss') / MB,
        'peak heapUsed MB': peak(undefined, 'heapUsed') / MB,
      },
    ],
  );
  printTable(
    'scale: memory by progress (first 100 ms sample at or past each mark)',
    ['progress', 't s', 'rss MB', 'heapUsed MB', 'external MB'],
    atRows,
  );
  const maxRssMb = result.maxRssBytes / MB;
  log(`scale: getrusage maxRSS ${round(maxRssMb)} MB; sampled peak ${round(peak(undefined, 'rss') / MB)} MB`);
  const budgets = printBudgets([budget('peak RSS MB (getrusage maxRSS, whole child)', maxRssMb, '<', 250)]);
  // A coarse timeline for the JSON line: about 40 points.
  const step = Math.max(1, Math.floor(samples.length / 40));
  return {
    sizes: { n, threads, concurrency },
    submitMs: round(result.submitMs),
    processMs: round(result.processMs),
    partitionsPerSecond: round(rate),
    maxRssMb: round(maxRssMb),
    peakSampledRssMb: round(peak(undefined, 'rss') / MB),
    peakHeapUsedMb: round(peak(undefined, 'heapUsed') / MB),
    byProgress: atRows,
    timeline: samples
      .filter((_, i) => i % step === 0)
      .map((s) => ({
        t: s.t,
        phase: s.phase,
        progress: round(s.progress),
        rssMb: round(s.rss / MB),
        heapMb: round(s.heapUsed / MB),
      })),
    budgets,
  };
}
