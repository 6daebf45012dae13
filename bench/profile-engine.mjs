// The engine side alone, for a CPU profile: one partita batch of no-op partitions, no raw Piscina.
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-engine.mjs
//   node bench/cpuprofile-top.mjs /tmp/prof            # the main thread's profile, summarized
//
// Env: PROFILE_STORE (memory | sqlite | postgres, default sqlite), PROFILE_N (100000),
// PROFILE_CONCURRENCY (256), PROFILE_JOB (worker | handler), PROFILE_MS (0: no-op), BENCH_THREADS (2),
// PROFILE_BATCHING (auto | off | a group size; default auto, partita's own default).
import { envInt, partita } from './lib/common.mjs';
import { openStore, parseBatching, partitionsOf, timePartitaBatch, workerJob } from './lib/engine.mjs';

const kind = process.env.PROFILE_STORE ?? 'sqlite';
const n = envInt('PROFILE_N', 100_000);
const concurrency = envInt('PROFILE_CONCURRENCY', 256);
const threads = envInt('BENCH_THREADS', 2);
const jobKind = process.env.PROFILE_JOB ?? 'worker';
// PROFILE_MS > 0: each partition burns that many ms of CPU (bench/workers/burn.mjs) instead of nothing.
const ms = envInt('PROFILE_MS', 0) || undefined;
const batching = parseBatching(process.env.PROFILE_BATCHING || 'auto');

const { defineJob } = await partita();
const job =
  jobKind === 'handler'
    ? defineJob({
        name: 'noop',
        partition: partitionsOf,
        handler: async () => ({ ok: true }),
        concurrency,
        batching: batching.option,
      })
    : ms
      ? await workerJob('burn', 'burn.mjs', concurrency, batching.option)
      : await workerJob('noop', 'noop.mjs', concurrency, batching.option);
const opened = await openStore(kind, 'prof');
if (opened.skip) throw new Error(opened.skip);
try {
  const t = await timePartitaBatch({ job, store: opened.store, threads, n, ms });
  const rate = Math.round((n / t.totalMs) * 1000);
  process.stdout.write(
    `profile-engine: ${kind} ${jobKind} c=${concurrency} batching ${batching.label} n=${n}` +
      `${t.groups ? ` (${t.groups.tasks} pool tasks)` : ''}: submit ${Math.round(t.submitMs)} ms, ` +
      `process ${Math.round(t.processMs)} ms, ${rate}/s, main thread busy ${Math.round((t.mainBusyMs * 1000) / n)} µs/partition, ` +
      `main thread CPU ${Math.round((t.mainCpuMs * 1000) / n)} µs/partition\n`,
  );
} finally {
  await opened.cleanup();
}
