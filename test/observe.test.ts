import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, type EngineEvent, memoryStore, sqliteStore } from '../src/index.js';
import { sqlitePath } from './support/stores.js';

/** engine.observe(): each batch's statuses, each reported once (QUEUED was reported twice; found by a probe). */
describe('observe()', () => {
  it.each([
    ['memory', () => memoryStore()],
    ['sqlite', () => sqliteStore({ path: sqlitePath() })],
  ])('reports each status of a batch once, in order (%s store)', async (_name, make) => {
    const job = defineJob({
      name: 'echo',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: (i: number) => i,
    });
    // One slot: the second batch waits QUEUED until the first ends.
    const engine = createEngine({ jobs: [job], store: make(), logger: false, maxConcurrentBatches: 1 });
    const seen = new Map<string, string[]>();
    engine.observe((e: EngineEvent) => {
      if (e.type !== 'batch') return;
      seen.set(e.batchId, [...(seen.get(e.batchId) ?? []), e.status]);
    });
    await engine.start();
    try {
      await engine.submit('echo', 3, { id: 'a' });
      await engine.submit('echo', 2, { id: 'b' });
      await Promise.all([engine.wait('a'), engine.wait('b')]);
      for (const id of ['a', 'b'])
        expect(seen.get(id), id).toEqual(['QUEUED', 'PROCESSING', 'FINALIZING', 'COMPLETED']);
    } finally {
      await engine.stop();
    }
  });
});
