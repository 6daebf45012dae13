// Child process of the recovery bench.
//   RECOVERY_MODE=crash:  submit N no-op partitions on SQLite; when a subscriber sees progress ≥ 0.5
//                         it tells the parent, which SIGKILLs this process (nothing is flushed).
//   RECOVERY_MODE=resume: a fresh engine on the same file; times start() → processing again
//                         (settled count above what was durable) → final state, then checks counts.
import { performance } from 'node:perf_hooks';
import { partita } from '../lib/common.mjs';
import { workerJob } from '../lib/engine.mjs';

const mode = process.env.RECOVERY_MODE;
const n = Number(process.env.RECOVERY_N);
const path = process.env.RECOVERY_DB;
const threads = Number(process.env.RECOVERY_THREADS ?? 2);
const concurrency = Number(process.env.RECOVERY_CONCURRENCY ?? 256);
const FINAL = new Set(['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED']);

const { createEngine, sqliteStore } = await partita();
const job = await workerJob('noop', 'noop.mjs', concurrency);
const engine = createEngine({
  jobs: [job],
  store: sqliteStore({ path }),
  workers: { maxThreads: threads },
  logger: false,
});

if (mode === 'crash') {
  await engine.start();
  const t0 = performance.now();
  const queued = await engine.submit('noop', { n });
  process.send({ type: 'submitted', id: queued.id, submitMs: performance.now() - t0 });
  let told = false;
  engine.subscribe(queued.id, (s) => {
    if (!told && s.progress >= 0.5) {
      told = true;
      process.send({
        type: 'half',
        id: queued.id,
        progress: s.progress,
        settled: s.succeeded + s.failed,
        ms: performance.now() - t0,
      });
      // Keep working until the parent's SIGKILL lands, as a real host would.
    }
  });
  await engine.wait(queued.id);
  process.send({ type: 'finished-before-kill' });
  await engine.stop();
} else {
  const id = process.env.RECOVERY_ID;
  const durable = Number(process.env.RECOVERY_DURABLE);
  const seen = { first: undefined, processing: undefined, final: undefined };
  let firstSummary;
  let finalSummary;
  let resolveFinal;
  const finalSeen = new Promise((r) => {
    resolveFinal = r;
  });
  // A batch that stops changing is reported as stuck instead of hanging the bench.
  const stallMs = Number(process.env.BENCH_RECOVERY_STALL_MS ?? 20_000);
  let lastChange = performance.now();
  let lastSummary;
  const watchdog = setInterval(() => {
    if (performance.now() - lastChange > stallMs) {
      seen.stuck = true;
      resolveFinal();
    }
  }, 250);
  const t0 = performance.now();
  engine.subscribe(id, (s) => {
    const now = performance.now() - t0;
    lastChange = performance.now();
    lastSummary = s;
    if (seen.first === undefined) {
      seen.first = now;
      firstSummary = s;
    }
    if (seen.processing === undefined && s.succeeded + s.failed > durable) seen.processing = now;
    if (FINAL.has(s.status) && seen.final === undefined) {
      seen.final = now;
      finalSummary = s;
      resolveFinal();
    }
  });
  await engine.start();
  const started = performance.now() - t0;
  await finalSeen;
  clearInterval(watchdog);
  if (seen.stuck) {
    const recount = await engine.recount(id);
    await engine.stop();
    process.send({
      type: 'stuck',
      startMs: started,
      firstSummaryMs: seen.first,
      processingMs: seen.processing,
      stallMs,
      first: firstSummary && {
        status: firstSummary.status,
        succeeded: firstSummary.succeeded,
        running: firstSummary.running,
        progress: firstSummary.progress,
      },
      last: lastSummary && {
        status: lastSummary.status,
        succeeded: lastSummary.succeeded,
        failed: lastSummary.failed,
        running: lastSummary.running,
        pending: lastSummary.pending,
      },
      recount,
    });
    process.exit(0);
  }
  const waited = await engine.wait(id);
  const recount = await engine.recount(id);
  await engine.stop();
  process.send({
    type: 'resumed',
    startMs: started,
    firstSummaryMs: seen.first,
    processingMs: seen.processing,
    finalMs: seen.final,
    first: firstSummary && {
      status: firstSummary.status,
      succeeded: firstSummary.succeeded,
      failed: firstSummary.failed,
      progress: firstSummary.progress,
    },
    final: {
      status: finalSummary.status,
      succeeded: finalSummary.succeeded,
      failed: finalSummary.failed,
      total: finalSummary.total,
    },
    waited: {
      status: waited.status,
      succeeded: waited.succeeded,
      failed: waited.failed,
      total: waited.total,
    },
    recount,
  });
}
