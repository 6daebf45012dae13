// What one pool task costs the engine's thread, without the engine: partita's WorkerPool (the main
// side of src/workers/pool.ts: a task per partition, each with its lane's AbortSignal, as a batch
// with `batching: false` runs them) against raw Piscina with the same tasks and the same number in
// flight, with and without an AbortSignal per task (Piscina's abortable-task path). Rounds
// alternate the three. No store, no actors: the floor under `batching: false` in the throughput
// bench (docs/benchmarks.md, "A queue of the pool's own: measured, not kept").
//
//   node bench/pool-floor.mjs      # POOL_FLOOR_N tasks per run (100000), POOL_FLOOR_ROUNDS (3),
//                                  # POOL_FLOOR_INFLIGHT (8: a worker job's lanes on 2 threads), BENCH_THREADS (2)
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { DIST_DIR, envInt, mainThreadCpuMs, printTable, workerPath } from './lib/common.mjs';
import { workerJob } from './lib/engine.mjs';

const n = envInt('POOL_FLOOR_N', 100_000);
const rounds = envInt('POOL_FLOOR_ROUNDS', 3);
const inflight = envInt('POOL_FLOOR_INFLIGHT', 8);
const threads = envInt('BENCH_THREADS', 2);
const { WorkerPool } = await import(`${DIST_DIR}/workers/pool.js`);

/** `inflight` slots, each running its tasks one after the other, `run(i, slot)` starting task i. */
async function timed(run) {
  for (let i = 0; i < 4 * threads; i++) await run(i, i % inflight); // threads up, module loaded
  const cpu0 = mainThreadCpuMs();
  const t0 = performance.now();
  await new Promise((resolve, reject) => {
    let next = 0;
    let done = 0;
    const launch = (slot) => {
      const i = next++;
      run(i, slot).then(() => {
        done++;
        if (next < n) launch(slot);
        else if (done === n) resolve();
      }, reject);
    };
    for (let s = 0; s < Math.min(inflight, n); s++) launch(s);
  });
  const ms = performance.now() - t0;
  const cpu = cpu0 === undefined ? undefined : mainThreadCpuMs() - cpu0;
  return { perS: Math.round((n / ms) * 1000), cpuUs: cpu === undefined ? undefined : (cpu * 1000) / n };
}

const slots = () => Array.from({ length: inflight }, () => new AbortController());

const configs = {
  'raw Piscina': async () => {
    const pool = new Piscina({ filename: workerPath('noop.mjs'), maxThreads: threads, minThreads: threads });
    try {
      return await timed((i) => pool.run(i));
    } finally {
      await pool.destroy();
    }
  },
  'raw Piscina, a signal per task': async () => {
    const pool = new Piscina({ filename: workerPath('noop.mjs'), maxThreads: threads, minThreads: threads });
    const controllers = slots();
    try {
      return await timed((i, slot) => pool.run(i, { signal: controllers[slot].signal }));
    } finally {
      await pool.destroy();
    }
  },
  "partita's WorkerPool": async () => {
    const job = await workerJob('noop', 'noop.mjs', inflight);
    const pool = new WorkerPool([job], { maxThreads: threads });
    const controllers = slots();
    const task = (i) => ({
      taskId: pool.taskId(),
      job: 'noop',
      batchId: 'b',
      key: `k${i}`,
      attempt: 1,
      redelivered: false,
      payload: i,
    });
    try {
      return await timed((i, slot) => pool.run(task(i), controllers[slot].signal));
    } finally {
      await pool.destroy();
    }
  },
};

const rows = [];
for (let round = 1; round <= rounds; round++) {
  for (const [config, measure] of Object.entries(configs)) {
    const r = await measure();
    rows.push({
      round,
      config,
      'tasks/s': r.perS.toLocaleString('en-US'),
      'main CPU µs/task': r.cpuUs === undefined ? '' : r.cpuUs.toFixed(1),
    });
  }
}
printTable(
  `pool floor: ${n.toLocaleString('en-US')} no-op tasks, ${inflight} in flight, ${threads} threads (${DIST_DIR})`,
  ['round', 'config', 'tasks/s', 'main CPU µs/task'],
  rows,
);
