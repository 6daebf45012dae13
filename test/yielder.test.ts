import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, defineJob, type Engine, memoryStore } from '../src/index.js';
import { Yielder } from '../src/runtime/yielder.js';
import { countTurns } from './support/turns.js';

// The host's event loop gets a turn after `yieldAfterMs` of dispatching, also when what waited for
// that turn runs: an outside probe saw 8 inline handlers of 3 ms run back to back (35–150 ms
// without a turn) with `yieldAfterMs: 0`, because everything held back ran in one turn.

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const spin = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe('Yielder', () => {
  it('with a budget of 0, runs one held-back function a turn, in order', async () => {
    const y = new Yielder(0);
    const ran: number[] = [];
    for (let i = 0; i < 4; i++) expect(y.run(() => ran.push(i))).toBe(false);
    expect(ran).toEqual([]);
    for (let t = 1; t <= 4; t++) {
      await turn();
      expect(ran).toEqual([0, 1, 2, 3].slice(0, t));
    }
  });

  it('runs held-back functions only while a turn has budget left: one a turn when each takes longer', async () => {
    const y = new Yielder(5);
    const ran: number[] = [];
    const held = [0, 1, 2, 3].map((i) =>
      y.run(() => {
        spin(6); // longer than the budget on its own
        ran.push(i);
      }),
    );
    expect(held).toEqual([true, false, false, false]);
    expect(ran).toEqual([0]);
    for (let t = 2; t <= 4; t++) {
      await turn();
      expect(ran).toEqual([0, 1, 2, 3].slice(0, t));
    }
  });
});

describe('yieldAfterMs: 0 with inline handlers of 3 ms', () => {
  let engine: Engine | undefined;
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
  });

  it('lets the event loop turn between any two handler calls but one', async () => {
    const loop = countTurns();
    const callsPerTurn = new Map<number, number>();
    const job = defineJob({
      name: 'busy',
      partition: () => Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: (i: number) => {
        callsPerTurn.set(loop.turns, (callsPerTurn.get(loop.turns) ?? 0) + 1);
        spin(3);
        return i;
      },
      concurrency: 8,
      batching: false,
    });
    engine = createEngine({ jobs: [job], store: memoryStore(), logger: false, yieldAfterMs: 0 });
    await engine.start();
    const { id } = await engine.submit(job, {});
    expect((await engine.wait(id)).status).toBe('COMPLETED');
    loop.stop();
    // Before: all 8 lanes' handlers in one turn.
    expect(Math.max(...callsPerTurn.values())).toBeLessThanOrEqual(2);
  });
});
