import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../src/index.js';
import { type RunnerEvent, WorkRunner } from '../src/runtime/work.js';
import { DEFAULT_LOAD_TIMEOUT_MS, WorkerPool } from '../src/workers/pool.js';
import { collect, fixture, noopJob, startEngine } from './helpers.js';

/** A job running `module`, one partition per entry of `ms` (the payload's `ms`). */
const moduleJob = (name: string, module: string, overrides: Record<string, unknown> = {}) =>
  defineJob({
    name,
    input: z.object({ ms: z.array(z.number()) }),
    partition: ({ ms }) => ms.map((m, i) => ({ key: `${name}-${i}`, payload: { ms: m } })),
    worker: fixture(module),
    ...overrides,
  });

const BOUND = 20_000;

describe('loading a worker module', () => {
  it('a module whose top-level await never settles fails WORKER_LOAD within timeoutMs, and other jobs run meanwhile', async () => {
    const engine = await startEngine({
      jobs: [moduleJob('hang', 'load-hang.mjs', { timeoutMs: 500, concurrency: 2 }), noopJob()],
    });
    // Three hanging partitions, two at a time: both threads of the pool are taken by a hung import.
    const hang = await engine.submit('hang', { ms: [0, 0, 0] });
    const noop = await engine.submit('noop', { n: 20 });
    const [hung, other] = await Promise.all([
      engine.wait(hang.id, { timeoutMs: BOUND }),
      engine.wait(noop.id, { timeoutMs: BOUND }),
    ]);
    expect(other).toMatchObject({ status: 'COMPLETED', succeeded: 20 });
    expect(hung).toMatchObject({ status: 'FAILED', failed: 3 });
    for (const f of hung.failures) {
      expect(f.error).toMatchObject({ name: 'WorkerLoadError', code: 'WORKER_LOAD' });
      expect(f.error.message).toContain('did not load within 500 ms');
      expect(f.error.message).toContain('load-hang.mjs');
    }
    // The pool replaced the threads it terminated.
    const again = await engine.wait((await engine.submit('noop', { n: 10 })).id, { timeoutMs: BOUND });
    expect(again.status).toBe('COMPLETED');
  });

  it('a module that busy-loops at import fails WORKER_LOAD within timeoutMs', async () => {
    const engine = await startEngine({ jobs: [moduleJob('busy', 'load-busy.mjs', { timeoutMs: 500 })] });
    const summary = await engine.wait((await engine.submit('busy', { ms: [0] })).id, { timeoutMs: BOUND });
    expect(summary).toMatchObject({ status: 'FAILED', failed: 1 });
    expect(summary.failures[0]!.error).toMatchObject({ code: 'WORKER_LOAD' });
    expect(summary.failures[0]!.error.message).toContain('did not load within 500 ms');
  });

  it('a module that throws at import fails WORKER_LOAD without retry, naming the module and the error', async () => {
    const engine = await startEngine({
      jobs: [moduleJob('throws', 'load-throw.mjs', { retry: { attempts: 3, backoffMs: 1 } }), noopJob()],
    });
    const batch = await engine.submit('throws', { ms: [0, 0] });
    const summary = await engine.wait(batch.id, { timeoutMs: BOUND });
    expect(summary).toMatchObject({ status: 'FAILED', failed: 2 });
    for (const f of summary.failures) {
      expect(f).toMatchObject({ attempts: 1, error: { name: 'WorkerLoadError', code: 'WORKER_LOAD' } });
      expect(f.error.message).toContain('load-throw.mjs');
      expect(f.error.message).toContain('PARTITA_TEST_CONFIG is not set');
    }
    // What the module threw is kept as the cause, in the partition's record.
    for (const p of await collect(engine.partitions(batch.id))) {
      expect(p.error?.cause).toMatchObject({ message: 'cannot load: PARTITA_TEST_CONFIG is not set' });
    }
    expect((await engine.wait((await engine.submit('noop', { n: 5 })).id)).status).toBe('COMPLETED');
  });

  it('a module without a default export function fails WORKER_LOAD without retry', async () => {
    const engine = await startEngine({
      jobs: [moduleJob('nodefault', 'load-no-default.mjs', { retry: { attempts: 3, backoffMs: 1 } })],
    });
    const summary = await engine.wait((await engine.submit('nodefault', { ms: [0] })).id, {
      timeoutMs: BOUND,
    });
    expect(summary.failures[0]).toMatchObject({ attempts: 1, error: { code: 'WORKER_LOAD' } });
    expect(summary.failures[0]!.error.message).toMatch(/load-no-default\.mjs has no default export function/);
  });

  it('runs a CommonJS module compiled from `export default` (its function is `exports.default`)', async () => {
    const engine = await startEngine({ jobs: [moduleJob('compiled', 'compiled-cjs.cjs')] });
    const batch = await engine.submit('compiled', { ms: [1, 2, 3] });
    expect(await engine.wait(batch.id, { timeoutMs: BOUND })).toMatchObject({
      status: 'COMPLETED',
      succeeded: 3,
    });
    expect((await collect(engine.partitions(batch.id))).map((p) => p.result)).toEqual([2, 4, 6]);
  });

  it('timeoutMs covers loading and running together; a module that loaded in time but ran too long is a TIMEOUT', async () => {
    // load-slow.mjs takes 500 ms to load. 500 + 700 ms > 1000 ms: TIMEOUT (not WORKER_LOAD: it loaded).
    // The thread is then replaced, so the next partition loads the module again: 500 + 100 ms fit.
    const engine = await startEngine({
      jobs: [moduleJob('slow', 'load-slow.mjs', { timeoutMs: 1000, concurrency: 1 })],
      workers: { maxThreads: 1 },
    });
    const batch = await engine.submit('slow', { ms: [700, 100] });
    const summary = await engine.wait(batch.id, { timeoutMs: BOUND });
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 1, failed: 1 });
    expect(summary.failures[0]).toMatchObject({ key: 'slow-0', error: { code: 'TIMEOUT' } });
    const parts = await collect(engine.partitions(batch.id));
    expect(parts.find((p) => p.key === 'slow-1')).toMatchObject({ status: 'succeeded' });
  });
});

