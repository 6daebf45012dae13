import { describe, expect, it } from 'vitest';
import {
  createEngine,
  defineJob,
  type Engine,
  type PartitionView,
  postgresStore,
  sqliteStore,
} from '../src/index.js';
import { PG_URL, pgSchema, pgUnreachable, sqlitePath, storeKinds } from './support/stores.js';

// engine.retryFailed(id): the failed partitions of a final PARTIAL or FAILED batch run again, in
// place (same id, run + 1); the earlier runs' errors stay in each partition's history.

const parts = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i }));

/** A job whose partitions in `broken` fail until `fixed` is set; `ran` lists every partition run. */
function flakyJob(
  broken: readonly number[],
  options: {
    maxFailures?: number;
    triggers?: Array<{ job: string; when: 'succeeded'; input: () => number }>;
  } = {},
) {
  const state = { fixed: false, ran: [] as number[] };
  const job = defineJob({
    name: 'flaky',
    partition: parts,
    handler: (i: number) => {
      state.ran.push(i);
      if (!state.fixed && broken.includes(i)) throw new Error(`partition ${i} is broken`);
      return i * 10;
    },
    concurrency: 4,
    ...(options.maxFailures === undefined ? {} : { failurePolicy: { maxFailures: options.maxFailures } }),
    ...(options.triggers ? { triggers: options.triggers } : {}),
  });
  return { job, state };
}

async function collect(engine: Engine, id: string, status?: 'failed' | 'succeeded') {
  const out: PartitionView[] = [];
  for await (const p of engine.partitions(id, status ? { status } : {})) out.push(p);
  return out;
}

