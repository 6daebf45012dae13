import { describe, expect, it } from 'vitest';
import { collect, items, noopJob, scriptedJob, startEngine } from './helpers.js';

describe('worker failures fail only their partition', () => {
  it('a busy-looping partition times out, fails alone, and the next batch runs fine', async () => {
    const engine = await startEngine({ jobs: [scriptedJob({ timeoutMs: 1000 }), noopJob()] });
    // Warm the threads first, so that thread start-up on a loaded machine never counts against a timeout.
    await engine.wait((await engine.submit('scripted', { items: items('ok', 8, 'warm') })).id);
    const batch = await engine.submit('scripted', { items: [...items('ok', 3), ...items('busy', 1)] });
    const summary = await engine.wait(batch.id);
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 3, failed: 1 });
    expect(summary.failures[0]).toMatchObject({
      key: 'busy-0',
      error: { name: 'TimeoutError', code: 'TIMEOUT' },
    });
    const next = await engine.wait((await engine.submit('noop', { n: 50 })).id);
    expect(next).toMatchObject({ status: 'COMPLETED', succeeded: 50 });
  });

  it('process.exit, an uncaught error outside the handler and exceeding resourceLimits each fail one partition', async () => {
    const engine = await startEngine({
      jobs: [scriptedJob({ concurrency: 4 })],
      workers: { maxThreads: 2, resourceLimits: { maxOldGenerationSizeMb: 32 } },
    });
    const batch = await engine.submit('scripted', {
      items: [...items('ok', 4), ...items('exit', 1), ...items('throw-outside', 1), ...items('oom', 1)],
    });
    const summary = await engine.wait(batch.id);
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 4, failed: 3 });
    for (const f of summary.failures) expect(f.error.code).toBe('WORKER_CRASHED');
    expect(summary.failures.map((f) => f.key).sort()).toEqual(['exit-0', 'oom-0', 'throw-outside-0']);
  });

  it('threads that cannot even start (resourceLimits too small) fail every partition with WORKER_CRASHED instead of leaving the batch PROCESSING for ever', async () => {
    // An outside probe: with 1 to 4 MB the first partition failed and the others waited for a
    // thread that never came (Piscina starts none once one died before taking a task).
    const engine = await startEngine({
      jobs: [scriptedJob({ concurrency: 3, batching: false, retry: { attempts: 2, backoffMs: 1 } })],
      workers: { maxThreads: 1, resourceLimits: { maxOldGenerationSizeMb: 2 } },
    });
    const batch = await engine.submit('scripted', { items: items('ok', 3) });
    const summary = await engine.wait(batch.id);
    expect(summary).toMatchObject({ status: 'FAILED', succeeded: 0, failed: 3 });
    for (const f of summary.failures)
      expect(f).toMatchObject({
        attempts: 2,
        error: { code: 'WORKER_CRASHED', message: expect.stringMatching(/memory/) },
      });
  });

  it('a rejection a handler left behind after it answered fails nothing; one while it runs fails that partition alone', async () => {
    // An outside probe: the leaked rejection killed the thread after its partition had succeeded,
    // and the partition the pool had just handed that thread failed WORKER_CRASHED in its place.
    const engine = await startEngine({
      jobs: [scriptedJob({ concurrency: 1, batching: false, retry: { attempts: 1 } })],
      workers: { maxThreads: 1 },
    });
    const sleeps = Array.from({ length: 3 }, (_, i) => ({ key: `sleep-${i}`, mode: 'sleep', ms: 30 }));
    const batch = await engine.submit('scripted', {
      items: [
        ...items('leak-rejection', 1),
        ...sleeps,
        ...items('reject-while-running', 1),
        ...sleeps.map((s) => ({ ...s, key: `${s.key}-after` })),
      ],
    });
    const summary = await engine.wait(batch.id);
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 7, failed: 1 });
    expect(summary.failures[0]).toMatchObject({
      key: 'reject-while-running-0',
      error: { code: 'WORKER_CRASHED', message: expect.stringMatching(/rejected while running/) },
    });
  });

  it('ctx.progress with values that cannot cross threads is ignored, not thrown into the handler', async () => {
    // An outside probe: a symbol, a function, an object threw DataCloneError (inline, ignored).
    const engine = await startEngine({ jobs: [scriptedJob({ retry: { attempts: 1 } })] });
    const summary = await engine.wait(
      (await engine.submit('scripted', { items: items('progress-odd', 2) })).id,
    );
    expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: 2 });
  });

  it('retries with backoff until a later attempt succeeds, and records the attempt count', async () => {
    const engine = await startEngine({ jobs: [scriptedJob({ retry: { attempts: 3, backoffMs: 10 } })] });
    const batch = await engine.submit('scripted', { items: [{ key: 'flaky', mode: 'flaky', succeedOn: 3 }] });
    const summary = await engine.wait(batch.id);
    expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: 1 });
    const [p] = await collect(engine.partitions(batch.id));
    expect(p).toMatchObject({ key: 'flaky', status: 'succeeded', attempts: 3, result: { rows: 3 } });
  });

  it('gives up after the last attempt with the last error', async () => {
    const engine = await startEngine({ jobs: [scriptedJob({ retry: { attempts: 2, backoffMs: 1 } })] });
    const batch = await engine.submit('scripted', { items: items('fail', 1) });
    const summary = await engine.wait(batch.id);
    expect(summary.failures[0]).toMatchObject({ key: 'fail-0', attempts: 2, error: { code: 'E_SCRIPTED' } });
  });

  it('a result that fails its schema fails the partition with RESULT_INVALID, without retry', async () => {
    const engine = await startEngine({ jobs: [scriptedJob({ retry: { attempts: 3, backoffMs: 1 } })] });
    const batch = await engine.submit('scripted', { items: [...items('ok', 1), ...items('bad-result', 1)] });
    const summary = await engine.wait(batch.id);
    expect(summary.failures[0]).toMatchObject({
      key: 'bad-result-0',
      attempts: 1,
      error: { code: 'RESULT_INVALID' },
    });
  });

  it('handlers get batchId, key, attempt, idempotencyKey and redelivered', async () => {
    const engine = await startEngine({ jobs: [scriptedJob()] });
    const batch = await engine.submit(
      'scripted',
      { items: [{ key: 'c1', mode: 'ctx' }] },
      { id: 'ctx-batch' },
    );
    await engine.wait(batch.id);
    const [p] = await collect(engine.partitions('ctx-batch'));
    expect(p!.result).toEqual({
      rows: 1,
      ctx: {
        batchId: 'ctx-batch',
        key: 'c1',
        attempt: 1,
        idempotencyKey: 'ctx-batch:c1',
        redelivered: false,
      },
    });
  });
});

