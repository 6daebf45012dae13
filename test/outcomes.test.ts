import { describe, expect, it } from 'vitest';
import { decideOutcome } from '../src/index.js';
import { inlineNoopJob, items, noopJob, scriptedJob, startEngine } from './helpers.js';

const inlineNoop = inlineNoopJob(256);

// The incidents of seeds 000-003 (docs/guarantees.md), on real worker threads.
describe('exact outcomes', () => {
  // A worker job's batch runs at most four lanes per pool thread (8 here); an inline handler's
  // batch runs all 256, each waiting for I/O, so that outcomes settle wide and interleaved.
  it.each([
    ['worker threads (8 lanes on 2 threads)', 'noop'],
    ['an inline handler (256 lanes)', 'inline-noop'],
  ])(
    '(a) 1,037 partitions at concurrency 256 on %s: counts exact, progress never goes back and ends at 1 (seeds 000, 001)',
    async (_name, job) => {
      const engine = await startEngine({ jobs: [noopJob(256), inlineNoop] });
      const batch = await engine.submit(job, { n: 1037 });
      const seen: number[] = [];
      let invariantBroken = false;
      engine.subscribe(batch.id, (s) => {
        seen.push(s.progress);
        if (s.succeeded + s.failed + s.running + s.pending !== s.total) invariantBroken = true;
      });
      const summary = await engine.wait(batch.id);
      expect(summary).toMatchObject({
        status: 'COMPLETED',
        total: 1037,
        succeeded: 1037,
        failed: 0,
        running: 0,
        pending: 0,
        progress: 1,
      });
      expect(invariantBroken).toBe(false);
      for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThanOrEqual(seen[i - 1]!);
      expect(seen.at(-1)).toBe(1);
      expect(seen.length).toBeGreaterThan(10); // progress was reported along the way
      expect(await engine.recount(batch.id)).toEqual({ total: 1037, succeeded: 1037, failed: 0 });
    },
  );

  it('(b) the last outcome alone finalizes the batch: no further event, timer or poll (seed 002)', async () => {
    const engine = await startEngine({ jobs: [scriptedJob({ concurrency: 2 })] });
    const batch = await engine.submit('scripted', { items: items('ok', 5) });
    const statuses: string[] = [];
    let lastSettledAt = -1;
    engine.subscribe(batch.id, (s) => {
      statuses.push(s.status);
      if (s.succeeded === s.total && lastSettledAt < 0) lastSettledAt = statuses.length;
    });
    const summary = await engine.wait(batch.id);
    expect(summary.status).toBe('COMPLETED');
    // The change that counted the last outcome already shows FINALIZING: the eventless transition
    // fired while handling that outcome.
    expect(statuses[lastSettledAt - 1]).toBe('FINALIZING');
    expect(statuses.at(-1)).toBe('COMPLETED');
  });

  it('(c) all partitions failing gives FAILED (seed 003)', async () => {
    const engine = await startEngine({ jobs: [scriptedJob()] });
    const batch = await engine.submit('scripted', { items: items('fail', 6) });
    const summary = await engine.wait(batch.id);
    expect(summary).toMatchObject({
      status: 'FAILED',
      succeeded: 0,
      failed: 6,
      errorSummary: '6 of 6 partitions failed',
    });
    expect(summary.failures).toHaveLength(6);
  });

  it('(c) some failing gives PARTIAL with the failed keys and errors listed (seed 003)', async () => {
    const engine = await startEngine({ jobs: [scriptedJob()] });
    const batch = await engine.submit('scripted', { items: [...items('ok', 7), ...items('fail', 3)] });
    const summary = await engine.wait(batch.id);
    expect(summary).toMatchObject({
      status: 'PARTIAL',
      succeeded: 7,
      failed: 3,
      errorSummary: '3 of 10 partitions failed',
    });
    expect(summary.failures.map((f) => f.key).sort()).toEqual(['fail-0', 'fail-1', 'fail-2']);
    expect(summary.failures[0]!.error).toMatchObject({
      name: 'Error',
      code: 'E_SCRIPTED',
      message: expect.stringContaining('failed'),
    });
    // The sample stays small (no stack); the whole error is stored with the partition.
    expect(summary.failures[0]!.error.stack).toBeUndefined();
    const failed = [];
    for await (const p of engine.partitions(batch.id, { status: 'failed' })) failed.push(p);
    expect(failed.map((p) => p.key)).toEqual(['fail-0', 'fail-1', 'fail-2']);
    expect(failed[0]).toMatchObject({ status: 'failed', attempts: 1, error: { code: 'E_SCRIPTED' } });
    expect(failed[0]!.error!.stack).toContain('scripted.mjs');
    const ok = [];
    for await (const p of engine.partitions(batch.id, { status: 'succeeded' })) ok.push(p);
    expect(ok).toHaveLength(7);
    expect(ok[0]!.result).toEqual({ rows: 1 });
  });

  it('(c) failurePolicy turns a partial batch into FAILED', async () => {
    const engine = await startEngine({ jobs: [scriptedJob({ failurePolicy: { maxFailures: 1 } })] });
    const batch = await engine.submit('scripted', { items: [...items('ok', 8), ...items('fail', 2)] });
    const summary = await engine.wait(batch.id);
    expect(summary.status).toBe('FAILED');
    expect(summary.status).toBe(decideOutcome(summary, { maxFailures: 1 }));
  });

  it('(d) an empty batch completes', async () => {
    const engine = await startEngine({ jobs: [noopJob()] });
    const batch = await engine.submit('noop', { n: 0 });
    const summary = await engine.wait(batch.id);
    expect(summary).toMatchObject({ status: 'COMPLETED', total: 0, succeeded: 0, failed: 0, progress: 1 });
  });

  it('finalize runs once with the counts; its return is summary.output; a throwing finalizer gives FAILED', async () => {
    let calls = 0;
    const engine = await startEngine({
      jobs: [
        scriptedJob({ finalize: async (s) => ({ calls: ++calls, seen: s.succeeded }) }),
        scriptedJob({
          name: 'bad-final',
          finalize: async () => {
            throw new Error('report upload failed');
          },
        }),
      ],
    });
    const ok = await engine.wait((await engine.submit('scripted', { items: items('ok', 4) })).id);
    expect(ok).toMatchObject({ status: 'COMPLETED', output: { calls: 1, seen: 4 } });
    const bad = await engine.wait((await engine.submit('bad-final', { items: items('ok', 2) })).id);
    expect(bad).toMatchObject({ status: 'FAILED', succeeded: 2, error: { message: 'report upload failed' } });
  });

  it('inline handler jobs follow the same contract', async () => {
    const { defineJob } = await import('../src/index.js');
    const job = defineJob({
      name: 'inline',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: async (i: number, ctx) => {
        if (i === 3) throw Object.assign(new Error('no contract'), { code: 'E_CONTRACT' });
        return { i, key: ctx.key, id: ctx.idempotencyKey };
      },
      concurrency: 4,
    });
    const engine = await startEngine({ jobs: [job] });
    const batch = await engine.submit('inline', 6);
    const summary = await engine.wait(batch.id);
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 5, failed: 1 });
    expect(summary.failures[0]).toMatchObject({ key: 'k3', error: { code: 'E_CONTRACT' } });
    const all = [];
    for await (const p of engine.partitions(batch.id)) all.push(p);
    expect(all[0]!.result).toEqual({ i: 0, key: 'k0', id: `${batch.id}:k0` });
  });
});

describe('decideOutcome, the public function', () => {
  it('refuses what is not counts and a failure policy with VALIDATION, not a TypeError', () => {
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return (err as { code?: string }).code;
      }
      return 'no error';
    };
    const counts = { total: 3, succeeded: 2, failed: 1 };
    expect(decideOutcome(counts)).toBe('PARTIAL');
    expect(decideOutcome(counts, { maxFailureRatio: 0.2 })).toBe('FAILED');
    for (const call of [
      () => decideOutcome(undefined as never),
      () => decideOutcome(null as never),
      () => decideOutcome({ total: 3, succeeded: 2 } as never),
      () => decideOutcome({ ...counts, failed: -1 }),
      () => decideOutcome(counts, null as never),
      () => decideOutcome(counts, { maxFailures: 'two' as never }),
      () => decideOutcome(counts, { maxFailureRatio: 2 }),
      () => decideOutcome({ total: 10, succeeded: 8, failed: 5 }), // more settled than there are
    ])
      expect(codeOf(call)).toBe('VALIDATION');
  });
});
