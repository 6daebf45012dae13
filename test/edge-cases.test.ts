import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defineJob, sqliteStore } from '../src/index.js';
import { items, type Script, scriptedJob, startEngine } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'partita-edge-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('edge cases found while using the engine', () => {
  it('timeoutMs counts from when a thread runs the partition, not while it waits for one', async () => {
    // 6 partitions of 300 ms on one thread, four lanes (at most four per thread): the fourth waits
    // 900 ms for the thread and ends 1,200 ms after it was handed to the pool, more than its timeout.
    const sleepers: Script[] = Array.from({ length: 6 }, (_, i) => ({
      key: `s${i}`,
      mode: 'sleep',
      ms: 300,
    }));
    const engine = await startEngine({
      jobs: [scriptedJob({ concurrency: 6, timeoutMs: 1000 })],
      workers: { maxThreads: 1 },
    });
    await engine.wait((await engine.submit('scripted', { items: items('ok', 1, 'warm') })).id);
    const summary = await engine.wait((await engine.submit('scripted', { items: sleepers })).id);
    expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: 6 });
  });

  it('a result that cannot be stored (BigInt, function) fails its partition with RESULT_INVALID instead of stalling the batch', async () => {
    const inline = defineJob({
      name: 'inline-bigint',
      partition: () => [
        { key: 'a', payload: 1 },
        { key: 'b', payload: 2 },
      ],
      handler: (n: number) => (n === 1 ? { big: 1n } : { n }),
    });
    const engine = await startEngine({
      jobs: [scriptedJob(), inline],
      store: sqliteStore({ path: join(dir, 'unstorable.db') }),
    });
    const worker = await engine.wait(
      (
        await engine.submit('scripted', {
          items: [...items('ok', 1), ...items('bigint', 1), ...items('function', 1)],
        })
      ).id,
    );
    expect(worker).toMatchObject({ status: 'PARTIAL', succeeded: 1, failed: 2 });
    for (const f of worker.failures) expect(f.error.code).toBe('RESULT_INVALID');
    const main = await engine.wait((await engine.submit('inline-bigint', {})).id);
    expect(main).toMatchObject({
      status: 'PARTIAL',
      failures: [{ key: 'a', error: { code: 'RESULT_INVALID' } }],
    });
  });

  it('a listener that cancels on every change does not loop: one CANCEL, one CANCELLED', async () => {
    const engine = await startEngine({ jobs: [scriptedJob({ concurrency: 2 })] });
    const batch = await engine.submit('scripted', { items: [...items('ok', 2), ...items('hang', 2)] });
    let calls = 0;
    engine.subscribe(batch.id, (s) => {
      calls++;
      if (s.succeeded === 2 && s.status === 'PROCESSING') void engine.cancel(batch.id);
    });
    expect((await engine.wait(batch.id)).status).toBe('CANCELLED');
    expect(calls).toBeLessThan(20);
  });

  it('a missing worker module is refused by defineJob; an async partition() that throws gives VALIDATION', async () => {
    expect(() => defineJob({ name: 'missing', partition: () => [], worker: '/nowhere/missing.mjs' })).toThrow(
      /worker module not found/,
    );
    expect(() => defineJob({ name: 'dir', partition: () => [], worker: tmpdir() })).toThrow(
      /worker module is a directory/,
    );
    const job = defineJob({
      name: 'async-throws',
      partition: async function* () {
        yield { key: 'a', payload: 1 };
        throw new Error('source went away');
      },
      handler: () => 1,
    });
    const engine = await startEngine({ jobs: [job] });
    await expect(engine.submit('async-throws', {}, { id: 'x' })).rejects.toMatchObject({
      code: 'VALIDATION',
      message: expect.stringContaining('source went away'),
    });
  });

  it('a batch of handlers that never wait leaves the host event loop responsive, and can be cancelled', async () => {
    const job = defineJob({
      name: 'sync-inline',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: (i: number) => i * 2,
      concurrency: 16,
    });
    const engine = await startEngine({ jobs: [job] });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    try {
      const done = await engine.wait((await engine.submit('sync-inline', 20_000)).id);
      expect(done).toMatchObject({ status: 'COMPLETED', succeeded: 20_000 });
      expect(ticks).toBeGreaterThan(0); // without yielding, no timer ran until the batch ended
      // Cancelling while starts are held back for a turn of the event loop still ends the batch
      // (an engine that holds back every start, so the cancel always finds some held back).
      const eager = await startEngine({ jobs: [job], yieldAfterMs: 0 });
      const batch = await eager.submit('sync-inline', 20_000);
      eager.subscribe(batch.id, (s) => {
        if (s.progress >= 0.3) void eager.cancel(batch.id);
      });
      const cancelled = await eager.wait(batch.id);
      expect(cancelled.status).toBe('CANCELLED');
      expect(cancelled.succeeded + cancelled.failed + cancelled.pending).toBe(20_000);
    } finally {
      clearInterval(timer);
    }
  });

  it('wait() with a timeout rejects with TIMEOUT naming the wait', async () => {
    const engine = await startEngine({ jobs: [scriptedJob()] });
    const batch = await engine.submit('scripted', { items: items('hang', 1) });
    await expect(engine.wait(batch.id, { timeoutMs: 50 })).rejects.toMatchObject({
      code: 'TIMEOUT',
      message: expect.stringContaining('wait('),
    });
    await engine.cancel(batch.id);
  });
});
