import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, memoryStore, sqliteStore } from '../src/index.js';
import { timeOrderedUuid } from '../src/runtime/submission.js';
import { latch } from './helpers.js';
import { sqlitePath } from './support/stores.js';

/** A batch submitted without an id gets a UUID of version 7: time first, so ids sort as submitted. */
const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('batch ids', () => {
  it('a UUID of version 7 whose first 48 bits are the time in milliseconds', () => {
    const at = Date.UTC(2026, 10, 30, 9, 20, 0, 123);
    const id = timeOrderedUuid(at);
    expect(id).toMatch(V7);
    expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(at);
    // Later milliseconds sort later, whatever the random part.
    const ids = [at, at + 1, at + 1000, at + 86_400_000].map((t) => timeOrderedUuid(t));
    expect([...ids].sort()).toEqual(ids);
    // Random within a millisecond.
    expect(new Set(Array.from({ length: 1000 }, () => timeOrderedUuid(at))).size).toBe(1000);
  });

  it('submit without an id uses one', async () => {
    const job = defineJob({ name: 'one', partition: () => [{ key: 'k', payload: 1 }], handler: (n) => n });
    const engine = createEngine({ jobs: [job], store: memoryStore(), logger: false });
    await engine.start();
    try {
      const before = Date.now();
      const { id } = await engine.submit('one', undefined);
      expect(id).toMatch(V7);
      const ms = Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(Date.now());
      await engine.wait(id);
    } finally {
      await engine.stop();
    }
  });
});

describe('one id submitted twice at once', () => {
  for (const kind of ['memory', 'sqlite'] as const)
    it(`the first submit makes the batch, the second gets it (${kind})`, async () => {
      const gate = latch();
      const job = defineJob({
        name: 'import',
        partition: async function* (n: number) {
          for (let i = 0; i < n; i++) {
            if (i === 1 && n > 3) await gate.promise; // the first submit streams slowly
            yield { key: `k${i}`, payload: i };
          }
        },
        handler: (i: number) => i,
      });
      const engine = createEngine({
        jobs: [job],
        store: kind === 'memory' ? memoryStore() : sqliteStore({ path: sqlitePath() }),
        logger: false,
      });
      await engine.start();
      try {
        const first = engine.submit('import', 10, { id: 'same' });
        const second = engine.submit('import', 3, { id: 'same' });
        gate.open();
        const [a, b] = await Promise.all([first, second]);
        expect(a.total).toBe(10);
        expect(b.total).toBe(10);
        expect(await engine.wait('same')).toMatchObject({ status: 'COMPLETED', total: 10, succeeded: 10 });
      } finally {
        await engine.stop();
      }
    });
});