describe('retryFailed', async () => {
  for (const [kind, store] of await storeKinds('redrive')) {
    it(`${kind}: 3 failures of 10, handler fixed, retryFailed → COMPLETED, run 2, exactly the 3 re-ran; history kept; recount = summary`, async () => {
      const { job, state } = flakyJob([2, 5, 7]);
      const engine = createEngine({ jobs: [job], store: store(), logger: false });
      await engine.start();
      try {
        const first = await engine.wait((await engine.submit('flaky', 10, { id: 'b1' })).id);
        expect(first).toMatchObject({ status: 'PARTIAL', succeeded: 7, failed: 3 });
        expect(first.run).toBeUndefined();

        state.fixed = true;
        state.ran = [];
        const queued = await engine.retryFailed('b1');
        expect(queued).toMatchObject({ id: 'b1', run: 2, succeeded: 7, failed: 0 });
        expect(['QUEUED', 'PROCESSING', 'FINALIZING', 'COMPLETED']).toContain(queued.status);

        const second = await engine.wait('b1');
        expect(second).toMatchObject({ status: 'COMPLETED', run: 2, total: 10, succeeded: 10, failed: 0 });
        expect(second.failures).toEqual([]);
        expect(second.errorSummary).toBeUndefined();
        expect([...state.ran].sort()).toEqual([2, 5, 7]);
        expect(await engine.recount('b1')).toEqual({ total: 10, succeeded: 10, failed: 0 });

        const all = await collect(engine, 'b1');
        expect(all.map((p) => p.status)).toEqual(Array(10).fill('succeeded'));
        expect(all.map((p) => p.result)).toEqual(Array.from({ length: 10 }, (_, i) => i * 10));
        const retried = all.filter((p) => p.history);
        expect(retried.map((p) => p.key)).toEqual(['k2', 'k5', 'k7']);
        expect(retried[0]!.history).toEqual([
          expect.objectContaining({
            run: 1,
            status: 'failed',
            attempts: 1,
            error: expect.objectContaining({ message: 'partition 2 is broken' }),
          }),
        ]);
        expect((await engine.get('b1')).run).toBe(2);
      } finally {
        await engine.stop();
      }
    });
  }

  it('a partition that fails again stays failed with two entries of history; run 3 follows the policy again', async () => {
    const { job, state } = flakyJob([1, 4], { maxFailures: 0 });
    const engine = createEngine({ jobs: [job], store: sqliteStore({ path: sqlitePath() }), logger: false });
    await engine.start();
    try {
      expect((await engine.wait((await engine.submit('flaky', 6, { id: 'b2' })).id)).status).toBe('FAILED');
      await engine.retryFailed('b2');
      const second = await engine.wait('b2');
      expect(second).toMatchObject({ status: 'FAILED', run: 2, succeeded: 4, failed: 2 });
      const failed = await collect(engine, 'b2', 'failed');
      expect(failed.map((p) => p.history?.map((h) => h.run))).toEqual([[1], [1]]);

      state.fixed = true;
      await engine.retryFailed('b2');
      const third = await engine.wait('b2');
      expect(third).toMatchObject({ status: 'COMPLETED', run: 3, succeeded: 6, failed: 0 });
      const k1 = (await collect(engine, 'b2')).find((p) => p.key === 'k1')!;
      expect(k1.history?.map((h) => h.run)).toEqual([1, 2]);
      expect(await engine.recount('b2')).toEqual({ total: 6, succeeded: 6, failed: 0 });
    } finally {
      await engine.stop();
    }
  });

  it('refuses while the batch runs, on COMPLETED and CANCELLED batches, and an unknown id; nothing is written', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const job = defineJob({
      name: 'slow',
      partition: parts,
      handler: async (i: number) => {
        if (i === 0) await gate;
        return i;
      },
    });
    const engine = createEngine({ jobs: [job], store: sqliteStore({ path: sqlitePath() }), logger: false });
    await engine.start();
    try {
      const running = await engine.submit('slow', 2, { id: 'r1' });
      await expect(engine.retryFailed(running.id)).rejects.toMatchObject({ code: 'CONFLICT' });
      await engine.submit('slow', 2, { id: 'c1', after: ['r1'] });
      await expect(engine.retryFailed('c1')).rejects.toMatchObject({ code: 'CONFLICT' }); // QUEUED
      expect((await engine.cancel('c1', 'no')).status).toBe('CANCELLED');
      release();
      expect((await engine.wait('r1')).status).toBe('COMPLETED');
      await expect(engine.retryFailed('r1')).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(await engine.get('r1')).toMatchObject({ status: 'COMPLETED', succeeded: 2 });
      expect((await engine.get('r1')).run).toBeUndefined();

      await expect(engine.retryFailed('c1')).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(engine.retryFailed('nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      await engine.stop();
    }
  });

  it('a redriven batch survives a restart before it runs, and is retried once when two calls race', async () => {
    const path = sqlitePath();
    const { job, state } = flakyJob([0, 3]);
    const a = createEngine({
      jobs: [job],
      store: sqliteStore({ path }),
      logger: false,
      maxConcurrentBatches: 1,
    });
    await a.start();
    await a.wait((await a.submit('flaky', 5, { id: 'b3' })).id);
    // Hold the only slot so that the redriven batch stays QUEUED, then stop.
    const blocker = defineJob({
      name: 'blocker',
      partition: parts,
      // Runs until its engine stops.
      handler: (_: number, ctx) =>
        new Promise<number>((r) => {
          ctx.signal.addEventListener('abort', () => r(-1));
        }),
    });
    await a.stop();

    /** An engine with one slot: the blocker, once submitted, holds it across restarts. */
    const oneSlot = () =>
      createEngine({
        jobs: [job, blocker],
        store: sqliteStore({ path }),
        logger: false,
        maxConcurrentBatches: 1,
      });
    const b = oneSlot();
    await b.start();
    await b.submit('blocker', 1, { id: 'hold' });
    const [one, two] = await Promise.allSettled([b.retryFailed('b3'), b.retryFailed('b3')]);
    const outcomes = [one, two].map((r) => r.status);
    expect(outcomes.sort()).toEqual(['fulfilled', 'rejected']);
    const refused = [one, two].find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: 'CONFLICT' });
    expect(await b.get('b3')).toMatchObject({ status: 'QUEUED', run: 2, succeeded: 3 });
    await b.stop();

    // Queued again by a start() (or by another engine's claim sweep), it shows its stored summary,
    // not a fresh one: the slot is still held, so it stays QUEUED here. (A PostgreSQL engine's sweep
    // queued it before retryFailed did, and retryFailed answered succeeded 0 and no run.)
    const requeued = oneSlot();
    await requeued.start();
    try {
      expect(await requeued.get('b3')).toMatchObject({ status: 'QUEUED', run: 2, succeeded: 3, failed: 0 });
      expect((await requeued.list({ status: 'QUEUED' })).find((s) => s.id === 'b3')).toMatchObject({
        run: 2,
        succeeded: 3,
      });
    } finally {
      await requeued.stop();
    }

    state.fixed = true;
    state.ran = [];
    const c = createEngine({ jobs: [job, blocker], store: sqliteStore({ path }), logger: false });
    await c.start();
    try {
      expect(await c.wait('b3')).toMatchObject({ status: 'COMPLETED', run: 2, succeeded: 5 });
      expect([...state.ran].sort()).toEqual([0, 3]);
    } finally {
      await c.stop();
    }
  });
});

