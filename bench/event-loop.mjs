// How responsive the host process stays while a batch runs: event-loop delay (monitorEventLoopDelay)
// and how often a 10 ms setInterval fires, for raw Piscina, partita `worker` jobs and partita inline
// handlers that never wait. Not part of `bench/run.mjs`; run it on its own:
//
//   node bench/event-loop.mjs            # EVENT_LOOP_N (50000), BENCH_THREADS (2)
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { envInt, partita, printTable } from './lib/common.mjs';
import { openStore, partitionsOf, timeRawPiscina, workerJob } from './lib/engine.mjs';

const n = envInt('EVENT_LOOP_N', 50_000);
const threads = envInt('BENCH_THREADS', 2);
const { createEngine, defineJob } = await partita();

/** Run `fn` while watching the event loop. */
async function watch(label, fn) {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  clearInterval(timer);
  h.disable();
  return {
    run: label,
    s: ms / 1000,
    'delay p50 ms': h.percentile(50) / 1e6,
    'delay p99 ms': h.percentile(99) / 1e6,
    'delay max ms': h.max / 1e6,
    '10 ms timer fired': `${ticks} of ~${Math.round(ms / 10)}`,
  };
}

async function partitaBatch(job, kind) {
  const opened = await openStore(kind);
  const engine = createEngine({
    jobs: [job],
    store: opened.store,
    workers: { maxThreads: threads },
    logger: false,
  });
  await engine.start();
  try {
    const w = await engine.submit(job.name, { n: 4 * threads });
    await engine.wait(w.id);
    return await watch(
      `partita ${kind} ${job.workerUrl ? 'worker' : 'inline'} job c=${job.concurrency}`,
      async () => {
        const s = await engine.submit(job.name, { n });
        await engine.wait(s.id);
      },
    );
  } finally {
    await engine.stop();
    await opened.cleanup();
  }
}

const rows = [];
for (const window of [256, 1000]) {
  rows.push(
    await watch(`raw piscina window=${window}`, () =>
      timeRawPiscina({ file: 'noop.mjs', threads, n, window }),
    ),
  );
}
for (const c of [16, 256]) rows.push(await partitaBatch(await workerJob('noop', 'noop.mjs', c), 'sqlite'));
const inline = defineJob({
  name: 'inline',
  partition: partitionsOf,
  handler: async () => ({ ok: true }),
  concurrency: 16,
});
for (const kind of ['sqlite', 'memory']) rows.push(await partitaBatch(inline, kind));
printTable(
  `event loop of the host while ${n.toLocaleString('en-US')} no-op partitions run (${threads} threads)`,
  ['run', 's', 'delay p50 ms', 'delay p99 ms', 'delay max ms', '10 ms timer fired'],
  rows,
);
