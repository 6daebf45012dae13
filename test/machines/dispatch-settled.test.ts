import { describe, expect, it } from 'vitest';
import { type Dispatched, plainInput, recordedBatch, succeeded } from '../support/recorded-batch.js';

// Dispatch steps over partitions that have an outcome already: a redriven batch's succeeded ones
// (reported `settled` by their page) and outcomes replayed from the journal after a restart. A group
// takes the next pending partitions, not only consecutive ones: a `retryFailed` of a batch whose
// every other partition failed used to run in groups of one (docs/benchmarks.md, "A retry's groups").

/** A batch of `total` partitions on `concurrency` lanes, in fixed groups of `maxItems`. */
function batchOf(total: number, concurrency: number, maxItems: number) {
  const { actor, dispatched } = recordedBatch(
    plainInput(total, concurrency, { batching: { maxItems, auto: false } }),
  );
  /** What was dispatched: lane and members only. */
  const groups = () => dispatched.map(({ lane, index, more }) => ({ lane, index, more }));
  return { actor, dispatched, groups };
}

const membersOf = (d: Dispatched) => [d.index, ...(d.more ?? [])];

describe('dispatch over settled partitions', () => {
  it("a page's settled partitions are stepped over inside a group", () => {
    const { actor, groups } = batchOf(16, 2, 4);
    actor.send({ type: 'ADMIT', at: 'now' });
    actor.send({ type: 'PARTITIONS.LOADED', loaded: 16, settled: [0, 2, 4, 6, 8, 10, 12, 14] });
    expect(groups()).toEqual([
      { lane: 0, index: 1, more: [3, 5, 7] },
      { lane: 1, index: 9, more: [11] }, // 4 pending for 2 lanes: a share each (the tail shrinks)
    ]);
    expect(actor.getSnapshot().context).toMatchObject({ cursor: 12, settledAhead: [12, 14] });
  });

  it('the last groups are shared by the lanes by what is pending, not by what is left of the index range', () => {
    const { actor, dispatched } = batchOf(40, 2, 16);
    actor.send({ type: 'ADMIT', at: 'now' });
    // 8 pending: 0, 5, 10, …, 35. Shared by the 40 indexes left, the first group would take them all.
    const settled = Array.from({ length: 40 }, (_, i) => i).filter((i) => i % 5 !== 0);
    actor.send({ type: 'PARTITIONS.LOADED', loaded: 40, settled });
    expect(dispatched.map(membersOf)).toEqual([
      [0, 5, 10, 15],
      [20, 25],
    ]);
  });

  it('outcomes replayed out of order, then a page: one ascending list, every partition dispatched once', () => {
    const { actor, dispatched } = batchOf(12, 1, 3);
    actor.send({ type: 'ADMIT', at: 'now' });
    // A restart: outcomes journaled after the snapshot come back in the journal's order.
    actor.send({ type: 'RESUME', replay: [succeeded(9), succeeded(4), succeeded(7), succeeded(1)] });
    expect(actor.getSnapshot().context.settledAhead).toEqual([1, 4, 7, 9]);
    actor.send({ type: 'PARTITIONS.LOADED', loaded: 12, settled: [11, 9, 2] });
    expect(actor.getSnapshot().context).toMatchObject({ cursor: 6, settledAhead: [7, 9, 11] });
    const seen: number[] = [];
    for (let guard = 0; guard < 10 && dispatched.length > 0; guard++) {
      const d = dispatched.shift()!;
      seen.push(...membersOf(d));
      actor.send({
        type: 'PARTITIONS.SETTLED',
        lane: d.lane,
        outcomes: membersOf(d).map((index) => ({
          index,
          key: `k${index}`,
          status: 'succeeded',
          attempts: 1,
        })),
      } as never);
    }
    expect(seen).toEqual([0, 3, 5, 6, 8, 10]);
    expect(actor.getSnapshot().context).toMatchObject({ cursor: 12, settledAhead: [] });
    // The page's settled partitions (2 and 11) counted in an earlier run; here, the 4 replayed.
    expect(actor.getSnapshot().context).toMatchObject({ succeeded: 10, failed: 0, running: 0 });
  });
});
