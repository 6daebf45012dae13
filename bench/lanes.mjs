// Bench 7, lanes: what a batch's lanes cost to start and to finish, by their number.
//
// 1. The batch machine alone (its effects provided as no-ops, so only XState and the machines are
//    timed): `ADMIT` → every lane spawned (spawn), and the last lane's `WORK.DONE` → the batch
//    actor done (finalization: the last outcome counted, FINALIZING, the engine's FINALIZED answer
//    a microtask later, the final state and every lane stopped). One batch of `lanes` partitions, one per lane.
// 2. The engine (memory and SQLite stores, inline no-op handler): one batch of 2 × lanes partitions at
//    `concurrency: lanes`; the first summary that counts every partition → the first final summary,
//    both as a subscriber sees them (finalization: the finalizer, the final state, the lanes
//    stopped and the final state made durable). `handler→final` starts at the last handler's return
//    instead, as the latency bench does: with many lanes it also holds the outcomes still queued
//    behind the last one to return.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { fromPromise } from 'xstate';
import {
  budget,
  DIST_DIR,
  envInt,
  envList,
  partita,
  percentile,
  printBudgets,
  printTable,
  round,
} from './lib/common.mjs';
import { openStore, partitionsOf } from './lib/engine.mjs';

export const description =
  'lanes: spawn and finalization by lane count (batch machine alone, and the engine)';

const FINAL = new Set(['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED']);

export default async function lanes() {
  const counts = envList('BENCH_LANES', ['16', '256', '1024']).map(Number);
  const machineRuns = envInt('BENCH_LANES_RUNS', 40);
  const engineRuns = envInt('BENCH_LANES_ENGINE_RUNS', 20);
  const stores = envList('BENCH_LANES_STORES', ['memory', 'sqlite']);

  const machineRows = [];
  for (const n of counts) {
    const runs = [];
    for (let i = 0; i < machineRuns + 3; i++) runs.push(await machineRun(n));
    const timed = runs.slice(3); // the first runs warm the code up
    const spawn = timed.map((r) => r.spawn);
    const final = timed.map((r) => r.final);
    machineRows.push({
      lanes: n,
      runs: timed.length,
      'spawn p50 ms': percentile(spawn, 50),
      'spawn p99 ms': percentile(spawn, 99),
      'spawn µs/lane': (percentile(spawn, 50) * 1000) / n,
      'final p50 ms': percentile(final, 50),
      'final p99 ms': percentile(final, 99),
      'final max ms': Math.max(...final),
    });
  }
  printTable(
    'lanes: batch machine alone (no-op effects): ADMIT → lanes spawned; last WORK.DONE → final state',
    [
      'lanes',
      'runs',
      'spawn p50 ms',
      'spawn p99 ms',
      'spawn µs/lane',
      'final p50 ms',
      'final p99 ms',
      'final max ms',
    ],
    machineRows,
  );

  const engineRows = [];
  for (const storeKind of stores) {
    for (const n of counts) {
      const m = await engineRuns_(n, engineRuns, storeKind);
      engineRows.push({
        store: storeKind,
        lanes: n,
        partitions: 2 * n,
        runs: m.final.length,
        'final p50 ms': percentile(m.final, 50),
        'final p99 ms': percentile(m.final, 99),
        'final max ms': Math.max(...m.final),
        'handler→final p50 ms': percentile(m.fromHandler, 50),
        'submit→final p50 ms': percentile(m.total, 50),
      });
    }
  }
  printTable(
    'lanes: engine (inline no-op handler): last outcome counted → final summary',
    [
      'store',
      'lanes',
      'partitions',
      'runs',
      'final p50 ms',
      'final p99 ms',
      'final max ms',
      'handler→final p50 ms',
      'submit→final p50 ms',
    ],
    engineRows,
  );

  const budgets = printBudgets([
    ...engineRows.map((r) =>
      budget(`finalization p99 ms, engine (${r.store}), ${r.lanes} lanes`, r['final p99 ms'], '<', 5),
    ),
    ...machineRows.map((r) =>
      budget(`finalization p99 ms, machine, ${r.lanes} lanes`, r['final p99 ms'], '<', 5),
    ),
  ]);
  const rounded = (rows) =>
    rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)])));
  return {
    sizes: { counts, machineRuns, engineRuns, stores },
    machine: rounded(machineRows),
    engine: rounded(engineRows),
    budgets,
  };
}

