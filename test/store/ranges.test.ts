import { describe, expect, it } from 'vitest';
import { LeaseLostError, postgresStore, type Store, sqliteStore } from '../../src/index.js';
import { PG_URL, pgSchema, pgUnreachable, sqlitePath } from '../support/stores.js';
import { state } from './contract.js';

// The ranges of `distribute` (src/store/sql-ranges.ts) on both stores that have them, against real
// databases: offers fenced by the batch's lease, claims that never hand one range to two holders,
// holds that expire and pass on with what was staged, answers fenced by the hold. And the lease
// history both keep.

const kinds: Array<[string, () => Store]> = [['sqlite', () => sqliteStore({ path: sqlitePath() })]];
if (!(await pgUnreachable('range store')))
  kinds.push(['postgres', () => postgresStore({ connectionString: PG_URL, schema: pgSchema() })]);

const record = (id: string, total: number) => ({
  schemaVersion: 1,
  id,
  job: 'j',
  total,
  priority: 0,
  after: [],
  when: 'succeeded' as const,
  createdAt: new Date().toISOString(),
});
const ok = (result: unknown) => ({ ok: true, result, ms: 1 });

for (const [kind, open] of kinds) {
  describe(`ranges on ${kind}`, () => {
    async function batch(store: Store, id: string, total = 6) {
      await store.createBatch(
        record(id, total),
        Array.from({ length: total }, (_, i) => ({ key: `k${i}`, payload: i })),
      );
      const lease = await store.acquireLease(id, 'owner', 60_000);
      return lease!;
    }
    const offer = (members: number[]) => ({
      job: 'j',
      attempt: 1,
      redelivered: false,
      members,
      offeredBy: 'owner',
    });

    it('offers only under the batch lease, and a range goes to one holder at a time', async () => {
      const store = open();
      await store.open();
      try {
        const lease = await batch(store, 'b1');
        const ranges = store.ranges!;
        expect(
          await ranges.offer('b1', offer([0, 1, 2]), { ...lease, epoch: lease.epoch + 1 }),
        ).toBeUndefined();
        const id = await ranges.offer('b1', offer([0, 1, 2]), lease);
        expect(id).toBeGreaterThan(0);
        const [a, b] = await Promise.all([
          ranges.claim('h1', { jobs: ['j'] }, 60_000, 5),
          ranges.claim('h2', { jobs: ['j'] }, 60_000, 5),
        ]);
        expect([...a!, ...b!].map((r) => r.id)).toEqual([id]);
        expect(await ranges.claim('h3', { jobs: ['j'] }, 60_000, 5)).toEqual([]);
        expect(await ranges.claim('h3', { jobs: ['other'] }, 60_000, 5)).toEqual([]);
        const [held] = [...a!, ...b!];
        expect(held).toMatchObject({ batchId: 'b1', job: 'j', attempt: 1, members: [0, 1, 2], epoch: 1 });
        expect(await ranges.renew([held!], 60_000)).toEqual([id]);
        // `offeredBy` keeps an engine that does not help to its own ranges.
        const other = await ranges.offer('b1', { ...offer([3]), offeredBy: 'someone' }, lease);
        expect(await ranges.claim('h3', { jobs: ['j'], offeredBy: 'owner' }, 60_000, 5)).toEqual([]);
        expect((await ranges.claim('h3', { jobs: ['j'], offeredBy: 'someone' }, 60_000, 5))[0]?.id).toBe(
          other,
        );
      } finally {
        await store.close();
      }
    });

    it('an expired hold passes on with its staged answers; the old holder writes nothing more', async () => {
      const store = open();
      await store.open();
      try {
        const lease = await batch(store, 'b2');
        const ranges = store.ranges!;
        const id = (await ranges.offer('b2', offer([3, 4, 5]), lease))!;
        const [first] = await ranges.claim('h1', { jobs: ['j'] }, 100, 1);
        expect(await ranges.answer(first!, [{ member: 1, answer: ok('b') }], false)).toBe(true);
        expect(await ranges.answered([id])).toEqual([]); // not complete
        // h1 stalls past its hold: h2 claims the range, seeing member 1 answered.
        let second: Awaited<ReturnType<typeof ranges.claim>>[number] | undefined;
        while (!second) [second] = await ranges.claim('h2', { jobs: ['j'] }, 60_000, 1);
        expect(second).toMatchObject({ id, epoch: 2, answered: [1] });
        expect(await ranges.answer(first!, [{ member: 0, answer: ok('stale') }], true)).toBe(false);
        expect(await ranges.renew([first!], 60_000)).toEqual([]);
        expect(await ranges.answer(second, [{ member: 0, answer: ok('a') }], false)).toBe(true);
        expect(await ranges.answer(second, [{ member: 2, answer: ok('c') }], true)).toBe(true);
        expect(await ranges.answered([id])).toEqual([{ id, answers: [ok('a'), ok('b'), ok('c')] }]);
        // Answered: nobody claims it again.
        expect(await ranges.claim('h3', { jobs: ['j'] }, 60_000, 5)).toEqual([]);
      } finally {
        await store.close();
      }
    });

    it('a new owner withdraws the ranges of earlier epochs; a withdrawn range takes no answer', async () => {
      const store = open();
      await store.open();
      try {
        const lease = await batch(store, 'b3');
        const ranges = store.ranges!;
        const old = (await ranges.offer('b3', offer([0, 1]), lease))!;
        const [held] = await ranges.claim('h1', { jobs: ['j'] }, 60_000, 1);
        await store.releaseLease('b3', lease);
        const next = (await store.acquireLease('b3', 'owner2', 60_000))!;
        await expect(store.appendOutcomes('b3', [], lease)).rejects.toBeInstanceOf(LeaseLostError);
        expect(await ranges.offer('b3', offer([2]), lease)).toBeUndefined();
        const fresh = (await ranges.offer('b3', offer([2]), next))!;
        await ranges.withdraw('b3', { belowEpoch: next.epoch });
        expect(
          await ranges.answer(
            held!,
            [
              { member: 0, answer: ok(0) },
              { member: 1, answer: ok(1) },
            ],
            true,
          ),
        ).toBe(false);
        expect(await ranges.answered([old])).toEqual([]);
        const [claimed] = await ranges.claim('h2', { jobs: ['j'] }, 60_000, 5);
        expect(claimed?.id).toBe(fresh);
        await ranges.withdraw('b3');
        expect(await ranges.claim('h3', { jobs: ['j'] }, 1, 5)).toEqual([]);
      } finally {
        await store.close();
      }
    });

    it('a redrive withdraws the ranges its batch still had: none is claimed while it waits QUEUED', async () => {
      // A range left at the end (the owner died after its final state, before withdrawing it): not
      // claimable while the batch is final, but the redrive makes the batch QUEUED under the same
      // lease epoch, and a helper would have re-run members that had succeeded.
      const store = open();
      await store.open();
      try {
        const lease = await batch(store, 'b4');
        const ranges = store.ranges!;
        const answered = (await ranges.offer('b4', offer([0, 1]), lease))!;
        const [held] = await ranges.claim('h1', { jobs: ['j'] }, 60_000, 1);
        const answers = [0, 1].map((member) => ({ member, answer: ok(member) }));
        expect(await ranges.answer(held!, answers, true)).toBe(true);
        await ranges.offer('b4', offer([2, 3]), lease); // offered, never claimed
        await store.saveState('b4', state('PARTIAL', 0), lease);
        expect(await ranges.claim('h2', { jobs: ['j'] }, 60_000, 5)).toEqual([]);
        expect(await store.redrive('b4', state('QUEUED', 0), 1)).toBe(true);
        expect(await ranges.claim('h2', { jobs: ['j'] }, 60_000, 5)).toEqual([]);
        expect(await ranges.answered([answered])).toEqual([]);
      } finally {
        await store.close();
      }
    });
  });

  it(`${kind}: the lease history lists every lease taken, not renewals or releases`, async () => {
    const store = open();
    await store.open();
    try {
      await store.createBatch(record('h1', 1), [{ key: 'k', payload: 1 }]);
      const before = Date.now();
      const first = (await store.acquireLease('h1', 'a', 60_000))!;
      await store.renewLease('h1', first, 60_000);
      await store.releaseLease('h1', first);
      const second = (await store.acquireLease('h1', 'b', 60_000))!;
      expect(await store.acquireLease('h1', 'c', 60_000)).toBeUndefined();
      const history = await store.leaseHistory!('h1');
      expect(history.map((h) => [h.owner, h.epoch])).toEqual([
        ['a', first.epoch],
        ['b', second.epoch],
      ]);
      for (const h of history) expect(Math.abs(h.takenAt - before)).toBeLessThan(60_000);
      expect(history[0]!.takenAt).toBeLessThanOrEqual(history[1]!.takenAt);
    } finally {
      await store.close();
    }
  });
}
