import { describe, expect, it } from 'vitest';
import { defineJob } from '../src/index.js';
import { items, noopJob, scriptedJob, startEngine } from './helpers.js';

/** An inline job whose partitions wait until the test releases them: admission order becomes visible. */
function gatedJob() {
  const started: string[] = [];
  const gates: Array<() => void> = [];
  const job = defineJob({
    name: 'gated',
    partition: (input: { tag: string }) => [{ key: input.tag, payload: input.tag }],
    handler: (tag: string) =>
      new Promise((resolve) => {
        started.push(tag);
        gates.push(() => resolve(tag));
      }),
  });
  const releaseNext = () => gates.shift()?.();
  return { job, started, releaseNext };
}

const until = (check: () => boolean) =>
  new Promise<void>((resolve) => {
    const tick = () => (check() ? resolve() : setImmediate(tick));
    tick();
  });

describe('admission', () => {
  it('runs at most maxConcurrentBatches at once; the rest wait QUEUED and start highest priority first, then oldest', async () => {
    const { job, started, releaseNext } = gatedJob();
    const engine = await startEngine({ jobs: [job], maxConcurrentBatches: 1 });
    const first = await engine.submit('gated', { tag: 'first' });
    await until(() => started.length === 1);
    const low = await engine.submit('gated', { tag: 'low' }, { priority: 0 });
    const highOld = await engine.submit('gated', { tag: 'high-old' }, { priority: 5 });
    const highNew = await engine.submit('gated', { tag: 'high-new' }, { priority: 5 });
    for (const b of [low, highOld, highNew]) expect((await engine.get(b.id)).status).toBe('QUEUED');
    for (let i = 0; i < 4; i++) {
      await until(() => started.length === i + 1);
      releaseNext();
    }
    for (const b of [first, low, highOld, highNew])
      expect((await engine.wait(b.id)).status).toBe('COMPLETED');
    expect(started).toEqual(['first', 'high-old', 'high-new', 'low']);
  });

  it("after + when 'succeeded': the child waits for its parent, then runs", async () => {
    const { job, started, releaseNext } = gatedJob();
    const engine = await startEngine({ jobs: [job], maxConcurrentBatches: 4 });
    const parent = await engine.submit('gated', { tag: 'parent' });
    const child = await engine.submit('gated', { tag: 'child' }, { after: [parent.id] });
    await until(() => started.length === 1);
    expect((await engine.get(child.id)).status).toBe('QUEUED');
    releaseNext();
    await until(() => started.length === 2);
    releaseNext();
    expect((await engine.wait(child.id)).status).toBe('COMPLETED');
    expect(started).toEqual(['parent', 'child']);
  });

  it("a parent that does not succeed cancels a 'succeeded' child, naming the parent; 'settled' runs anyway", async () => {
    const engine = await startEngine({ jobs: [scriptedJob()] });
    const parent = await engine.submit('scripted', { items: items('fail', 2) }, { id: 'parent-fails' });
    const strict = await engine.submit('scripted', { items: items('ok', 1) }, { after: [parent.id] });
    const lenient = await engine.submit(
      'scripted',
      { items: items('ok', 1) },
      { after: [parent.id], when: 'settled' },
    );
    expect((await engine.wait(parent.id)).status).toBe('FAILED');
    const s = await engine.wait(strict.id);
    expect(s.status).toBe('CANCELLED');
    expect(s.error?.message).toContain('parent-fails');
    expect((await engine.wait(lenient.id)).status).toBe('COMPLETED');
    // A parent that is already final when the child is submitted decides at once.
    const late = await engine.submit('scripted', { items: items('ok', 1) }, { after: [parent.id] });
    expect((await engine.wait(late.id)).status).toBe('CANCELLED');
  });

  it('multi-parent: waits for all parents', async () => {
    const { job, started, releaseNext } = gatedJob();
    const engine = await startEngine({ jobs: [job], maxConcurrentBatches: 4 });
    const a = await engine.submit('gated', { tag: 'a' });
    const b = await engine.submit('gated', { tag: 'b' });
    const child = await engine.submit('gated', { tag: 'child' }, { after: [a.id, b.id] });
    await until(() => started.length === 2);
    releaseNext();
    await engine.wait(a.id);
    expect((await engine.get(child.id)).status).toBe('QUEUED');
    releaseNext();
    await until(() => started.length === 3);
    releaseNext();
    expect((await engine.wait(child.id)).status).toBe('COMPLETED');
  });

  it('a large batch does not starve a small batch submitted after it (fair sharing of the pool)', async () => {
    const engine = await startEngine({ jobs: [noopJob(16)], maxConcurrentBatches: 2 });
    const big = await engine.submit('noop', { n: 20_000 });
    const small = await engine.submit('noop', { n: 10 });
    const smallDone = await engine.wait(small.id);
    const bigNow = await engine.get(big.id);
    expect(smallDone.status).toBe('COMPLETED');
    // When the small batch is done, the big one is far from done.
    expect(bigNow.progress).toBeLessThan(0.5);
    expect((await engine.wait(big.id)).succeeded).toBe(20_000);
  });
  it("a 'settled' dependent let go by its parent's end waits again while that parent runs again after retryFailed (outside probe: it was admitted meanwhile)", async () => {
    // The parent fails its first run and succeeds its second, which waits for the test.
    let runs = 0;
    let releaseRetry!: () => void;
    const retryGate = new Promise<void>((resolve) => {
      releaseRetry = resolve;
    });
    const parentJob = defineJob({
      name: 'parent',
      partition: () => [{ key: 'only', payload: 1 }],
      handler: async () => {
        runs++;
        if (runs === 1) throw new Error('first run fails');
        await retryGate;
        return 'ok';
      },
    });
    const { job, started, releaseNext } = gatedJob();
    const engine = await startEngine({ jobs: [parentJob, job], maxConcurrentBatches: 2 });
    const parent = await engine.wait((await engine.submit('parent', 1, { id: 'p' })).id);
    expect(parent.status).toBe('FAILED');
    // Both slots taken; the dependent is ready (its parent ended) but waits for a slot.
    const b1 = await engine.submit('gated', { tag: 'b1' });
    const b2 = await engine.submit('gated', { tag: 'b2' });
    const dep = await engine.submit('gated', { tag: 'dep' }, { after: ['p'], when: 'settled' });
    await engine.retryFailed('p');
    // The first slot freed goes to the parent (the oldest), the second would go to the dependent.
    await until(() => started.length === 2);
    releaseNext();
    await engine.wait(b1.id);
    await until(() => runs === 2);
    releaseNext();
    await engine.wait(b2.id);
    expect((await engine.get(dep.id)).status).toBe('QUEUED');
    releaseRetry();
    const again = await engine.wait('p');
    expect(again).toMatchObject({ status: 'COMPLETED', run: 2 });
    await until(() => started.length === 3);
    releaseNext();
    const done = await engine.wait(dep.id);
    expect(done.status).toBe('COMPLETED');
    expect(done.startedAt! >= again.finishedAt!).toBe(true);
  });
});
