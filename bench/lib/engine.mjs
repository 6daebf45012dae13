// Running partita batches and raw Piscina tasks the same way in every bench.
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { freshPgSchema, mainThreadCpuMs, partita, tempDir, workerPath, workerUrl } from './common.mjs';

/** Partitions `p0…p{n-1}`, streamed (a generator): the input itself holds no per-partition data. */
export function* partitionsOf({ n, ms }) {
  for (let i = 0; i < n; i++) yield { key: `p${i}`, payload: ms === undefined ? i : { ms } };
}

/** A `worker` job on one of bench/workers/. */
export async function workerJob(name, file, concurrency) {
  const { defineJob } = await partita();
  return defineJob({ name, partition: partitionsOf, worker: workerUrl(file), concurrency });
}

/**
 * A store for one run, and its cleanup. `kind`: memory | sqlite | postgres. Resolves
 * `{ skip: reason }` when the store cannot be used here.
 */
export async function openStore(kind, tag) {
  const api = await partita();
  if (kind === 'memory') return { store: api.memoryStore(), cleanup: async () => {} };
  if (kind === 'sqlite') {
    const tmp = tempDir();
    return {
      store: api.sqliteStore({ path: `${tmp.dir}/bench.db` }),
      cleanup: async () => tmp.remove(),
      path: `${tmp.dir}/bench.db`,
    };
  }
  if (kind === 'postgres') {
    const pg = await freshPgSchema(tag);
    if (!pg.ok) return { skip: pg.reason };
    let store;
    try {
      store = api.postgresStore({ connectionString: pg.url, schema: pg.schema });
      await store.open();
      await store.close();
      // A second store on the same (now migrated) schema, as a fresh engine would get it.
      store = api.postgresStore({ connectionString: pg.url, schema: pg.schema });
    } catch (err) {
      await pg.drop().catch(() => {});
      return { skip: `postgresStore does not open: ${err.message}` };
    }
    return { store, cleanup: () => pg.drop() };
  }
  throw new Error(`unknown store kind "${kind}"`);
}

/**
 * One batch of `n` partitions through a fresh engine: start, warm up (threads up, code hot), then
 * time submit (the store writes every partition) and processing (submit resolved → final state
 * durable). `mainBusyMs` is the main thread's event-loop active time during the timed part.
 */
export async function timePartitaBatch({ job, store, threads, n, ms, warmupN = 4 * threads }) {
  const { createEngine } = await partita();
  const engine = createEngine({ jobs: [job], store, workers: { maxThreads: threads }, logger: false });
  await engine.start();
  try {
    if (warmupN > 0) {
      const w = await engine.submit(job.name, { n: warmupN, ms });
      await engine.wait(w.id);
    }
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = mainThreadCpuMs();
    const t0 = performance.now();
    const queued = await engine.submit(job.name, { n, ms });
    const t1 = performance.now();
    const final = await engine.wait(queued.id);
    const t2 = performance.now();
    const elu = performance.eventLoopUtilization(elu0);
    const mainCpuMs = cpu0 === undefined ? undefined : mainThreadCpuMs() - cpu0;
    if (final.status !== 'COMPLETED' || final.succeeded !== n) {
      throw new Error(
        `batch ended ${final.status} with ${final.succeeded}/${n} succeeded: ${final.errorSummary ?? ''}`,
      );
    }
    return { submitMs: t1 - t0, processMs: t2 - t1, totalMs: t2 - t0, mainBusyMs: elu.active, mainCpuMs };
  } finally {
    await engine.stop();
  }
}

/**
 * Raw Piscina: the same tasks on the same number of threads, `window` in flight at a time
 * (`window` ≥ n: all submitted at once). Fresh pool per run, warmed up like the engine.
 */
export async function timeRawPiscina({ file, threads, n, window, task = (i) => i, warmupN = 4 * threads }) {
  const pool = new Piscina({
    filename: workerPath(file),
    maxThreads: threads,
    minThreads: threads,
    idleTimeout: 30_000,
    concurrentTasksPerWorker: 1,
  });
  try {
    await Promise.all(Array.from({ length: warmupN }, (_, i) => pool.run(task(i))));
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = mainThreadCpuMs();
    const t0 = performance.now();
    if (window >= n) {
      await Promise.all(Array.from({ length: n }, (_, i) => pool.run(task(i))));
    } else {
      await new Promise((resolve, reject) => {
        let next = 0;
        let done = 0;
        const launch = () => {
          const i = next++;
          pool.run(task(i)).then(() => {
            done++;
            if (next < n) launch();
            else if (done === n) resolve();
          }, reject);
        };
        for (let k = 0; k < Math.min(window, n); k++) launch();
      });
    }
    const t1 = performance.now();
    const elu = performance.eventLoopUtilization(elu0);
    const mainCpuMs = cpu0 === undefined ? undefined : mainThreadCpuMs() - cpu0;
    return { totalMs: t1 - t0, processMs: t1 - t0, submitMs: 0, mainBusyMs: elu.active, mainCpuMs };
  } finally {
    await pool.destroy();
  }
}
