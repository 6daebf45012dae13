import { describe, expect, it } from 'vitest';
import type { AnyActorRef } from 'xstate';
import { type BatchConfig, nextGroupSize, POOL_GROUP_TARGET_MS } from '../../src/machines/batch.js';
import { plainInput, recordedBatch } from '../support/recorded-batch.js';

// `'auto'` group sizing (docs/guide.md, "Item batching"), pure: from one full group's work time.

const config = (over: Partial<BatchConfig> = {}) =>
  ({ timeoutMs: undefined, batching: { maxItems: 64, auto: true }, ...over }) as BatchConfig;

/** The sizes a batch goes through when every member's work takes `perMs`. */
function sizes(perMs: number, c = config(), steps = 5): number[] {
  const out = [1];
  for (let i = 0; i < steps; i++) {
    const size = out.at(-1)!;
    out.push(nextGroupSize(c, size, perMs * size, size));
  }
  return out;
}

describe("'auto' group size", () => {
  it('grows 2 × to 8 × a step toward what fits 2 ms (an inline handler), and stops at maxItems', () => {
    expect(sizes(0.005)).toEqual([1, 8, 64, 64, 64, 64]);
    expect(sizes(0.1)).toEqual([1, 8, 20, 20, 20, 20]);
    expect(sizes(0.6)).toEqual([1, 3, 6, 6, 6, 6]); // at least doubled while under 2 ms: 3.6 ms, kept
    expect(sizes(0.005, config({ batching: { maxItems: 10, auto: true } as never }))).toEqual([
      1, 8, 10, 10, 10, 10,
    ]);
  });

  it('never groups a partition of a few milliseconds or more, and shrinks above twice the target', () => {
    expect(sizes(2.5)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(sizes(1000)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(nextGroupSize(config(), 64, 64 * 0.5, 64)).toBe(4); // 32 ms of work: what fits 2 ms
  });

  it('grows only after a full group, keeps a group within a quarter of timeoutMs, and leaves fixed groups alone', () => {
    expect(nextGroupSize(config(), 8, 0.01, 3)).toBe(8); // the batch's tail: a smaller group says little
    expect(sizes(0.005, config({ timeoutMs: 1 }))).toEqual([1, 8, 50, 50, 50, 50]);
    expect(nextGroupSize(config({ batching: { maxItems: 16, auto: false } as never }), 16, 0.01, 16)).toBe(
      16,
    );
    expect(nextGroupSize(config(), 4, undefined, 4)).toBe(4);
  });

  it("aims a worker job's groups at 10 ms: 1 ms partitions grouped by 16, 10 ms never", () => {
    const pool = config({ batching: { maxItems: 64, auto: true, targetMs: POOL_GROUP_TARGET_MS } as never });
    expect(POOL_GROUP_TARGET_MS).toBe(10);
    expect(sizes(0.005, pool)).toEqual([1, 8, 64, 64, 64, 64]);
    expect(sizes(0.5, pool)).toEqual([1, 8, 20, 20, 20, 20]);
    expect(sizes(1, pool)).toEqual([1, 8, 16, 16, 16, 16]); // at least doubled from 8 ms: 16 ms, kept
    expect(sizes(2.5, pool)).toEqual([1, 4, 4, 4, 4, 4]);
    expect(sizes(10, pool)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(nextGroupSize(pool, 64, 64 * 2.5, 64)).toBe(4); // 160 ms of work: what fits 10 ms
  });
});

describe("'auto' groups of a batch whose first partitions fail", () => {
  it('grow from a failure as from a success: its work time counts (a batch failing at its start ran in groups of one)', () => {
    const { actor, dispatched } = recordedBatch(
      plainInput(100, 1, { batching: { maxItems: 64, auto: true } }),
    );
    const sizes = () => dispatched.map((d) => 1 + (d.more?.length ?? 0));
    actor.send({ type: 'ADMIT', at: 'now' });
    actor.send({ type: 'PARTITIONS.LOADED', loaded: 100 });
    // The engine's dispatchPartition (provided as a recorder here) sends the lane its RUN.
    const lane = actor.system.get('lane-0') as AnyActorRef;
    lane.send({ type: 'RUN', index: 0, key: 'k0', attempt: 1, redelivered: false });
    lane.send({
      type: 'WORK.FAILED',
      index: 0,
      attempt: 1,
      error: { name: 'Error', message: 'no' },
      retryable: true,
      durationMs: 0.02,
      workMs: 0.01,
    });
    expect(sizes()).toEqual([1, 8]);
    expect(actor.getSnapshot().context).toMatchObject({ failed: 1, groupSize: 8 });
    actor.stop();
  });
});
