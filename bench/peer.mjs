// Bench 2, peer: a BullMQ flow (one parent, N no-op children) against one partita batch of N
// partitions on SQLite, time from submit to the final state. Twice: BullMQ's in-process processor
// against a partita inline `handler` job, and BullMQ's sandboxed processor on worker threads
// against a partita `worker` job; each partita job with item batching auto and off
// (`BENCH_PEER_BATCHING`), alternated with BullMQ in one process run.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import {
  budget,
  envInt,
  envList,
  log,
  median,
  partita,
  printBudgets,
  printTable,
  REDIS_HOST,
  REDIS_PORT,
  redisReachable,
  round,
  workerPath,
} from './lib/common.mjs';
import { openStore, parseBatching, partitionsOf, poolTaskCounter, workerJob } from './lib/engine.mjs';

export const description = 'BullMQ flow of N children vs one partita batch of N partitions (SQLite)';

export default async function peer() {
  const n = envInt('BENCH_PEER_N', 10_000);
  const rounds = Math.max(1, envInt('BENCH_PEER_ROUNDS', 2));
  const concurrency = envInt('BENCH_PEER_CONCURRENCY', 50);
  const threads = envInt('BENCH_THREADS', 2);
  const batchings = envList('BENCH_PEER_BATCHING', ['auto', 'off']).map(parseBatching);
  const warmupN = Math.min(100, n);
  const redis = await redisReachable();
  if (!redis.ok) {
    log(`peer: skipped: Redis not reachable: ${redis.reason}`);
    printTable('peer: skipped', ['reason'], [{ reason: `Redis not reachable: ${redis.reason}` }]);
    return { sizes: { n }, skipped: { redis: redis.reason } };
  }
  const bullmq = await import('bullmq');
  // BullMQ pipes every sandbox thread's stdout/stderr into ours: one listener set per thread.
  process.stdout.setMaxListeners(concurrency + 20);
  process.stderr.setMaxListeners(concurrency + 20);
  const bullVersion = JSON.parse(
    readFileSync(new URL('../node_modules/bullmq/package.json', import.meta.url), 'utf8'),
  ).version;

  const pairs = [
    { name: 'in-process', bull: { sandboxed: false }, partita: 'handler' },
    { name: 'worker threads', bull: { sandboxed: true }, partita: 'worker' },
  ];
  // Per round and pair: BullMQ, then partita with each batching setting (the next round the other
  // way round), so every partita run has a BullMQ run of the same round close by.
  const sides = ['bullmq', ...batchings.map((b) => b.label)];
  const runs = [];
  for (let round = 1; round <= rounds; round++) {
    for (const pair of pairs) {
      for (const side of round % 2 === 1 ? sides : [...sides].reverse()) {
        const t =
          side === 'bullmq'
            ? await timeBullFlow(bullmq, {
                n,
                warmupN,
                concurrency,
                sandboxed: pair.bull.sandboxed,
                tag: `${round}-${pair.partita}`,
              })
            : await timePartita({
                n,
                warmupN,
                concurrency,
                threads,
                kind: pair.partita,
                batching: batchings.find((b) => b.label === side).option,
              });
        runs.push({ round, pair: pair.name, side, ...t, rate: (n / t.totalMs) * 1000 });
        log(
          `peer: round ${round} ${pair.name} ${side === 'bullmq' ? side : `partita batching ${side}`}: ` +
            `${Math.round(t.totalMs)} ms (${Math.round((n / t.totalMs) * 1000)}/s` +
            `${t.groupMean === undefined ? '' : `, mean group ${t.groupMean.toFixed(1)}`})`,
        );
      }
    }
  }

  const label = (r) =>
    r.side === 'bullmq'
      ? `BullMQ ${bullVersion ?? '5'} ${r.pair === 'in-process' ? 'in-process processor' : 'sandboxed, useWorkerThreads'}`
      : `partita sqlite ${r.pair === 'in-process' ? 'inline handler' : `worker job (${threads} threads)`}, batching ${r.side}`;
  printTable(
    `peer: ${n.toLocaleString('en-US')} no-op children/partitions, concurrency ${concurrency} (every run)`,
    ['round', 'runner', 'mean group', 'add/submit s', 'total s', 'per s'],
    runs.map((r) => ({
      round: r.round,
      runner: label(r),
      'mean group': r.groupMean,
      'add/submit s': r.submitMs / 1000,
      'total s': r.totalMs / 1000,
      'per s': r.rate,
    })),
  );
  const summary = pairs.flatMap((pair) => {
    const bull = runs.filter((r) => r.pair === pair.name && r.side === 'bullmq').map((r) => r.totalMs);
    return batchings.map((b) => {
      const rs = runs.filter((r) => r.pair === pair.name && r.side === b.label);
      const ours = rs.map((r) => r.totalMs);
      const means = rs.map((r) => r.groupMean).filter((x) => x !== undefined);
      return {
        pair: pair.name,
        batching: b.label,
        mean_group: means.length ? round(median(means)) : undefined,
        bullmq_s: round(median(bull) / 1000),
        partita_s: round(median(ours) / 1000),
        bullmq_per_s: round((n / median(bull)) * 1000),
        partita_per_s: round((n / median(ours)) * 1000),
        ratio: round(median(bull) / median(ours)),
      };
    });
  });
  printTable(
    'peer: summary (median; ratio = BullMQ time / partita time, > 1 means partita is faster)',
    ['pair', 'batching', 'mean_group', 'bullmq_s', 'partita_s', 'bullmq_per_s', 'partita_per_s', 'ratio'],
    summary,
  );
  // The budget (DESIGN.md section 12) holds for the default, batching 'auto'; off is reported only.
  const budgets = printBudgets(
    pairs.map((pair) => {
      const s = summary.find((x) => x.pair === pair.name && x.batching === 'auto');
      const name = `partita batching auto / BullMQ (${pair.name})`;
      return s
        ? budget(name, s.ratio, '>=', 10)
        : { name, skipped: 'auto not in BENCH_PEER_BATCHING', pass: true };
    }),
  );
  return {
    sizes: { n, rounds, concurrency, threads, batching: batchings.map((b) => b.label) },
    bullmq: bullVersion,
    summary,
    runs: runs.map((r) => ({
      round: r.round,
      pair: r.pair,
      side: r.side,
      groupMean: round(r.groupMean),
      submitMs: round(r.submitMs),
      totalMs: round(r.totalMs),
    })),
    budgets,
  };
}

