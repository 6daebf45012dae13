import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, defineJob, type Engine, sqliteStore } from '../src/index.js';
import { sqlitePath } from './support/stores.js';
import { deferred } from './support/until.js';

// An engine follows the batches another engine runs through the store (docs/scaling.md): its
// once-a-second backstop read them one by one, a store read per followed batch per second (an
// outside probe: 1,000 subscriptions on PostgreSQL, 1,181 transactions a second). It now reads them
// all in one loadBatches (one statement per 500).

const engines: Engine[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.stop();
});

describe('following batches that run elsewhere', () => {
  it('reads every followed batch in one store read per backstop tick, and still hears each end', async () => {
    const path = sqlitePath();
    const gate = deferred();
    const job = defineJob({
      name: 'gated',
      partition: (n: number) => [{ key: 'only', payload: n }],
      handler: async (n: number) => {
        await gate.promise;
        return n;
      },
    });
    const runner = createEngine({
      jobs: [job],
      store: sqliteStore({ path }),
      logger: false,
      maxConcurrentBatches: 20,
    });
    engines.push(runner);
    await runner.start();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await runner.submit(job, i)).id);

    // The follower runs no job of theirs; its store's reads are counted (a real store, two methods wrapped).
    const store = sqliteStore({ path });
    const reads = { one: 0, many: 0, manyIds: 0 };
    const loadBatch = store.loadBatch.bind(store);
    const loadBatches = store.loadBatches!.bind(store);
    store.loadBatch = (id) => {
      reads.one++;
      return loadBatch(id);
    };
    store.loadBatches = (list) => {
      reads.many++;
      reads.manyIds += list.length;
      return loadBatches(list);
    };
    const other = defineJob({ name: 'other', partition: () => [], handler: () => null });
    const follower = createEngine({ jobs: [other], store, logger: false });
    engines.push(follower);
    await follower.start();
    const heard = new Map<string, string>();
    for (const id of [...ids, 'never-1', 'never-2', 'never-3'])
      follower.subscribe(id, (s) => heard.set(id, s.status));

    const tick = async (n: number) => {
      while (reads.many < n) await new Promise((resolve) => setTimeout(resolve, 50));
    };
    await tick(1);
    const afterFirst = reads.one;
    await tick(3);
    // Two more ticks, not one read more per batch: the 23 ids went in each loadBatches.
    expect(reads.one).toBe(afterFirst);
    expect(reads.manyIds).toBe(23 * reads.many);
    expect(heard.get(ids[0]!)).toBe('PROCESSING');

    gate.resolve();
    for (const id of ids) expect((await follower.wait(id)).status).toBe('COMPLETED');
    expect(heard.get(ids[19]!)).toBe('COMPLETED');
    expect(heard.has('never-1')).toBe(false);
  });
});
