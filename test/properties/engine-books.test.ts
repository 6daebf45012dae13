import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideOutcome, isFinalStatus } from '../../src/summary.js';
import { keyOf } from '../model/model.js';
import { Rig, type SummaryView } from '../model/rig.js';

/**
 * The same books kept by the real engine: real worker threads whose attempts end as the test
 * says, a SQLite file, restarts as a new engine on that file. Every summary the engine publishes
 * adds up, progress never goes back, each key is stored once, and the final status is
 * `decideOutcome` of the final counts.
 */

type Command =
  | { kind: 'settle'; pick: number; how: 'succeed' | 'fail' | 'fail-final' }
  | { kind: 'cancel' }
  | { kind: 'restart' };

const shapes = fc.record({
  total: fc.integer({ min: 1, max: 4 }),
  concurrency: fc.integer({ min: 1, max: 2 }),
  attempts: fc.integer({ min: 1, max: 2 }),
});
const commands = fc.array(
  fc.oneof(
    {
      arbitrary: fc.record({
        kind: fc.constant('settle'),
        pick: fc.nat(3),
        how: fc.constantFrom('succeed', 'fail', 'fail-final'),
      }) as fc.Arbitrary<Command>,
      weight: 6,
    },
    { arbitrary: fc.constant<Command>({ kind: 'cancel' }), weight: 1 },
    { arbitrary: fc.constant<Command>({ kind: 'restart' }), weight: 2 },
  ),
  { maxLength: 8 },
);

const isFinal = (s: SummaryView | undefined) => s !== undefined && isFinalStatus(s.status as never);

/** The attempts the lanes run now: [lane, index, attempt]. */
function running(rig: Rig, lanes: number): [number, number, number][] {
  const out: [number, number, number][] = [];
  for (let lane = 0; lane < lanes; lane++) {
    const l = rig.latestLane(lane);
    if (l?.value === 'running') out.push([lane, l.index!, l.attempt!]);
  }
  return out;
}

/** End one running attempt as told, and wait until its lane has moved on. False when the batch is final. */
async function settleOne(
  rig: Rig,
  lanes: number,
  pick: number,
  how: 'succeed' | 'fail' | 'fail-final',
): Promise<boolean> {
  const busy = await rig.until('a running attempt or a final batch', () => {
    if (isFinal(rig.summaries.at(-1))) return [] as [number, number, number][];
    const r = running(rig, lanes);
    return r.length > 0 ? r : undefined;
  });
  if (busy.length === 0) return false;
  const [lane, index, attempt] = busy[pick % busy.length]!;
  await rig.command(keyOf(index), attempt, how);
  await rig.until(`lane ${lane} to leave ${keyOf(index)}#${attempt}`, () => {
    const l = rig.latestLane(lane);
    return !(l?.value === 'running' && l.index === index && l.attempt === attempt) || undefined;
  });
  return true;
}

describe('engine properties (sqlite, worker threads)', () => {
  it('keeps its books through any outcomes, cancels and restarts', async () => {
    await fc.assert(
      fc.asyncProperty(shapes, commands, async (shape, cmds) => {
        const rig = new Rig('sqlite', { ...shape, backoffMs: 10, finalize: false, gate: false });
        const lanes = Math.min(shape.concurrency, shape.total);
        try {
          await rig.start();
          await rig.submit();
          for (const cmd of cmds) {
            if (isFinal(rig.summaries.at(-1))) break;
            if (cmd.kind === 'settle') await settleOne(rig, lanes, cmd.pick, cmd.how);
            else if (cmd.kind === 'restart') await rig.restart();
            else {
              rig.cancel('property cancel');
              await rig.until(
                'the cancelled batch to be final',
                () => isFinal(rig.summaries.at(-1)) || undefined,
              );
            }
          }
          while (await settleOne(rig, lanes, 0, 'succeed'));
          await rig.until('the batch to be final', () => isFinal(rig.summaries.at(-1)) || undefined);

          let progress = 0;
          for (const s of rig.summaries) {
            expect(s.succeeded + s.failed + s.running + s.pending).toBe(s.total);
            expect(Math.min(s.succeeded, s.failed, s.running, s.pending)).toBeGreaterThanOrEqual(0);
            const p = (s.succeeded + s.failed) / s.total;
            expect(p).toBeGreaterThanOrEqual(progress);
            progress = p;
          }
          const final = rig.summaries.at(-1)!;
          if (final.status !== 'CANCELLED') {
            expect(final.succeeded + final.failed).toBe(final.total);
            expect(final.status).toBe(decideOutcome(final));
          }
          const stored = [];
          for await (const p of rig.engine.partitions(rig.batchId)) stored.push(p);
          expect(new Set(stored.map((p) => p.key)).size).toBe(shape.total);
          expect(stored.filter((p) => p.status === 'succeeded')).toHaveLength(final.succeeded);
          expect(stored.filter((p) => p.status === 'failed')).toHaveLength(final.failed);
          expect(await rig.engine.recount(rig.batchId)).toEqual({
            total: final.total,
            succeeded: final.succeeded,
            failed: final.failed,
          });
        } finally {
          await rig.close();
        }
      }),
      { numRuns: Number(process.env.NUM_RUNS ?? 8) },
    );
  });
});
