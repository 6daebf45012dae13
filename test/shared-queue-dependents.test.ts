import { describe, expect, it, vi } from 'vitest';
import { createEngine, defineJob, memoryStore, sqliteStore } from '../src/index.js';
import { sqlitePath } from './support/stores.js';
import { deferred } from './support/until.js';

// Batches waiting for an `after` parent, on engines that share one store (found by an outside probe):
// a dependent claims no slot while its parent has not ended, and a parent that ends on another
// engine wakes the dependents queued here, whichever engine ran it.

/** A job of one partition whose handler waits for `gates[payload]` when there is one. */
function gatedJob(name: string, gates: Map<string, Promise<void>>) {
  return defineJob({
    name,
    partition: (x: string) => [{ key: 'only', payload: x }],
    handler: async (x: string) => {
      await gates.get(x);
      return x;
    },
  });
}

describe('dependents on engines sharing a store', () => {
  it('an engine with one free slot takes the parent of a dependent it holds, not only the dependent', async () => {
    const path = sqlitePath();
    const busyB = deferred();
    const busyA = deferred();
    const gates = new Map([
      ['busy-a', busyA.promise],
      ['busy-b', busyB.promise],
    ]);
    const job = gatedJob('j', gates);
    const opts = { jobs: [job], logger: false as const, maxConcurrentBatches: 1, claimIntervalMs: 100 };
    const b = createEngine({ ...opts, store: sqliteStore({ path }), ownerId: 'deps/1/b' });
    await b.start();
    const a = createEngine({ ...opts, store: sqliteStore({ path }), ownerId: 'deps/1/a' });
    await a.start();
    try {
      await b.submit(job, 'busy-b', { id: 'busy-b' });
      await a.submit(job, 'busy-a', { id: 'busy-a', priority: -100 });
      // Queued on A, behind its busy slot; the dependent listed first (higher priority).
      await a.submit(job, 'p', { id: 'P' });
      await a.submit(job, 'c', { id: 'C', priority: 5, after: ['P'] });
      // A stops: busy-a, P and C are left to whoever has room. B's only slot comes free.
      busyA.resolve();
      await a.stop();
      busyB.resolve();
      // B held C, which waits for P, and counted it as its one slot: it never took P.
      expect(await b.wait('P')).toMatchObject({ status: 'COMPLETED' });
      expect(await b.wait('C')).toMatchObject({ status: 'COMPLETED' });
      expect(await b.wait('busy-a')).toMatchObject({ status: 'COMPLETED' });
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('takes an unowned parent even when its own dependents, ranked above it, fill every listing of unowned batches', async () => {
    // 70 dependents of priority 10 after P of priority 0: the listing of unowned batches (by
    // priority, room + 64 rows) holds only dependents, which B queues and then skips; P came never.
    const path = sqlitePath();
    const busyA = deferred();
    const busyB = deferred();
    const gates = new Map([
      ['busy-a', busyA.promise],
      ['busy-b', busyB.promise],
    ]);
    const job = gatedJob('j', gates);
    const opts = { jobs: [job], logger: false as const, claimIntervalMs: 100 };
    // B runs while A submits and stops, its two slots busy: it takes the batches once they free.
    const b = createEngine({
      ...opts,
      store: sqliteStore({ path }),
      maxConcurrentBatches: 2,
      ownerId: 'deps/3/b',
    });
    await b.start();
    const a = createEngine({
      ...opts,
      store: sqliteStore({ path }),
      maxConcurrentBatches: 1,
      ownerId: 'deps/3/a',
    });
    await a.start();
    try {
      await b.submit(job, 'busy-b', { id: 'busy-b1' });
      await b.submit(job, 'busy-b', { id: 'busy-b2' });
      await a.submit(job, 'busy-a', { id: 'busy-a' });
      await a.submit(job, 'p', { id: 'P' });
      const children = Array.from({ length: 70 }, (_, i) => `C${String(i).padStart(2, '0')}`);
      for (const id of children) await a.submit(job, id, { id, priority: 10, after: ['P'] });
      busyA.resolve();
      await a.stop();
      busyB.resolve();
      expect(await b.wait('P')).toMatchObject({ status: 'COMPLETED' });
      for (const id of children) expect(await b.wait(id)).toMatchObject({ status: 'COMPLETED' });
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('a dependent queued here starts when its parent ends on another engine that took it from here', async () => {
    const path = sqlitePath();
    const busyX = deferred();
    const gates = new Map([['x', busyX.promise]]);
    const pj = gatedJob('pj', gates);
    const cj = gatedJob('cj', gates);
    const a = createEngine({
      jobs: [pj, cj],
      store: sqliteStore({ path }),
      logger: false,
      maxConcurrentBatches: 1,
      ownerId: 'deps/2/a',
    });
    // B runs only the parent's job: it takes P from A's queue and finishes it.
    const b = createEngine({
      jobs: [pj],
      store: sqliteStore({ path }),
      logger: false,
      claimIntervalMs: 100,
      ownerId: 'deps/2/b',
    });
    await a.start();
    await b.start();
    try {
      await a.submit(pj, 'x', { id: 'X' });
      await a.submit(pj, 'p', { id: 'P' });
      await a.submit(cj, 'c', { id: 'C', after: ['P'] });
      expect(await b.wait('P')).toMatchObject({ status: 'COMPLETED' });
      // A's slot comes free: it meets P run elsewhere (ended), forgets it, and must learn that P
      // ended to start C. It used to wait for a parent nobody would tell it about.
      busyX.resolve();
      expect(await a.wait('X')).toMatchObject({ status: 'COMPLETED' });
      expect(await a.wait('C')).toMatchObject({ status: 'COMPLETED' });
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe('list({ status, limit })', () => {
  it('gives the newest batches first when several were created in the same millisecond', async () => {
    const gate = deferred();
    const gates = new Map(Array.from({ length: 8 }, (_, i) => [`b${i}`, gate.promise] as const));
    const job = gatedJob('j', gates);
    const engine = createEngine({
      jobs: [job],
      store: memoryStore(),
      logger: false,
      maxConcurrentBatches: 8,
    });
    await engine.start();
    try {
      // One millisecond for the whole burst, whatever the machine's speed (only Date is faked).
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(new Date('2027-01-01T00:00:00.000Z'));
      try {
        for (let i = 0; i < 8; i++) await engine.submit(job, `b${i}`, { id: `b${i}` });
      } finally {
        vi.useRealTimers();
      }
      const all = (await engine.list()).map((s) => s.id);
      expect(all).toEqual(['b7', 'b6', 'b5', 'b4', 'b3', 'b2', 'b1', 'b0']);
      const running = (await engine.list({ status: 'PROCESSING', limit: 3 })).map((s) => s.id);
      expect(running).toEqual(['b7', 'b6', 'b5']);
      gate.resolve();
      for (const id of all) await engine.wait(id);
    } finally {
      await engine.stop();
    }
  });
});
