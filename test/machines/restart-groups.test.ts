import { describe, expect, it } from 'vitest';
import type { Snapshot } from 'xstate';
import type { ReplayedOutcome } from '../../src/machines/batch.js';
import { recordedBatch, succeeded } from '../support/recorded-batch.js';

// What a restart does with the groups that were in flight (docs/architecture.md, "Item batching"):
// a group at its first attempt comes back whole, at the next attempt; one interrupted again comes
// back one member at a time. Outcomes journaled after the snapshot are taken out of either. The
// three-host distribute test found the cost of the old way: after a takeover, every member of every
// range in flight went back alone, a range of one each, and the batch crawled.

const input = {
  batchId: 'b',
  job: 'j',
  total: 12,
  concurrency: 2,
  maxAttempts: 3,
  backoffMs: 0,
  maxBackoffMs: 0,
  batching: { maxItems: 4, auto: false },
};

/** A process: the batch machine with its side effects recorded, started fresh or from a stored snapshot. */
function processOf(stored?: string, batching: typeof input.batching & { ranges?: boolean } = input.batching) {
  const snapshot = stored ? (JSON.parse(stored) as Snapshot<unknown>) : undefined;
  const { actor, dispatched } = recordedBatch({ ...input, batching }, { snapshot });
  /** What the runtime stores: the persisted snapshot without its children. */
  const store = () => {
    const { children: _children, ...rest } = actor.getPersistedSnapshot() as Record<string, unknown>;
    actor.stop();
    return JSON.stringify({ ...rest, children: {} });
  };
  const resume = (replay: ReplayedOutcome[] = []) => actor.send({ type: 'RESUME', replay });
  const loaded = (n: number) => actor.send({ type: 'PARTITIONS.LOADED', loaded: n });
  return { actor, dispatched, store, resume, loaded };
}

describe('groups in flight at a restart', () => {
  it('come back whole at their next attempt, without the members journaled after the snapshot', () => {
    const first = processOf();
    first.actor.send({ type: 'ADMIT', at: 'now' });
    first.loaded(12);
    expect(first.dispatched).toEqual([
      { lane: 0, index: 0, attempt: 1, redelivered: false, more: [1, 2, 3] },
      { lane: 1, index: 4, attempt: 1, redelivered: false, more: [5, 6, 7] },
    ]);
    const second = processOf(first.store());
    second.resume([succeeded(5)]); // journaled after the snapshot: counted, not run again
    expect(second.dispatched).toEqual([
      { lane: 0, index: 0, attempt: 2, redelivered: true, more: [1, 2, 3] },
      { lane: 1, index: 4, attempt: 2, redelivered: true, more: [6, 7] },
    ]);
    expect(second.actor.getSnapshot().context.succeeded).toBe(1);
  });

  it('a group waiting to be redelivered loses the members journaled before the next restart', () => {
    const first = processOf();
    first.actor.send({ type: 'ADMIT', at: 'now' });
    first.loaded(12);
    first.actor.send({ type: 'PAUSE' });
    // Paused: lanes come back, nothing is dispatched, the groups wait in `redeliver`.
    const second = processOf(first.store());
    second.resume();
    expect(second.dispatched).toEqual([]);
    expect(second.actor.getSnapshot().context.redeliver).toEqual([
      { index: 0, attempt: 2, more: [1, 2, 3] },
      { index: 4, attempt: 2, more: [5, 6, 7] },
    ]);
    const third = processOf(second.store());
    third.resume([succeeded(2), succeeded(4)]);
    expect(third.actor.getSnapshot().context.redeliver).toEqual([
      { index: 0, attempt: 2, more: [1, 3] },
      { index: 5, attempt: 2, more: [6, 7] },
    ]);
    third.actor.send({ type: 'CONTINUE' });
    expect(third.dispatched).toEqual([
      { lane: 0, index: 0, attempt: 2, redelivered: true, more: [1, 3] },
      { lane: 1, index: 5, attempt: 2, redelivered: true, more: [6, 7] },
    ]);
  });

  it('one that had not begun (stored at attempt 0) comes back whole at the same attempt', () => {
    const first = processOf();
    first.actor.send({ type: 'ADMIT', at: 'now' });
    first.loaded(12);
    // What the runtime stores for a group handed to its lane but not begun (durability.ts).
    const stored = JSON.parse(first.store());
    stored.context.inFlight[1].attempt = 0;
    const second = processOf(JSON.stringify(stored));
    second.resume();
    expect(second.dispatched).toEqual([
      { lane: 0, index: 0, attempt: 2, redelivered: true, more: [1, 2, 3] },
      { lane: 1, index: 4, attempt: 1, redelivered: true, more: [5, 6, 7] },
    ]);
  });

  it('interrupted again, come back one member at a time', () => {
    const first = processOf();
    first.actor.send({ type: 'ADMIT', at: 'now' });
    first.loaded(12);
    const second = processOf(first.store());
    second.resume();
    expect(second.dispatched.map((d) => d.attempt)).toEqual([2, 2]);
    const third = processOf(second.store());
    third.resume();
    // Two lanes: the first two members run, the other six wait their turn, each alone.
    expect(third.dispatched).toEqual([
      { lane: 0, index: 0, attempt: 3, redelivered: true },
      { lane: 1, index: 1, attempt: 3, redelivered: true },
    ]);
    expect(third.actor.getSnapshot().context.redeliver.map((r) => [r.index, r.attempt, r.more])).toEqual(
      [2, 3, 4, 5, 6, 7].map((i) => [i, 3, undefined]),
    );
  });

  it("a distributed batch's ranges come back whole however often they were interrupted", () => {
    const ranges = { ...input.batching, ranges: true };
    const first = processOf(undefined, ranges);
    first.actor.send({ type: 'ADMIT', at: 'now' });
    first.loaded(12);
    const second = processOf(first.store(), ranges);
    second.resume();
    const third = processOf(second.store(), ranges);
    third.resume();
    expect(third.dispatched).toEqual([
      { lane: 0, index: 0, attempt: 3, redelivered: true, more: [1, 2, 3] },
      { lane: 1, index: 4, attempt: 3, redelivered: true, more: [5, 6, 7] },
    ]);
  });
});