describe('retryFailed of a batch whose finalizer failed', () => {
  it('every partition succeeded, finalize threw: the next run runs no partition and only finalizes', async () => {
    let ran = 0;
    let finalizes = 0;
    const job = defineJob({
      name: 'fin',
      partition: parts,
      handler: (i: number) => {
        ran++;
        return i;
      },
      finalize: async () => {
        if (++finalizes === 1) throw new Error('the report server was down');
        return { delivered: true };
      },
    });
    const engine = createEngine({ jobs: [job], store: sqliteStore({ path: sqlitePath() }), logger: false });
    await engine.start();
    try {
      const first = await engine.wait((await engine.submit('fin', 4, { id: 'f' })).id);
      expect(first).toMatchObject({ status: 'FAILED', succeeded: 4, failed: 0 });
      expect(first.error?.message).toContain('report server was down');
      await engine.retryFailed('f');
      expect(await engine.wait('f')).toMatchObject({
        status: 'COMPLETED',
        run: 2,
        succeeded: 4,
        output: { delivered: true },
      });
      expect(ran).toBe(4);
      expect(finalizes).toBe(2);
      await expect(engine.retryFailed('f')).rejects.toMatchObject({ code: 'CONFLICT' });
    } finally {
      await engine.stop();
    }
  });
});

describe('retryFailed and job triggers', () => {
  it('a retried parent that now succeeds fires its "succeeded" trigger once, id parent>job#run', async () => {
    const { job: withTrigger, state } = flakyJob([1], {
      triggers: [{ job: 'after', when: 'succeeded', input: () => 1 }],
    });
    const after = defineJob({ name: 'after', partition: parts, handler: (i: number) => i });
    const engine = createEngine({
      jobs: [withTrigger, after],
      store: sqliteStore({ path: sqlitePath() }),
      logger: false,
    });
    await engine.start();
    try {
      const first = await engine.wait((await engine.submit('flaky', 3, { id: 'p' })).id);
      expect(first.status).toBe('PARTIAL');
      expect(first.triggered).toBeUndefined();
      state.fixed = true;
      await engine.retryFailed('p');
      const second = await engine.wait('p');
      expect(second).toMatchObject({
        status: 'COMPLETED',
        run: 2,
        triggered: [{ job: 'after', id: 'p>after#2' }],
      });
      expect((await engine.wait('p>after#2')).status).toBe('COMPLETED');
    } finally {
      await engine.stop();
    }
  });
});

describe('retryFailed of failures spread through a batch', async () => {
  // Every other partition failed: the retry's groups take the next failed ones, stepping over the
  // succeeded ones between them (docs/benchmarks.md, "A retry's groups"). A stop halfway through the
  // retry, and another engine on the same store finishes it: each failed partition runs again, no
  // succeeded one does, and the counts add up.
  const durable: Array<[string, () => { store: () => ReturnType<typeof sqliteStore> }]> = [
    [
      'sqlite',
      () => {
        const path = sqlitePath();
        return { store: () => sqliteStore({ path }) };
      },
    ],
  ];
  if (!(await pgUnreachable('a retry spread through a batch'))) {
    durable.push([
      'postgres',
      () => {
        const schema = pgSchema();
        return { store: () => postgresStore({ connectionString: PG_URL, schema }) as never };
      },
    ]);
  }

  for (const [kind, open] of durable) {
    it(`${kind}: 400 partitions, every other failed, groups of 16; stopped halfway through the retry, finished by another engine`, async () => {
      const state = { fixed: false, hold: false, ran: [] as number[] };
      let held!: () => void;
      const holding = new Promise<void>((r) => {
        held = r;
      });
      const job = defineJob({
        name: 'spread',
        partition: parts,
        handler: (i: number, ctx) => {
          if (!state.fixed) {
            if (i % 2 === 0) throw new Error(`partition ${i} is broken`);
            return i;
          }
          if (state.hold && state.ran.length >= 60) {
            held();
            return new Promise<number>((r) => ctx.signal.addEventListener('abort', () => r(-1)));
          }
          state.ran.push(i);
          return i;
        },
        concurrency: 4,
        batching: { maxItems: 16 },
      });
      const { store } = open();
      const a = createEngine({ jobs: [job], store: store(), logger: false });
      await a.start();
      try {
        const first = await a.wait((await a.submit('spread', 400, { id: 's' })).id);
        expect(first).toMatchObject({ status: 'PARTIAL', succeeded: 200, failed: 200 });
        state.fixed = true;
        state.hold = true;
        await a.retryFailed('s');
        await holding;
      } finally {
        await a.stop();
      }
      state.hold = false;
      const b = createEngine({ jobs: [job], store: store(), logger: false });
      await b.start();
      try {
        expect(await b.wait('s')).toMatchObject({ status: 'COMPLETED', run: 2, succeeded: 400, failed: 0 });
        expect(await b.recount('s')).toEqual({ total: 400, succeeded: 400, failed: 0 });
        const evens = Array.from({ length: 200 }, (_, k) => 2 * k);
        expect([...new Set(state.ran)].sort((x, y) => x - y)).toEqual(evens);
        const all = await collect(b, 's');
        expect(all.filter((p) => p.history).map((p) => p.key)).toEqual(evens.map((i) => `k${i}`));
      } finally {
        await b.stop();
      }
    });
  }
});
