import { describe, expect, it } from 'vitest';
import { defineJob, sqliteStore } from '../src/index.js';
import { startEngine } from './helpers.js';
import { sqlitePath } from './support/stores.js';

/**
 * What a summary shares with the batch (its failure sample, its meta) cannot be changed through it
 * (found by an outside probe): a finalizer that sorted and trimmed `summary.failures` for an alert,
 * or a listener that cleared it, left the batch (and its stored state, after a restart) with
 * `failed: 2` and no failure listed. Each summary has its own array and meta, the entries are
 * frozen; `finalize` gets a copy of its own.
 */
const job = (finalize?: (s: { failures: unknown[] }) => unknown) =>
  defineJob({
    name: 'sync',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
    handler: (i: number) => {
      if (i < 2) throw new Error(`wallet ${i} refused`);
      return i;
    },
    ...(finalize ? { finalize } : {}),
  });

describe("a summary's shared parts", () => {
  it('a finalizer may sort and trim the failures it is given; the batch keeps its own', async () => {
    const path = sqlitePath();
    const engine = await startEngine({
      jobs: [
        job((s) => {
          s.failures.sort().splice(0);
          return s.failures.length;
        }),
      ],
      store: sqliteStore({ path }),
    });
    try {
      await engine.submit('sync', 5, { id: 'b' });
      const final = await engine.wait('b');
      expect(final).toMatchObject({ status: 'PARTIAL', failed: 2, output: 0 });
      expect(final.failures.map((f) => f.key)).toEqual(['k0', 'k1']);
      expect((await engine.get('b')).failures).toHaveLength(2);
    } finally {
      await engine.stop();
    }
    const again = await startEngine({ jobs: [job()], store: sqliteStore({ path }) });
    try {
      expect((await again.get('b')).failures.map((f) => f.key)).toEqual(['k0', 'k1']);
    } finally {
      await again.stop();
    }
  });

  it("a listener cannot change the batch's failures or meta through its summary; wait()'s may be sorted", async () => {
    const engine = await startEngine({ jobs: [job()] });
    const refused: unknown[] = [];
    try {
      const off = engine.subscribe('b', (s) => {
        for (const change of [
          () => {
            if (s.failures[0]) s.failures[0].key = 'changed';
          },
          () => s.failures.splice(0),
          () => {
            if (s.meta) s.meta.owner = 'listener-was-here';
          },
        ])
          try {
            change();
          } catch (err) {
            refused.push(err);
          }
      });
      await engine.submit('sync', 5, { id: 'b', meta: { owner: 'ops' } });
      const final = await engine.wait('b');
      off();
      expect(final.failures.map((f) => f.key)).toEqual(['k0', 'k1']);
      expect(final.meta).toEqual({ owner: 'ops' });
      expect((await engine.get('b')).meta).toEqual({ owner: 'ops' });
      // Only changing an entry is refused; the array and meta were the listener's own.
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.every((e) => e instanceof TypeError)).toBe(true);
      expect(final.failures.sort().splice(0)).toHaveLength(2);
      expect((await engine.get('b')).failures).toHaveLength(2);
    } finally {
      await engine.stop();
    }
  });
});
