// Child process of the scale bench: one engine, one batch of N no-op partitions on SQLite, memory
// sampled every 100 ms in this process only. Reports to the parent over IPC.
import { performance } from 'node:perf_hooks';
import { partita } from '../lib/common.mjs';
import { workerJob } from '../lib/engine.mjs';

const n = Number(process.env.SCALE_N);
const path = process.env.SCALE_DB;
const threads = Number(process.env.SCALE_THREADS ?? 2);
const concurrency = Number(process.env.SCALE_CONCURRENCY ?? 256);
const sampleMs = Number(process.env.SCALE_SAMPLE_MS ?? 100);
// Each pool thread's young generation (V8's default lets it grow to 16 MB per thread), if set.
const youngMb = process.env.SCALE_WORKER_YOUNG_MB ? Number(process.env.SCALE_WORKER_YOUNG_MB) : undefined;

const { createEngine, sqliteStore } = await partita();
const job = await workerJob('noop', 'noop.mjs', concurrency);
const engine = createEngine({
  jobs: [job],
  store: sqliteStore({ path }),
  workers: {
    maxThreads: threads,
    ...(youngMb ? { resourceLimits: { maxYoungGenerationSizeMb: youngMb } } : {}),
  },
  logger: false,
});

const samples = [];
let phase = 'start';
let batchId;
let progress = 0;
const t0 = performance.now();
const sample = () => {
  const m = process.memoryUsage();
  const s = {
    t: Math.round(performance.now() - t0),
    phase,
    progress,
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
  };
  samples.push(s);
  return s;
};
const timer = setInterval(() => {
  if (batchId && phase === 'process') {
    engine.get(batchId).then(
      (s) => {
        progress = s.progress;
      },
      () => {},
    );
  }
  sample();
}, sampleMs);

await engine.start();
sample();
phase = 'submit';
const tSubmit = performance.now();
const queued = await engine.submit('noop', { n });
batchId = queued.id;
const tSubmitted = performance.now();
phase = 'process';
sample();
const final = await engine.wait(batchId);
const tFinal = performance.now();
progress = final.progress;
const last = sample();
clearInterval(timer);
await engine.stop();

const maxRssKb = process.resourceUsage().maxRSS;
process.send({
  ok: final.status === 'COMPLETED' && final.succeeded === n,
  status: final.status,
  succeeded: final.succeeded,
  submitMs: tSubmitted - tSubmit,
  processMs: tFinal - tSubmitted,
  totalMs: tFinal - tSubmit,
  maxRssBytes: maxRssKb * 1024,
  final: last,
  samples,
});
