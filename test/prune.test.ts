import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, type Engine, type Store } from '../src/index.js';
import { collect } from './helpers.js';
import { storeKinds } from './support/stores.js';
import { type Deferred, deferred } from './support/until.js';

// engine.prune (docs/guide.md, "Keeping the store small"): ended batches deleted with everything
// stored of them, on every store; what an unfinished batch waits for is kept; a dependent whose
// parent is gone all the same (deleted under it) learns it and does not wait for ever.

const gates = new Map<string, Deferred>();

/** A job whose partition `p` fails when its payload says so, and waits for `gates.get(payload)` when there is one. */
const job = defineJob({
  name: 'prune',
  partition: (input: { n: number; fail?: boolean; gate?: string }) =>
    Array.from({ length: input.n }, (_, i) => ({ key: `p${i}`, payload: input })),
  handler: async (input: { fail?: boolean; gate?: string }) => {
    if (input.gate) await gates.get(input.gate)?.promise;
    if (input.fail) throw new Error('failed on purpose');
    return 'ok';
  },
});
const other = defineJob({ name: 'other', partition: () => [{ key: 'only', payload: 1 }], handler: () => 1 });

/** A moment strictly after every batch ended so far (ISO milliseconds), and the clock past it. */
async function cutoff(): Promise<number> {
  const at = Date.now() + 1;
  while (Date.now() <= at) await new Promise((resolve) => setImmediate(resolve));
  return at;
}

const kinds = await storeKinds('engine.prune');