describe('cancel', () => {
  it('stops in-flight work within a second and ends CANCELLED with the counts so far', async () => {
    const engine = await startEngine({ jobs: [scriptedJob({ concurrency: 2 }), noopJob()] });
    const batch = await engine.submit('scripted', { items: [...items('busy', 2), ...items('ok', 20)] });
    await new Promise<void>((resolve) => {
      const off = engine.subscribe(batch.id, (s) => {
        if (s.running === 2) {
          // Deferred: this listener may run inside subscribe(), before `off` is assigned.
          queueMicrotask(() => off());
          resolve();
        }
      });
    });
    const t0 = performance.now();
    const summary = await engine.cancel(batch.id, 'operator asked');
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(summary).toMatchObject({
      status: 'CANCELLED',
      running: 0,
      error: { code: 'CANCELLED', message: 'operator asked' },
    });
    expect(summary.succeeded + summary.failed + summary.pending).toBe(22);
    // The pool replaced the terminated threads: the next batch runs.
    expect((await engine.wait((await engine.submit('noop', { n: 10 })).id)).status).toBe('COMPLETED');
  });

  it('cancelling a queued batch ends it at once; cancelling a final batch returns it unchanged', async () => {
    const engine = await startEngine({ jobs: [scriptedJob({ concurrency: 1 })], maxConcurrentBatches: 1 });
    const first = await engine.submit('scripted', { items: items('hang', 1) });
    const second = await engine.submit('scripted', { items: items('ok', 1) });
    expect((await engine.get(second.id)).status).toBe('QUEUED');
    expect(await engine.cancel(second.id)).toMatchObject({ status: 'CANCELLED', pending: 1 });
    await engine.cancel(first.id);
    expect((await engine.cancel(second.id)).status).toBe('CANCELLED');
  });
});
