import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BatchInput } from '../../src/machines/batch.js';
import { summaryOf } from '../../src/runtime/summary-of.js';
import { SCHEMA_VERSION } from '../../src/store/store.js';
import { type BatchStatus, decideOutcome, isFinalStatus } from '../../src/summary.js';
import { BatchSim, type Command } from './batch-sim.js';

/**
 * For any batch shape and any sequence of partition outcomes, timeouts, cancels, snapshots, crashes
 * and restarts, the batch machine (with its lanes) keeps its books: every count is accounted for,
 * progress never goes back, no key is counted twice, and the batch can always finish, ending in
 * the outcome `decideOutcome` gives for its counts.
 */

const inputs = fc.record({
  total: fc.integer({ min: 0, max: 8 }),
  concurrency: fc.integer({ min: 1, max: 4 }),
  maxAttempts: fc.integer({ min: 1, max: 3 }),
  pageSize: fc.integer({ min: 1, max: 4 }),
  timeoutMs: fc.option(fc.constant(50), { nil: undefined }),
  failurePolicy: fc.record(
    {
      maxFailures: fc.integer({ min: 0, max: 3 }),
      maxFailureRatio: fc.double({ min: 0, max: 1, noNaN: true }),
    },
    { requiredKeys: [] },
  ),
});

const commands = fc.array(
  fc.oneof(
    { arbitrary: fc.constant<Command>({ kind: 'admit' }), weight: 2 },
    {
      arbitrary: fc.record({
        kind: fc.constantFrom('done', 'fail', 'failFinal'),
        pick: fc.nat(7),
      }) as fc.Arbitrary<Command>,
      weight: 10,
    },
    {
      arbitrary: fc.record({
        kind: fc.constant('tick'),
        what: fc.constantFrom('backoff', 'timeout'),
      }) as fc.Arbitrary<Command>,
      weight: 2,
    },
    { arbitrary: fc.constant<Command>({ kind: 'cancel' }), weight: 1 },
    { arbitrary: fc.constant<Command>({ kind: 'checkpoint' }), weight: 2 },
    { arbitrary: fc.constant<Command>({ kind: 'crash' }), weight: 1 },
    { arbitrary: fc.constant<Command>({ kind: 'restart' }), weight: 1 },
    { arbitrary: fc.boolean().map<Command>((ok) => ({ kind: 'finalize', ok })), weight: 1 },
  ),
  { maxLength: 40 },
);

const record = (total: number) => ({
  schemaVersion: SCHEMA_VERSION,
  id: 'property',
  job: 'property',
  total,
  priority: 0,
  after: [],
  when: 'succeeded' as const,
  createdAt: '2026-01-01T00:00:00.000Z',
});

/** The books after a step: what the summary says, checked against the journal and the lanes. */
function checkBooks(sim: BatchSim, lastProgress: number): number {
  const s = summaryOf(record(sim.input.total), sim.snapshot, true, undefined);
  const c = sim.snapshot.context;
  const settled = new Map<string, string>();
  for (const o of sim.journal) {
    expect(settled.has(o.key), `${o.key} journaled twice`).toBe(false);
    settled.set(o.key, o.status);
  }
  const inFlight = c.inFlight.filter((f) => f !== null);
  expect(new Set(inFlight.map((f) => f.index)).size, 'a partition on two lanes').toBe(inFlight.length);
  expect(
    inFlight.some((f) => settled.has(`p${f.index}`)),
    'a settled partition in flight',
  ).toBe(false);
  expect(s.succeeded).toBe([...settled.values()].filter((v) => v === 'succeeded').length);
  expect(s.failed).toBe([...settled.values()].filter((v) => v === 'failed').length);
  expect(s.running).toBe(inFlight.length);
  expect(s.pending).toBe(s.total - settled.size - inFlight.length);
  expect(s.succeeded + s.failed + s.running + s.pending).toBe(s.total);
  expect(Math.min(s.succeeded, s.failed, s.running, s.pending)).toBeGreaterThanOrEqual(0);
  expect(s.progress).toBeGreaterThanOrEqual(lastProgress);
  if (sim.snapshot.value === 'processing') {
    // Every partition the batch counts as running is being worked on by its lane.
    c.inFlight.forEach((f, lane) => {
      if (!f) return;
      const snap = sim.lane(lane)?.getSnapshot() as
        | { value: string; context: { current?: { index: number } } }
        | undefined;
      expect(['running', 'backoff'], `lane ${lane} runs partition ${f.index}`).toContain(snap?.value);
      expect(snap?.context.current?.index).toBe(f.index);
    });
  }
  return s.progress;
}

/** Finish the batch as the engine would: admit it, answer every attempt, end backoffs, finalize. */
async function finish(sim: BatchSim, lastProgress: number): Promise<number> {
  let progress = lastProgress;
  for (let step = 0; step < 200 && sim.snapshot.status !== 'done'; step++) {
    const v = sim.snapshot.value;
    const cmd: Command =
      v === 'queued'
        ? { kind: 'admit' }
        : v === 'finalizing'
          ? { kind: 'finalize', ok: true }
          : sim.working.size > 0
            ? { kind: 'done', pick: 0 }
            : { kind: 'tick', what: 'backoff' };
    await sim.apply(cmd);
    progress = checkBooks(sim, progress);
  }
  expect(sim.snapshot.status, `the batch is stuck in ${JSON.stringify(sim.snapshot.value)}`).toBe('done');
  return progress;
}

describe('batch machine properties', () => {
  it('keeps its books through any outcomes, cancels, crashes and restarts, and always finishes', async () => {
    await fc.assert(
      fc.asyncProperty(inputs, commands, async (shape, cmds) => {
        const input: BatchInput = {
          batchId: 'property',
          job: 'property',
          backoffMs: 10,
          maxBackoffMs: 40,
          ...shape,
        };
        const sim = new BatchSim(input);
        try {
          sim.start();
          let progress = checkBooks(sim, 0);
          for (const cmd of cmds) {
            await sim.apply(cmd);
            progress = checkBooks(sim, progress);
          }
          await finish(sim, progress);
          const c = sim.snapshot.context;
          const status = c.outcome as BatchStatus;
          expect(isFinalStatus(status)).toBe(true);
          if (status !== 'CANCELLED' && !sim.finalizeFailed) {
            expect(c.succeeded + c.failed).toBe(c.config.total);
            expect(status).toBe(
              decideOutcome(
                { total: c.config.total, succeeded: c.succeeded, failed: c.failed },
                c.config.failurePolicy,
              ),
            );
          }
        } finally {
          sim.stop();
        }
      }),
      { numRuns: Number(process.env.NUM_RUNS ?? 50) },
    );
  });
});