describe('loading a worker module of a job without timeoutMs', () => {
  /** One attempt through the pool, as the engine runs it; resolves with its WORK.DONE or WORK.FAILED. */
  const attempt = (runner: WorkRunner, key: string) =>
    new Promise<RunnerEvent>((resolve) => {
      runner.start(
        { batchId: 'b', index: 0, key, attempt: 1, redelivered: false, payload: { ms: 0 } },
        new AbortController().signal,
        (event) => {
          if (event.type !== 'WORK.PROGRESS') resolve(event);
        },
      );
    });

  it('is bounded by the pool load timeout (default DEFAULT_LOAD_TIMEOUT_MS), and frees the thread', async () => {
    const hang = moduleJob('hang', 'load-hang.mjs');
    const noop = noopJob();
    // One thread: the noop attempt can only run once the hung import's thread was terminated.
    const pool = new WorkerPool([hang, noop], { maxThreads: 1, loadTimeoutMs: 300 });
    try {
      const hung = attempt(new WorkRunner(hang, pool, false), 'hang-0');
      const after = attempt(new WorkRunner(noop, pool, false), 'p0');
      expect(await hung).toMatchObject({
        type: 'WORK.FAILED',
        retryable: true,
        error: { name: 'WorkerLoadError', code: 'WORKER_LOAD' },
      });
      expect(((await hung) as { error: { message: string } }).error.message).toContain(
        'did not load within 300 ms',
      );
      expect(await after).toMatchObject({ type: 'WORK.DONE', result: { ok: true } });
      expect(DEFAULT_LOAD_TIMEOUT_MS).toBe(60_000);
    } finally {
      await pool.destroy();
    }
  }, 20_000);
});