let machines;
async function loadMachines() {
  if (machines) return machines;
  const url = (p) => pathToFileURL(`${DIST_DIR}/${p}`).href;
  const { batchMachine } = await import(url('machines/batch.js'));
  const { partitionMachine } = await import(url('machines/partition.js'));
  const { createActor } = await import('xstate');
  const lane = partitionMachine.provide({ actions: { startWork: () => {}, abortWork: () => {} } });
  machines = { batchMachine, lane, createActor };
  return machines;
}

/** One batch of `n` partitions on `n` lanes through the batch machine, effects as no-ops. */
async function machineRun(n) {
  const { batchMachine, lane, createActor } = await loadMachines();
  const dispatched = [];
  const machine = batchMachine.provide({
    // `finalize` for builds before FINALIZING made no actor (PARTITA_DIST pointing at one);
    // `startFinalize` answers as the engine does when there is nothing to finalize.
    actors: { lane, finalize: fromPromise(async () => ({ output: undefined })) },
    actions: {
      startFinalize: ({ self }) => queueMicrotask(() => self.send({ type: 'FINALIZED', output: undefined })),
      dispatchPartition: (_, p) => dispatched.push(p),
      loadPartitions: () => {},
      journalOutcomes: () => {},
    },
  });
  const actor = createActor(machine, {
    input: {
      batchId: 'b',
      job: 'j',
      total: n,
      concurrency: n,
      maxAttempts: 1,
      backoffMs: 0,
      maxBackoffMs: 0,
    },
  });
  const done = new Promise((resolve) => actor.subscribe({ complete: () => resolve(performance.now()) }));
  actor.start();
  let t = performance.now();
  actor.send({ type: 'ADMIT', at: new Date().toISOString() });
  const spawn = performance.now() - t;
  actor.send({ type: 'PARTITIONS.LOADED', loaded: n });
  if (dispatched.length !== n) throw new Error(`dispatched ${dispatched.length} of ${n}`);
  const refs = dispatched.map((p) => actor.system.get(`lane-${p.lane}`));
  for (const [i, p] of dispatched.entries())
    refs[i].send({ type: 'RUN', index: p.index, key: `p${p.index}`, attempt: p.attempt, redelivered: false });
  const doneEvent = (p) => ({
    type: 'WORK.DONE',
    index: p.index,
    attempt: p.attempt,
    result: null,
    durationMs: 0,
  });
  for (let i = 0; i < n - 1; i++) refs[i].send(doneEvent(dispatched[i]));
  t = performance.now();
  refs[n - 1].send(doneEvent(dispatched[n - 1]));
  const final = (await done) - t;
  const s = actor.getSnapshot();
  if (s.value !== 'completed' || s.context.succeeded !== n) throw new Error(`ended ${s.value}`);
  return { spawn, final };
}

/** `runs` batches of 2 × n partitions at concurrency n, one after the other, on one engine. */
async function engineRuns_(n, runs, storeKind) {
  const { createEngine, defineJob } = await partita();
  let lastEnd = 0;
  const job = defineJob({
    name: 'lanes',
    partition: partitionsOf,
    handler: async () => {
      lastEnd = performance.now();
      return { ok: true };
    },
    concurrency: n,
  });
  const opened = await openStore(storeKind);
  const engine = createEngine({ jobs: [job], store: opened.store, logger: false });
  await engine.start();
  const final = [];
  const fromHandler = [];
  const total = [];
  try {
    for (let i = 0; i < runs + 1; i++) {
      let countedAt;
      let finalAt;
      const id = `lanes-${n}-${i}`;
      const unsubscribe = engine.subscribe(id, (s) => {
        if (s.succeeded + s.failed === 2 * n) countedAt ??= performance.now();
        if (FINAL.has(s.status)) finalAt ??= performance.now();
      });
      const t0 = performance.now();
      await engine.submit('lanes', { n: 2 * n }, { id });
      await engine.wait(id);
      unsubscribe();
      if (i === 0) continue; // warm-up
      final.push(finalAt - countedAt);
      fromHandler.push(finalAt - lastEnd);
      total.push(finalAt - t0);
    }
  } finally {
    await engine.stop();
    await opened.cleanup();
  }
  return { final, fromHandler, total };
}
