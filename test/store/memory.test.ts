import { describe, expect, it } from 'vitest';
import { memoryStore } from '../../src/store/memory.js';
import { countTurns } from '../support/turns.js';
import { batchRecord, state, storeContract } from './contract.js';

storeContract('memory', async () => ({ store: memoryStore(), cleanup: async () => {} }));

describe('memoryStore', () => {
  it('calls watchers before saveState resolves, once per new status', async () => {
    const store = memoryStore();
    await store.open();
    const seen: string[] = [];
    store.watch!((event) => seen.push(`${event.batchId}:${event.status}`));
    await store.createBatch(batchRecord('b', { total: 0 }), []);
    const fence = (await store.acquireLease('b', 'A', 60_000))!;
    await store.saveState('b', state('PROCESSING', 0), fence);
    expect(seen).toEqual(['b:PROCESSING']);
    await store.saveState('b', state('PROCESSING', 1), fence);
    await store.saveState('b', state('QUEUED', 0), fence); // refused: an older journal position
    await store.saveState('b', state('COMPLETED', 2), fence);
    expect(seen).toEqual(['b:PROCESSING', 'b:COMPLETED']);
    await store.close();
  });

  it('lets the event loop turn while it stores a batch from a source that never waits', async () => {
    const store = memoryStore();
    await store.open();
    const loop = countTurns();
    function* source() {
      for (let i = 0; i < 20_000; i++) yield { key: `k${i}`, payload: i };
    }
    const before = loop.turns;
    await store.createBatch(batchRecord('sync', { total: 0 }), source());
    loop.stop();
    // Once every 1,000 partitions (before: none, the whole submit in one turn).
    expect(loop.turns - before).toBeGreaterThanOrEqual(19);
    await store.close();
  });
});
