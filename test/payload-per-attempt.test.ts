import { describe, expect, it } from 'vitest';
import { defineJob } from '../src/index.js';
import { startEngine } from './helpers.js';

/**
 * Each attempt of an inline handler gets the payload as it was submitted (found by an outside
 * probe): a handler that converts its payload in place and then fails once saw its own conversion
 * on the retry, and converted twice. A worker job's attempts each get a structured clone already.
 */
describe('an inline handler changing its payload in place', () => {
  for (const batching of ['auto', { maxItems: 4 }, false] as const) {
    it(`its retry gets the payload as submitted (batching ${JSON.stringify(batching)})`, async () => {
      const seen: number[] = [];
      const job = defineJob({
        name: 'charge',
        partition: (n: number) =>
          Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: { amount: 12.5 } })),
        handler: (p: { amount: number }, ctx) => {
          p.amount = Math.round(p.amount * 100); // to cents, in place
          seen.push(p.amount);
          if (ctx.attempt === 1) throw new Error('upstream said try again');
          return p.amount;
        },
        retry: { attempts: 2, backoffMs: 0 },
        batching,
      });
      const engine = await startEngine({ jobs: [job] });
      try {
        await engine.submit('charge', 4, { id: 'b' });
        expect(await engine.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 4 });
        expect(seen).toEqual(Array(8).fill(1250));
        for await (const p of engine.partitions('b')) expect(p.result).toBe(1250);
      } finally {
        await engine.stop();
      }
    });
  }
});
