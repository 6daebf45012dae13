import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/index.js';
import { storeKinds } from '../support/stores.js';

// Store.acquireLeaseWithin, the cluster-wide cap (clusterMaxConcurrentBatches): a QUEUED batch's
// lease is granted only while fewer than `cap` other unfinished batches hold a live one, decided
// with the take, so that racing engines never take more than the cap.

const record = (id: string) => ({
  schemaVersion: 1,
  id,
  job: 'j',
  total: 1,
  priority: 0,
  after: [],
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
  });
}
