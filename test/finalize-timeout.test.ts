import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, type Engine, memoryStore, sqliteStore } from '../src/index.js';
import { bounded } from '../src/runtime/finalization.js';
import { sqlitePath } from './support/stores.js';

/**
 * `finalizeTimeoutMs` bounds each call of `finalize` and each trigger's `input`: a hook that never
 * settles no longer holds its batch in FINALIZING for good (seed 003: a batch stuck because its
 * finalization waited for something that never came). Without the option nothing is bounded.
 */

/** A promise that never settles: the hooks that hang. */
const never = () => new Promise<never>(() => {});

/** A one-partition job `report` with these finalize options. */
const report = (options: Pick<Parameters<typeof defineJob>[0], 'finalize' | 'finalizeTimeoutMs' | 'retry'>) =>
  defineJob({
    name: 'report',
    partition: () => [{ key: 'a', payload: 1 }],
    handler: async () => 1,
    ...options,
  });

async function withEngine(
  jobs: Parameters<typeof createEngine>[0]['jobs'],
  store: 'memory' | 'sqlite',
  fn: (engine: Engine) => Promise<void>,
): Promise<void> {
  const engine = createEngine({
    jobs,
    store: store === 'memory' ? memoryStore() : sqliteStore({ path: sqlitePath() }),
    logger: false,
  });
  await engine.start();
  try {
    await fn(engine);
  } finally {
    await engine.stop();
  }
}

describe('finalizeTimeoutMs', () => {
  it.each(['memory', 'sqlite'] as const)(
    'a finalize that never settles is timed out, retried, and ends the batch FAILED with TIMEOUT (%s)',
    async (store) => {
      const calls: AbortSignal[] = [];
      const job = defineJob({
        name: 'report',
        partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
        handler: async () => 1,
        retry: { attempts: 2, backoffMs: 0 },
        finalizeTimeoutMs: 30,
        finalize: (_summary, ctx) => {
          calls.push(ctx.signal);
          return never();
        },
      });
      await withEngine([job], store, async (engine) => {
        await engine.submit('report', 3, { id: 'b' });
        const summary = await engine.wait('b');
        expect(summary).toMatchObject({ status: 'FAILED', succeeded: 3, failed: 0 });
        expect(summary.error).toMatchObject({ name: 'TimeoutError', code: 'TIMEOUT' });
        expect(summary.error?.message).toBe('finalize timed out after 30 ms');
        // Each attempt had its own call, and its signal aborted when its time ran out.
        expect(calls).toHaveLength(2);
        expect(calls.every((s) => s.aborted)).toBe(true);
        expect((await engine.get('b'))?.status).toBe('FAILED');
      });
    },
  );

  it('a finalize that answers in time is not affected, and its signal is not aborted', async () => {
    let signal: AbortSignal | undefined;
    const job = report({
      finalizeTimeoutMs: 60_000,
      finalize: async (summary, ctx) => {
        signal = ctx.signal;
        await new Promise((resolve) => setImmediate(resolve));
        return `${summary.succeeded} done`;
      },
    });
    await withEngine([job], 'memory', async (engine) => {
      await engine.submit('report', null, { id: 'b' });
      expect(await engine.wait('b')).toMatchObject({ status: 'COMPLETED', output: '1 done' });
      expect(signal?.aborted).toBe(false);
    });
  });

  it('a cancel while the bounded finalize runs aborts its signal, and the batch is CANCELLED', async () => {
    let entered: () => void = () => {};
    const inFinalize = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let signal: AbortSignal | undefined;
    const job = report({
      finalizeTimeoutMs: 60_000,
      finalize: (_summary, ctx) => {
        signal = ctx.signal;
        entered();
        return never();
      },
    });
    await withEngine([job], 'memory', async (engine) => {
      await engine.submit('report', null, { id: 'b' });
      await inFinalize;
      expect((await engine.cancel('b')).status).toBe('CANCELLED');
      expect(signal?.aborted).toBe(true);
    });
  });

  it('a trigger whose input never settles is recorded with TIMEOUT, and the parent ends', async () => {
    const child = defineJob({
      name: 'load',
      partition: () => [{ key: 'a', payload: 1 }],
      handler: async () => 1,
    });
    const parent = defineJob({
      name: 'extract',
      partition: () => [{ key: 'a', payload: 1 }],
      handler: async () => 1,
      finalizeTimeoutMs: 30,
      triggers: [{ job: 'load', when: 'succeeded', input: never }],
    });
    await withEngine([parent, child], 'sqlite', async (engine) => {
      await engine.submit('extract', null, { id: 'p' });
      const summary = await engine.wait('p');
      expect(summary.status).toBe('COMPLETED');
      expect(summary.triggered).toEqual([
        {
          job: 'load',
          id: 'p>load',
          error: expect.objectContaining({
            code: 'TIMEOUT',
            message: 'trigger "load" input timed out after 30 ms',
          }),
        },
      ]);
      await expect(engine.get('p>load')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });
  });

  it("a finalize error that says retryable: false is not retried, as a partition's is not", async () => {
    let calls = 0;
    const job = report({
      retry: { attempts: 3, backoffMs: 0 },
      finalize: () => {
        calls++;
        throw Object.assign(new Error('the report template is broken'), { retryable: false });
      },
    });
    await withEngine([job], 'memory', async (engine) => {
      await engine.submit('report', null, { id: 'b' });
      expect(await engine.wait('b')).toMatchObject({
        status: 'FAILED',
        error: { message: 'the report template is broken' },
      });
      expect(calls).toBe(1);
    });
  });

  it('a bounded call ends at once when its finalization is abandoned, its timer cleared (review)', async () => {
    const outer = new AbortController();
    let inner: AbortSignal | undefined;
    const call = bounded(3_600_000, outer.signal, 'finalize', (signal) => {
      inner = signal;
      return never();
    });
    outer.abort(new Error('cancelled'));
    await expect(call).rejects.toThrow('cancelled');
    expect(inner?.aborted).toBe(true);
    // Aborted before the call: it ends at once too.
    await expect(bounded(3_600_000, outer.signal, 'finalize', never)).rejects.toThrow('cancelled');
  });

  it('is validated like timeoutMs', () => {
    const base = { name: 'x', partition: () => [], handler: async () => 1 };
    for (const bad of [0, -1, 1.5, '10', 2 ** 31])
      expect(() => defineJob({ ...base, finalizeTimeoutMs: bad as number })).toThrow(
        expect.objectContaining({
          code: 'VALIDATION',
          message: expect.stringContaining('finalizeTimeoutMs'),
        }),
      );
    expect(defineJob({ ...base, finalizeTimeoutMs: 5 }).finalizeTimeoutMs).toBe(5);
    expect(defineJob(base).finalizeTimeoutMs).toBeUndefined();
  });
});