/** One flow: a parent with `n` children on one queue; time from `add` to the parent's completion. */
async function timeBullFlow(bullmq, { n, warmupN, concurrency, sandboxed, tag }) {
  const { FlowProducer, Queue, Worker } = bullmq;
  const connection = { host: REDIS_HOST, port: REDIS_PORT, maxRetriesPerRequest: null };
  const queueName = `partita-bench-${process.pid}-${tag}`;
  const queue = new Queue(queueName, { connection });
  await queue.obliterate({ force: true });
  const flow = new FlowProducer({ connection });
  const processor = sandboxed ? workerPath('bullmq-noop.mjs') : async () => ({ ok: true });
  const worker = new Worker(queueName, processor, {
    connection,
    concurrency,
    ...(sandboxed ? { useWorkerThreads: true } : {}),
  });
  worker.on('error', (err) => log(`peer: BullMQ worker error: ${err.message}`));
  const parents = new Map();
  worker.on('completed', (job) => parents.get(job.id)?.());
  worker.on('failed', (job, err) => log(`peer: BullMQ job ${job?.id} failed: ${err.message}`));
  const runFlow = async (count, id) => {
    const done = new Promise((resolve) => parents.set(id, resolve));
    const t0 = performance.now();
    await flow.add({
      name: 'parent',
      queueName,
      opts: { jobId: id },
      children: Array.from({ length: count }, (_, i) => ({ name: 'child', queueName, data: { i } })),
    });
    const t1 = performance.now();
    await done;
    const t2 = performance.now();
    return { submitMs: t1 - t0, totalMs: t2 - t0 };
  };
  try {
    await worker.waitUntilReady();
    await runFlow(warmupN, `warmup-${tag}`);
    return await runFlow(n, `parent-${tag}`);
  } finally {
    await worker.close();
    await flow.close();
    await queue.obliterate({ force: true }).catch((err) => log(`peer: obliterate failed: ${err.message}`));
    await queue.close();
  }
}

/**
 * One partita batch on a fresh SQLite file; time from `submit` to the final (durable) summary.
 * `groupMean`: the mean partitions per pool task (worker jobs; an inline job's groups are not counted).
 */
async function timePartita({ n, warmupN, concurrency, threads, kind, batching }) {
  const { createEngine, defineJob } = await partita();
  const job =
    kind === 'handler'
      ? defineJob({
          name: 'noop',
          partition: partitionsOf,
          handler: async () => ({ ok: true }),
          concurrency,
          batching,
        })
      : await workerJob('noop', 'noop.mjs', concurrency, batching);
  const counter = poolTaskCounter();
  const opened = await openStore('sqlite');
  const engine = createEngine({
    jobs: [job],
    store: opened.store,
    workers: { maxThreads: threads },
    logger: false,
  });
  await engine.start();
  try {
    const w = await engine.submit('noop', { n: warmupN });
    await engine.wait(w.id);
    counter.start();
    const t0 = performance.now();
    const queued = await engine.submit('noop', { n });
    const t1 = performance.now();
    const final = await engine.wait(queued.id);
    const t2 = performance.now();
    const groups = counter.stop();
    if (final.status !== 'COMPLETED' || final.succeeded !== n)
      throw new Error(`partita batch ended ${final.status} ${final.succeeded}/${n}`);
    return {
      submitMs: t1 - t0,
      totalMs: t2 - t0,
      groupMean: groups.tasks > 0 ? groups.items / groups.tasks : undefined,
    };
  } finally {
    counter.stop();
    await engine.stop();
    await opened.cleanup();
  }
}
