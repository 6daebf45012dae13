import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type BatchingOption, createEngine, defineJob, type Engine, sqliteStore } from '../../src/index.js';
import pattern from '../fixtures/workers/pattern.mjs';
import { collect } from '../helpers.js';
import { untilSummary } from '../support/until.js';

/**
 * Item batching changes how partitions are carried, never what comes out: for random sizes,
 * failure patterns, concurrency, retries and up to two restarts at random points, the final status, the
 * counts, the failed keys and every stored outcome are the same with batching `'auto'`, a fixed
 * group size and `false`, on worker threads and inline, on SQLite.
 */

const dir = mkdtempSync(join(tmpdir(), 'partita-batching-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Mode = 'ok' | 'retry' | 'final' | 'flaky';

const shapes = fc.record({
  modes: fc.array(fc.constantFrom<Mode>('ok', 'ok', 'ok', 'retry', 'final', 'flaky'), {
    minLength: 1,
    maxLength: 300,
  }),
  concurrency: fc.integer({ min: 1, max: 8 }),
  // 'flaky' fails only its first attempt: with two attempts or more its outcome never depends on
  // whether a restart interrupted it (a restart counts the interrupted attempt).
  attempts: fc.integer({ min: 2, max: 3 }),
  maxItems: fc.integer({ min: 2, max: 40 }),
  inline: fc.boolean(),
  // Restart the engine once these shares of the partitions have settled (none, once, or twice: a
  // group interrupted twice comes back member by member, and outcomes replayed from the journal
  // leave the groups that wait to be redelivered).
  restartAt: fc.constantFrom<number[]>([], [0.1], [0.5], [0.9], [0.1, 0.5], [0.3, 0.6], [0.5, 0.9]),
});

type Shape = typeof shapes extends fc.Arbitrary<infer T> ? T : never;

const worker = new URL('../fixtures/workers/pattern.mjs', import.meta.url);
let runs = 0;

async function runOnce(shape: Shape, batching: BatchingOption) {
  const job = defineJob({
    name: 'pattern',
    partition: ({ modes }: { modes: Mode[] }) =>
      modes.map((mode, i) => ({ key: `k${i}`, payload: { i, mode } })),
    ...(shape.inline ? { handler: pattern } : { worker }),
    concurrency: shape.concurrency,
    retry: { attempts: shape.attempts, backoffMs: 1, maxBackoffMs: 1 },
    batching,
  });
  const path = join(dir, `run-${++runs}.db`);
  const open = () =>
    createEngine({ jobs: [job], store: sqliteStore({ path }), logger: false, workers: { maxThreads: 2 } });
  let engine: Engine = open();
  await engine.start();
  try {
    const { id } = await engine.submit('pattern', { modes: shape.modes });
    for (const share of shape.restartAt) {
      const settledAt = Math.floor(share * shape.modes.length);
      await untilSummary(engine, id, (s) => s.succeeded + s.failed >= settledAt);
      await engine.stop();
      engine = open();
      await engine.start();
    }
    const summary = await engine.wait(id);
    const parts = await collect(engine.partitions(id));
    return {
      status: summary.status,
      counts: [summary.total, summary.succeeded, summary.failed],
      failedKeys: parts.filter((p) => p.status === 'failed').map((p) => p.key),
      stored: parts.map((p) => ({ key: p.key, status: p.status, result: p.result, code: p.error?.code })),
      recount: await engine.recount(id),
    };
  } finally {
    await engine.stop();
  }
}

describe('item batching keeps the books (sqlite, worker threads and inline)', () => {
  it('auto, fixed and off end the same, also across restarts', async () => {
    await fc.assert(
      fc.asyncProperty(shapes, async (shape) => {
        const off = await runOnce(shape, false);
        const fixed = await runOnce(shape, { maxItems: shape.maxItems });
        const auto = await runOnce(shape, 'auto');
        for (const other of [fixed, auto]) expect(other).toEqual(off);
        const failed = shape.modes.filter((m) => m === 'retry' || m === 'final').length;
        expect(off.counts).toEqual([shape.modes.length, shape.modes.length - failed, failed]);
        expect(off.recount).toEqual({
          total: shape.modes.length,
          succeeded: shape.modes.length - failed,
          failed,
        });
      }),
      { numRuns: Number(process.env.NUM_RUNS ?? 10) },
    );
  });
});
