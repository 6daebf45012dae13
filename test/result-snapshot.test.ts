import { describe, expect, it } from 'vitest';
import { defineJob, type Engine, memoryStore, sqliteStore } from '../src/index.js';
import { fixture, startEngine } from './helpers.js';
import { sqlitePath } from './support/stores.js';

/**
 * A partition's result is what its handler returned, as it was when it returned (found by an
 * outside probe): a handler that reuses the object it returns (one scratch row filled anew for each
 * partition) had every partition stored with the last row, and a value written into that object
 * later (a BigInt) ended the host process when the store serialized it. The result is now copied
 * (its JSON) when the handler returns: inline on the main thread, and for each member of a group on
 * its worker thread (a single task's result is cloned to the main thread as it returns).
 */

const partition = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i }));

async function stored(engine: Engine, id: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for await (const p of engine.partitions(id)) out[p.key] = p.result;
  return out;
}

const expected = (n: number) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, { id: `k${i}`, n: i }]));

describe('a result is what the handler returned when it returned', () => {
  for (const batching of ['auto', { maxItems: 10 }, false] as const) {
    it(`an inline handler reusing its result object (batching ${JSON.stringify(batching)})`, async () => {
      const row = { id: '', n: 0 };
      const job = defineJob({
        name: 'scratch',
        partition,
        handler: async (i: number) => {
          row.id = `k${i}`;
          row.n = i;
          return row;
        },
        batching,
        // One at a time: handlers that run at the same time and share one object see each other's
        // writes before their promises settle, whatever partita does.
        concurrency: 1,
      });
      const engine = await startEngine({ jobs: [job], store: sqliteStore({ path: sqlitePath() }) });
      try {
        await engine.submit('scratch', 50, { id: 'b' });
        expect(await engine.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 50 });
        expect(await stored(engine, 'b')).toEqual(expected(50));
      } finally {
        await engine.stop();
      }
    });

    it(`a worker module reusing its result object (batching ${JSON.stringify(batching)})`, async () => {
      const job = defineJob({ name: 'scratch', partition, worker: fixture('scratch-row.mjs'), batching });
      const engine = await startEngine({ jobs: [job] });
      try {
        await engine.submit('scratch', 200, { id: 'b' });
        expect(await engine.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 200 });
        expect(await stored(engine, 'b')).toEqual(expected(200));
      } finally {
        await engine.stop();
      }
    });
  }

  it('a synchronous handler reusing its result object, several lanes at once: copied as it returns', async () => {
    const row = { id: '', n: 0 };
    const job = defineJob({
      name: 'scratch',
      partition,
      handler: (i: number) => {
        row.id = `k${i}`;
        row.n = i;
        return row;
      },
      batching: false,
      concurrency: 4,
    });
    const engine = await startEngine({ jobs: [job] });
    try {
      await engine.submit('scratch', 40, { id: 'b' });
      expect(await engine.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 40 });
      expect(await stored(engine, 'b')).toEqual(expected(40));
    } finally {
      await engine.stop();
    }
  });

  it('a value written into a returned object afterwards (a BigInt) changes nothing stored', async () => {
    const shared: Record<string, unknown> = { v: 1 };
    const job = defineJob({
      name: 'late',
      partition,
      handler: (i: number) => {
        if (i === 0) return shared;
        shared.v = 10n; // not storable, but written after k0's handler returned
        throw new Error('k1 fails');
      },
      batching: false,
      concurrency: 1,
    });
    for (const store of [memoryStore(), sqliteStore({ path: sqlitePath() })]) {
      shared.v = 1;
      const engine = await startEngine({ jobs: [job], store });
      try {
        await engine.submit('late', 2, { id: 'b' });
        expect(await engine.wait('b')).toMatchObject({ status: 'PARTIAL', succeeded: 1, failed: 1 });
        expect((await stored(engine, 'b')).k0).toEqual({ v: 1 });
      } finally {
        await engine.stop();
      }
    }
  });
});
