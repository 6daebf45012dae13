import { describe, expect, it } from 'vitest';
import { type AnyActorRef, toPromise } from 'xstate';
import { type Dispatched, plainInput, recordedBatch } from '../support/recorded-batch.js';

// Lanes cost O(lanes) to start and to finish (docs/architecture.md, "Lanes."): spawned in one
// `assign`, retired one by one as the batch runs out of partitions, and taken out of the batch's
// children all at once at its final state (src/machines/stop-lanes.ts). These tests check the
// mechanism, not the time: bench/lanes.mjs measures that.

function batch(total: number, concurrency: number, groups?: number) {
  const { actor, dispatched } = recordedBatch(
    plainInput(total, concurrency, groups ? { batching: { maxItems: groups, auto: false } } : {}),
    { finalize: true },
  );
  const lane = (n: number) => actor.getSnapshot().children[`lane-${n}`] as AnyActorRef;
  /** Start a dispatched partition on its lane; returns what finishes it (WORK.DONE). */
  const run = (p: Dispatched) => {
    const ref = actor.system.get(`lane-${p.lane}`) as AnyActorRef;
    const members = p.more && [p.index, ...p.more].map((i) => ({ index: i, key: `k${i}` }));
    ref.send({
      type: 'RUN',
      index: p.index,
      key: `k${p.index}`,
      attempt: p.attempt,
      redelivered: false,
      members,
    });
    return () =>
      ref.send({ type: 'WORK.DONE', index: p.index, attempt: p.attempt, result: null, durationMs: 0 });
  };
  return { actor, dispatched, lane, run };
}

