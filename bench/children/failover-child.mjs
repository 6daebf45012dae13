// Child process of the failover bench: one engine on a PostgreSQL schema, forked with an IPC
// channel. Configured by the environment:
//   FO_PG_URL, FO_SCHEMA     the store
//   FO_OWNER                 the engine's ownerId (default: partita's own)
//   FO_JOBS                  jobs this engine defines: `io` (inline handler awaiting FO_IO_MS) and
//                            `hold` (one partition that runs until the process ends); default `io`
//   FO_MAX_BATCHES           maxConcurrentBatches (default 4)
//   FO_CLAIM_MS, FO_LEASE_MS claimIntervalMs, leaseTtlMs (default: partita's)
//   FO_NO_WATCH=1            the engine gets the store without `watch`: it hears of no new batch by
//                            NOTIFY, only through its sweep every claimIntervalMs
//   FO_CONCURRENCY           job `io`'s concurrency (default 8)
//   FO_PROGRESS_AT           send 'progress' when this many partitions of one batch started here
// Every time is Date.now() of the process that saw it (one machine, one clock).
// To the parent: { type: 'ready' }, { type: 'started', batchId, at, redelivered } at the first
// partition of a batch to start here, { type: 'heard', batchId, at } when a NOTIFY of a new QUEUED
// batch reaches the engine, { type: 'progress', batchId, at }, { type: 'submitted', id, at } and
// { type: 'final', id, at, status, succeeded, redeliveredHere, ranHere }.
// From the parent: { type: 'submit', job, n, id }, { type: 'wait', id }, { type: 'stop' }.
import { setTimeout as sleep } from 'node:timers/promises';
import { partita } from '../lib/common.mjs';

const { createEngine, defineJob, postgresStore } = await partita();
const env = process.env;
const num = (name) => (env[name] ? Number(env[name]) : undefined);
const ioMs = num('FO_IO_MS') ?? 20;
const progressAt = num('FO_PROGRESS_AT');

/** Per batch: partitions started here, and of them redelivered ones. */
const ran = new Map();
const send = (m) => process.send?.(m);

const io = defineJob({
  name: 'io',
  partition: (n) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
  handler: async (i, ctx) => {
    const at = Date.now();
    let r = ran.get(ctx.batchId);
    if (!r) {
      r = { started: 0, redelivered: 0 };
      ran.set(ctx.batchId, r);
      send({ type: 'started', batchId: ctx.batchId, at, redelivered: ctx.redelivered });
    }
    r.started++;
    if (ctx.redelivered) r.redelivered++;
    if (r.started === progressAt) send({ type: 'progress', batchId: ctx.batchId, at });
    await sleep(ioMs);
    return i;
  },
  concurrency: num('FO_CONCURRENCY') ?? 8,
});
const hold = defineJob({
  name: 'hold',
  partition: () => [{ key: 'h', payload: 0 }],
  handler: async (_, ctx) => {
    send({ type: 'started', batchId: ctx.batchId, at: Date.now(), redelivered: ctx.redelivered });
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    return 0;
  },
});
const jobs = (env.FO_JOBS ?? 'io').split(',').map((name) => ({ io, hold })[name]);

const pgStore = postgresStore({ connectionString: env.FO_PG_URL, schema: env.FO_SCHEMA });
// The store as the engine sees it: every method of the real one, bound to it; `watch` wrapped to
// report when a NOTIFY of a new batch arrives, or hidden (FO_NO_WATCH) to leave only the sweep.
const store = new Proxy(pgStore, {
  get(target, prop) {
    if (prop === 'watch') {
      if (env.FO_NO_WATCH === '1') return undefined;
      return (listener) =>
        target.watch((event) => {
          if (event.status === 'QUEUED') send({ type: 'heard', batchId: event.batchId, at: Date.now() });
          listener(event);
        });
    }
    const value = Reflect.get(target, prop, target);
    return typeof value === 'function' ? value.bind(target) : value;
  },
});

const engine = createEngine({
  jobs,
  store,
  logger: false,
  maxConcurrentBatches: num('FO_MAX_BATCHES') ?? 4,
  ...(env.FO_CLAIM_MS ? { claimIntervalMs: num('FO_CLAIM_MS') } : {}),
  ...(env.FO_LEASE_MS ? { leaseTtlMs: num('FO_LEASE_MS') } : {}),
  ...(env.FO_OWNER ? { ownerId: env.FO_OWNER } : {}),
});
await engine.start();

process.on('message', async (m) => {
  if (m.type === 'submit') {
    await engine.submit(m.job, m.n, { id: m.id });
    send({ type: 'submitted', id: m.id, at: Date.now() });
  } else if (m.type === 'wait') {
    const s = await engine.wait(m.id);
    const r = ran.get(m.id) ?? { started: 0, redelivered: 0 };
    send({
      type: 'final',
      id: m.id,
      at: Date.now(),
      status: s.status,
      succeeded: s.succeeded,
      ranHere: r.started,
      redeliveredHere: r.redelivered,
    });
  } else if (m.type === 'stop') {
    // A `hold` partition never ends by itself: stop() would wait for it. Nothing here needs a
    // graceful stop (the bench drops the schema).
    process.exit(0);
  }
});
send({ type: 'ready' });
