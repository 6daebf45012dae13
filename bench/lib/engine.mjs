// Running partita batches and raw Piscina tasks the same way in every bench.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import {
  DIST_DIR,
  freshPgSchema,
  mainThreadCpuMs,
  partita,
  tempDir,
  workerPath,
  workerUrl,
} from './common.mjs';

/** Partitions `p0…p{n-1}`, streamed (a generator): the input itself holds no per-partition data. */
export function* partitionsOf({ n, ms }) {
  for (let i = 0; i < n; i++) yield { key: `p${i}`, payload: ms === undefined ? i : { ms } };
}

/** A `worker` job on one of bench/workers/; `batching` as the job option (absent: the default). */
export async function workerJob(name, file, concurrency, batching) {
  const { defineJob } = await partita();
  return defineJob({
    name,
    partition: partitionsOf,
    worker: workerUrl(file),
    concurrency,
    ...(batching === undefined ? {} : { batching }),
  });
}

/** partita's most partitions per group under `batching: 'auto'` (src/job.ts `AUTO_MAX_ITEMS`). */
export const AUTO_MAX_ITEMS = 64;

/**
 * A batching setting as the benches name it (`BENCH_BATCHING` and friends): `auto`, `off` (or
 * `false`), or a number `n` (or `max<n>`) for `{ maxItems: n }`. `size`: the group size a raw
 * Piscina run stands in with when partita's own groups are not known (auto: its largest).
 */
export function parseBatching(label) {
  const s = String(label).trim().toLowerCase();
  if (s === 'auto') return { label: 'auto', option: 'auto', size: AUTO_MAX_ITEMS };
  if (s === 'off' || s === 'false') return { label: 'off', option: false, size: 1 };
  const n = Number(s.replace(/^max/, ''));
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`a batching setting is auto, off or a group size, received ${JSON.stringify(label)}`);
  return n === 1
    ? { label: 'off', option: false, size: 1 }
    : { label: `max${n}`, option: { maxItems: n }, size: n };
}

let counting;
/**
 * The Piscina tasks partita posts, and how many partitions each carries (a group's `members`, else
 * one), counted by wrapping `Piscina.prototype.run` (the Piscina that partita's build resolves):
 * one call and one array push per task, so it stays on during timed runs. `start()` clears the
 * counts; `stop()` returns `{ tasks, items, sizes }` (`sizes`: each task's partitions, in posting
 * order) and stops counting. Raw Piscina runs are never counted (they run between stop and start).
 */
export function poolTaskCounter() {
  if (!counting) {
    counting = { on: false, sizes: [] };
    const state = counting;
    // partita imports `piscina` from its dist/; resolve it from there (the CJS build that the ESM
    // wrapper re-exports, so the same class), in case PARTITA_DIST has node_modules of its own.
    const { Piscina: Theirs } = createRequire(join(DIST_DIR, 'index.js'))('piscina');
    for (const P of new Set([Theirs, Piscina])) {
      const run = P.prototype.run;
      P.prototype.run = function countedRun(task, options) {
        if (state.on) state.sizes.push(task?.members?.length ?? 1);
        return run.call(this, task, options);
      };
    }
  }
  const state = counting;
  return {
    start() {
      state.sizes = [];
      state.on = true;
    },
    stop() {
      state.on = false;
      const sizes = state.sizes;
      state.sizes = [];
      let items = 0;
      for (const k of sizes) items += k;
      return { tasks: sizes.length, items, sizes };
    },
  };
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
  const counter = poolTaskCounter();
  const engine = createEngine({ jobs: [job], store, workers: { maxThreads: threads }, logger: false });
  await engine.start();
  try {
    if (warmupN > 0) {
      const w = await engine.submit(job.name, { n: warmupN, ms });
      await engine.wait(w.id);
    }
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = mainThreadCpuMs();
    counter.start();
    const t0 = performance.now();
    const queued = await engine.submit(job.name, { n, ms });
    const t1 = performance.now();
    const final = await engine.wait(queued.id);
    const t2 = performance.now();
    const groups = counter.stop();
    const elu = performance.eventLoopUtilization(elu0);
    const mainCpuMs = cpu0 === undefined ? undefined : mainThreadCpuMs() - cpu0;
    if (final.status !== 'COMPLETED' || final.succeeded !== n) {
      throw new Error(
        `batch ended ${final.status} with ${final.succeeded}/${n} succeeded: ${final.errorSummary ?? ''}`,
      );
    }
    return {
      submitMs: t1 - t0,
      processMs: t2 - t1,
      totalMs: t2 - t0,
      mainBusyMs: elu.active,
      mainCpuMs,
      // The pool tasks of the timed batch (none for an inline job): `items / tasks` is the mean group.
      groups: groups.tasks > 0 ? groups : undefined,
    };
  } finally {
    counter.stop();
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

/**
 * Raw Piscina running groups: one task per group that calls the no-op handler for each of its items
 * in turn and returns one result per item (bench/workers/noop-group.mjs), `sizes[g]` items in group
 * g (partita's own groups, as {@link poolTaskCounter} saw them, or a fixed size), `window` groups in
 * flight. `rate` and friends are per item, as for {@link timeRawPiscina}.
 */
export async function timeRawPiscinaGroups({ threads, sizes, window, warmupN = 4 * threads }) {
  const starts = new Array(sizes.length);
  let items = 0;
  for (let g = 0; g < sizes.length; g++) {
    starts[g] = items;
    items += sizes[g];
  }
  const task = (g) => {
    const k = g % sizes.length; // the warm-up may ask for more groups than there are
    const out = new Array(sizes[k]);
    for (let i = 0; i < out.length; i++) out[i] = starts[k] + i;
    return out;
  };
  const t = await timeRawPiscina({ file: 'noop-group.mjs', threads, n: sizes.length, window, task, warmupN });
  return { ...t, items, tasks: sizes.length };
}

/** `n` items in groups of `size` (the last one shorter). */
export function uniformGroups(n, size) {
  const sizes = [];
  for (let left = n; left > 0; left -= size) sizes.push(Math.min(size, left));
  return sizes;
}
