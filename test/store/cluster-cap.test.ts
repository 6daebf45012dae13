import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/index.js';
import { storeKinds } from '../support/stores.js';

// Store.acquireLeaseWithin, the cluster-wide cap (clusterMaxConcurrentBatches): a QUEUED batch's
// lease is granted only while fewer than `cap` other unfinished batches hold a live one, decided
// with the take, so that racing engines never take more than the cap.

const record = (id: string, priority = 0, after: string[] = [], job = 'j') => ({
  schemaVersion: 1,
  id,
  job,
  total: 1,
  priority,
  after,
  when: 'succeeded' as const,
  createdAt: new Date().toISOString(),
});

for (const [kind, open] of await storeKinds('the cluster-wide cap')) {
  describe(`acquireLeaseWithin on ${kind}`, () => {
    async function withBatches(n: number, run: (store: Store) => Promise<void>) {
      const store = open();
      await store.open();
      try {
        for (let i = 0; i < n; i++) await store.createBatch(record(`b${i}`), [{ key: 'k', payload: i }]);
        await run(store);
      } finally {
        await store.close();
      }
    }

    it('grants up to the cap, says full beyond it, and grants again once a lease is given back', () =>
      withBatches(3, async (store) => {
        const a = await store.acquireLeaseWithin!('b0', 'e1', 60_000, 2);
        const b = await store.acquireLeaseWithin!('b1', 'e2', 60_000, 2);
        expect(a).toMatchObject({ owner: 'e1', status: 'QUEUED' });
        expect(b).toMatchObject({ owner: 'e2' });
        expect(await store.acquireLeaseWithin!('b2', 'e3', 60_000, 2)).toBe('full');
        // Held by a live engine: refused as held, not as full.
        expect(await store.acquireLeaseWithin!('b0', 'e3', 60_000, 5)).toBeUndefined();
        await store.releaseLease('b1', b as never);
        expect(await store.acquireLeaseWithin!('b2', 'e3', 60_000, 2)).toMatchObject({ owner: 'e3' });
      }));

    it('never grants more than the cap to racing engines', () =>
      withBatches(12, async (store) => {
        const taken = await Promise.all(
          Array.from({ length: 12 }, (_, i) => store.acquireLeaseWithin!(`b${i}`, `e${i}`, 60_000, 3)),
        );
        expect(taken.filter((t) => typeof t === 'object')).toHaveLength(3);
        expect(taken.filter((t) => t === 'full')).toHaveLength(9);
      }));

    it('a slot goes to the first ready batch of the jobs the engine runs: priority, then age', async () => {
      const store = open();
      await store.open();
      try {
        const add = (id: string, priority: number, after: string[] = [], job = 'j') =>
          store.createBatch(record(id, priority, after, job), [{ key: 'k', payload: 0 }]);
        await add('low', 0);
        await add('high', 5);
        await add('waiting', 9, ['parent']); // has a parent: not ready, holds nobody back
        await add('other', 9, [], 'z'); // a job this engine does not run
        expect(await store.acquireLeaseWithin!('low', 'e1', 60_000, 3, ['j'])).toBe('full');
        expect(await store.acquireLeaseWithin!('high', 'e1', 60_000, 3, ['j'])).toMatchObject({
          owner: 'e1',
        });
        // `high` is held now: `low` is next.
        expect(await store.acquireLeaseWithin!('low', 'e2', 60_000, 3, ['j'])).toMatchObject({ owner: 'e2' });
        await add('old', 1);
        await add('new', 1);
        expect(await store.acquireLeaseWithin!('new', 'e3', 60_000, 3, ['j'])).toBe('full');
        expect(await store.acquireLeaseWithin!('old', 'e3', 60_000, 3, ['j'])).toMatchObject({ owner: 'e3' });
      } finally {
        await store.close();
      }
    });
  });
}