describe('lane lifecycle', () => {
  it('spawns every lane as a child of the batch actor, registered in its system', () => {
    const { actor, lane } = batch(10, 4);
    actor.send({ type: 'ADMIT', at: 'now' });
    const children = actor.getSnapshot().children;
    expect(Object.keys(children)).toEqual(['lane-0', 'lane-1', 'lane-2', 'lane-3']);
    for (let n = 0; n < 4; n++) {
      expect(lane(n).getSnapshot().status).toBe('active');
      expect(actor.system.get(`lane-${n}`)).toBe(lane(n));
    }
    // Back from `paused`, the same lanes: none spawned again.
    const before = { ...children };
    actor.send({ type: 'PAUSE' });
    actor.send({ type: 'CONTINUE' });
    expect(actor.getSnapshot().children).toEqual(before);
    actor.stop();
  });

  it('retires a lane when nothing is left for it, never while it holds a partition', async () => {
    const { actor, dispatched, lane, run } = batch(3, 2);
    actor.send({ type: 'ADMIT', at: 'now' });
    actor.send({ type: 'PARTITIONS.LOADED', loaded: 3 });
    const [p0, p1] = dispatched;
    const finish0 = run(p0!);
    const finish1 = run(p1!);
    finish0(); // lane 0 takes the last partition: not retired
    expect(dispatched).toHaveLength(3);
    expect(lane(0).getSnapshot().status).toBe('active');
    const finish2 = run(dispatched[2]!);
    finish1(); // nothing left: lane 1 retires while lane 0 still runs
    expect((lane(1).getSnapshot() as { value: unknown }).value).toBe('retired');
    expect(lane(1).getSnapshot().status).toBe('done');
    expect(actor.system.get('lane-1')).toBeUndefined();
    expect(actor.getSnapshot().value).toBe('processing');
    const lanes = Object.values(actor.getSnapshot().children) as AnyActorRef[];
    finish2();
    await toPromise(actor);
    expect(actor.getSnapshot().value).toBe('completed');
    expect(lanes.map((l) => l.getSnapshot().status)).toEqual(['done', 'done']);
  });

  it('does not retire the one lane of a one-partition batch: its final state stops it, two events fewer', async () => {
    const { actor, dispatched, lane, run } = batch(1, 4);
    const events: string[] = [];
    actor.subscribe({ next: () => {} });
    actor.system.inspect({ next: (e) => e.type === '@xstate.event' && events.push(e.event.type) });
    actor.send({ type: 'ADMIT', at: 'now' });
    actor.send({ type: 'PARTITIONS.LOADED', loaded: 1 });
    const only = lane(0);
    run(dispatched[0]!)();
    await toPromise(actor);
    expect(actor.getSnapshot().value).toBe('completed');
    expect(events).not.toContain('RETIRE');
    expect(events.filter((t) => t.startsWith('xstate.done.actor'))).toEqual([]);
    expect(only.getSnapshot().status).toBe('stopped');
    expect(actor.getSnapshot().children).toEqual({});
  });

  it('takes every lane out of the children at the final state, in one step (stop-lanes.ts ran)', async () => {
    const { actor, dispatched, run } = batch(4, 4);
    actor.send({ type: 'ADMIT', at: 'now' });
    actor.send({ type: 'PARTITIONS.LOADED', loaded: 4 });
    const lanes = Object.values(actor.getSnapshot().children) as AnyActorRef[];
    for (const finish of dispatched.map(run)) finish();
    await toPromise(actor);
    // XState's own stop at a final state leaves the stopped children in the final snapshot; only
    // stopLanes' `resolve` empties the map, so this fails if XState stops calling it.
    expect(actor.getSnapshot().children).toEqual({});
    for (const l of lanes) expect(['done', 'stopped']).toContain(l.getSnapshot().status);
  });

  it('stops running lanes at the final state of a cancel', () => {
    const { actor, dispatched, run } = batch(4, 2);
    actor.send({ type: 'ADMIT', at: 'now' });
    actor.send({ type: 'PARTITIONS.LOADED', loaded: 4 });
    for (const p of dispatched) run(p);
    const lanes = Object.values(actor.getSnapshot().children) as AnyActorRef[];
    actor.send({ type: 'CANCEL', reason: 'test' });
    expect(actor.getSnapshot().value).toBe('cancelled');
    expect(actor.getSnapshot().children).toEqual({});
    for (let n = 0; n < 2; n++) expect(actor.system.get(`lane-${n}`)).toBeUndefined();
    for (const l of lanes) expect(l.getSnapshot().status).toBe('stopped');
  });

  it('retires a lane while a group runs on another; if the group comes back, the lanes are back for its members', async () => {
    // Groups of up to 2 over 2 lanes: lane 0 takes [0, 1], lane 1 takes [2].
    const { actor, dispatched, lane, run } = batch(3, 2, 2);
    actor.send({ type: 'ADMIT', at: 'now' });
    actor.send({ type: 'PARTITIONS.LOADED', loaded: 3 });
    expect(dispatched.map((p) => [p.lane, p.index, p.more])).toEqual([
      [0, 0, [1]],
      [1, 2, undefined],
    ]);
    run(dispatched[0]!);
    run(dispatched[1]!)(); // nothing left: lane 1 retires although lane 0 still runs a group
    expect(lane(1).getSnapshot().status).toBe('done');
    expect(actor.system.get('lane-1')).toBeUndefined();
    // The group's task fails as a whole (its thread died): its members come back, one per task.
    (actor.system.get('lane-0') as AnyActorRef).send({
      type: 'WORK.FAILED',
      index: 0,
      attempt: 1,
      error: { name: 'Error', message: 'worker died' },
      retryable: true,
      durationMs: 0,
    });
    expect(actor.system.get('lane-1')).toBeDefined();
    const again = dispatched.slice(2);
    expect(again.map((p) => [p.lane, p.index, p.more])).toEqual([
      [0, 0, undefined],
      [1, 1, undefined],
    ]);
    for (const finish of again.map(run)) finish();
    await toPromise(actor);
    expect(actor.getSnapshot().value).toBe('completed');
    expect(actor.getSnapshot().context.succeeded).toBe(3);
  });
});