describe.each(kinds)('engine.prune on %s', (_kind, makeStore) => {
  async function started(store: Store = makeStore()): Promise<Engine> {
    const engine = createEngine({ jobs: [job, other], store, logger: false });
    await engine.start();
    return engine;
  }

  it('deletes the batches that ended before the cutoff, with their partitions, and nothing else', async () => {
    const engine = await started();
    try {
      const old = await engine.submit(job, { n: 3 }, { id: 'old' });
      const oldFailed = await engine.submit(job, { n: 2, fail: true }, { id: 'old-failed' });
      await engine.wait(old.id);
      await engine.wait(oldFailed.id);
      const before = await cutoff();
      await engine.wait((await engine.submit(job, { n: 2 }, { id: 'new' })).id);
      gates.set('running', deferred());
      await engine.submit(job, { n: 1, gate: 'running' }, { id: 'running' });

      // Too early: nothing ended before it.
      expect(await engine.prune({ before: new Date(before - 60_000) })).toEqual({ deleted: 0 });
      expect(await engine.prune({ before })).toEqual({ deleted: 2 });

      for (const id of ['old', 'old-failed']) {
        await expect(engine.get(id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
        await expect(collect(engine.partitions(id))).rejects.toMatchObject({ code: 'NOT_FOUND' });
      }
      expect((await engine.list()).map((s) => s.id).sort()).toEqual(['new', 'running']);
      expect(await engine.recount('new')).toEqual({ total: 2, succeeded: 2, failed: 0 });
      // A deleted id is free again: submitted anew, it is a new batch.
      const again = await engine.submit(job, { n: 1 }, { id: 'old' });
      expect((await engine.wait(again.id)).total).toBe(1);

      // An unfinished batch is never pruned, whatever the cutoff.
      expect(await engine.prune({ before: Date.now() + 60_000, status: 'CANCELLED' })).toEqual({
        deleted: 0,
      });
      gates.get('running')!.resolve();
      expect((await engine.wait('running')).status).toBe('COMPLETED');
    } finally {
      gates.get('running')?.resolve();
      await engine.stop();
    }
  });

  it('selects by status, by job and up to a limit, oldest first', async () => {
    const engine = await started();
    try {
      for (const id of ['a1', 'a2', 'a3']) await engine.wait((await engine.submit(job, { n: 1 }, { id })).id);
      await engine.wait((await engine.submit(job, { n: 1, fail: true }, { id: 'f1' })).id);
      await engine.wait((await engine.submit(other, {}, { id: 'o1' })).id);
      const before = await cutoff();

      expect(await engine.prune({ before, status: ['FAILED'] })).toEqual({ deleted: 1 });
      await expect(engine.get('f1')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(await engine.prune({ before, job: 'other' })).toEqual({ deleted: 1 });
      await expect(engine.get('o1')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect(await engine.prune({ before, limit: 2 })).toEqual({ deleted: 2 });
      expect((await engine.list()).map((s) => s.id)).toEqual(['a3']);
      expect(await engine.prune({ before })).toEqual({ deleted: 1 });
      expect(await engine.list()).toEqual([]);
    } finally {
      await engine.stop();
    }
  });

  it('keeps an ended batch that an unfinished one waits for, and prunes it once that one ended', async () => {
    const engine = await started();
    gates.set('q', deferred());
    try {
      await engine.wait((await engine.submit(job, { n: 1 }, { id: 'parent-done' })).id);
      await engine.submit(job, { n: 1, gate: 'q' }, { id: 'parent-running' });
      await engine.submit(job, { n: 1 }, { id: 'child', after: ['parent-done', 'parent-running'] });
      expect((await engine.get('child')).status).toBe('QUEUED');

      expect(await engine.prune({ before: await cutoff() })).toEqual({ deleted: 0 });
      expect((await engine.get('parent-done')).status).toBe('COMPLETED');

      gates.get('q')!.resolve();
      expect((await engine.wait('child')).status).toBe('COMPLETED');
      expect(await engine.prune({ before: await cutoff() })).toEqual({ deleted: 3 });
    } finally {
      gates.get('q')!.resolve();
      await engine.stop();
    }
  });

  it('reads more than one page of ended batches, and keeps a parent named far down the list', async () => {
    const engine = createEngine({ jobs: [job], store: makeStore(), logger: false, maxConcurrentBatches: 8 });
    await engine.start();
    gates.set('late', deferred());
    try {
      const n = 1_205; // past the SQL stores' page of 1,000 rows
      const ids = Array.from({ length: n }, (_, i) => `b${String(i).padStart(5, '0')}`);
      await Promise.all(ids.map((id) => engine.submit(job, { n: 1 }, { id })));
      for (const id of ids) await engine.wait(id);
      await engine.submit(job, { n: 1, gate: 'late' }, { id: 'late' });
      await engine.submit(job, { n: 1 }, { id: 'waits', after: ['b01100', 'late'] });
      expect(await engine.prune({ before: await cutoff() })).toEqual({ deleted: n - 1 });
      expect((await engine.list({ status: 'COMPLETED' })).map((s) => s.id)).toEqual(['b01100']);
      gates.get('late')!.resolve();
      expect((await engine.wait('waits')).status).toBe('COMPLETED');
    } finally {
      gates.get('late')!.resolve();
      await engine.stop();
    }
  });

  it('refuses bad options with VALIDATION and deletes nothing', async () => {
    const engine = await started();
    try {
      await engine.wait((await engine.submit(job, { n: 1 }, { id: 'kept' })).id);
      const later = Date.now() + 60_000;
      for (const bad of [
        {},
        { before: Number.NaN },
        { before: new Date('not a date') },
        { before: '2026-01-01' },
        { before: later, status: 'QUEUED' },
        { before: later, status: [] },
        { before: later, limit: 0 },
        { before: later, unknown: 1 },
      ])
        await expect(engine.prune(bad as never)).rejects.toMatchObject({ code: 'VALIDATION' });
      await expect(engine.prune({ before: '2026-01-01' } as never)).rejects.toThrow(
        /before: expected a Date or milliseconds since the epoch/,
      );
      expect((await engine.get('kept')).status).toBe('COMPLETED');
    } finally {
      await engine.stop();
    }
  });

  it('needs a started engine', async () => {
    const engine = createEngine({ jobs: [job], store: makeStore(), logger: false });
    await expect(engine.prune({ before: Date.now() })).rejects.toMatchObject({ code: 'ENGINE_STATE' });
  });
});

describe.each(kinds.filter(([kind]) => kind !== 'memory'))(
  'a parent deleted under its dependent, on %s',
  (_kind, makeStore) => {
    it('cancels a dependent that needs it to have succeeded, and lets a `settled` one run', async () => {
      const store = makeStore();
      let engine = createEngine({ jobs: [job], store, logger: false });
      await engine.start();
      gates.set('hold', deferred());
      try {
        await engine.wait((await engine.submit(job, { n: 1 }, { id: 'p' })).id);
        await engine.submit(job, { n: 1, gate: 'hold' }, { id: 'hold' });
        await engine.submit(job, { n: 1 }, { id: 'needs', after: ['p', 'hold'] });
        await engine.submit(job, { n: 1 }, { id: 'settles', after: ['p', 'hold'], when: 'settled' });
        await engine.stop();
        // Deleted under them (as a prune racing a submit could): the next engine finds no row for `p`.
        await store.open();
        expect(await store.deleteBatches!(['p'])).toBe(1);
        await store.close();

        engine = createEngine({ jobs: [job], store, logger: false });
        await engine.start();
        gates.get('hold')!.resolve();
        const needs = await engine.wait('needs');
        expect(needs.status).toBe('CANCELLED');
        expect(needs.error?.message).toMatch(/parent batch "p" no longer exists/);
        expect((await engine.wait('settles')).status).toBe('COMPLETED');
      } finally {
        gates.get('hold')!.resolve();
        await engine.stop();
      }
    });
  },
);
