// Child process of the hosts bench: one engine on a PostgreSQL schema, job "io" (inline handler
// awaiting HOST_IO_MS), and job "wide", the same with `distribute` (ranges of HOST_RANGE_SIZE),
// which this engine helps run with HOST_HELP_CONCURRENCY partitions at once. On { type: 'submit',
// batches, partitions, job } from the parent it submits them and answers 'submitted'; it stops on
// 'stop'.
import { setTimeout as sleep } from 'node:timers/promises';
import { partita } from '../lib/common.mjs';

const { createEngine, defineJob, postgresStore } = await partita();
const ioMs = Number(process.env.HOST_IO_MS ?? 20);
const io = defineJob({
  name: 'io',
  partition: (n) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
  handler: async (i) => {
    await sleep(ioMs);
    return i;
  },
  concurrency: Number(process.env.HOST_CONCURRENCY ?? 16),
});
const wide = defineJob({
  name: 'wide',
  partition: (n) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
  handler: async () => {
    await sleep(ioMs);
    return process.pid;
  },
  concurrency: Number(process.env.HOST_CONCURRENCY ?? 16),
  distribute: { rangeSize: Number(process.env.HOST_RANGE_SIZE ?? 50) },
});
const engine = createEngine({
  jobs: [io, wide],
  help: { concurrency: Number(process.env.HOST_HELP_CONCURRENCY ?? 16) },
  store: postgresStore({ connectionString: process.env.HOST_PG_URL, schema: process.env.HOST_SCHEMA }),
  logger: false,
  maxConcurrentBatches: Number(process.env.HOST_MAX_BATCHES ?? 4),
  claimIntervalMs: 200,
});
await engine.start();
process.on('message', async (m) => {
  if (m.type === 'submit') {
    for (let i = 0; i < m.batches; i++) await engine.submit(m.job ?? 'io', m.partitions, { id: `b${i}` });
    process.send({ type: 'submitted' });
  } else if (m.type === 'stop') {
    await engine.stop();
    process.exit(0);
  }
});
process.send({ type: 'ready' });
