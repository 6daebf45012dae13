import { describe, expect, it } from 'vitest';
import { createEngine, defineJob } from '../src/index.js';
import type { BatchRecord } from '../src/store/store.js';
import { storeKinds } from './support/stores.js';

/** Partitions that finish only when the test lets them: a batch held mid-flight. */
function heldJob() {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started = 0;
  let onStart: (() => void) | undefined;
  const job = defineJob({
    name: 'held',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
    handler: async (i: number) => {
      started++;
      onStart?.();
      await released;
      return i;
    },
    concurrency: 4,
  });
  const startedAtLeast = (n: number) =>
    new Promise<void>((resolve) => {
      onStart = () => started >= n && resolve();
      onStart();
    });
  return { job, release, startedAtLeast };
}

const kinds = await storeKinds('one store object shared by two engines');

describe.each(kinds)('one %s store object passed to two engines', (_kind, makeStore) => {
  it('stays open for the engine still running when the other stops, and closes with the last', async () => {
    const store = makeStore();
    const held = heldJob();
    const a = createEngine({ jobs: [held.job], store, logger: false });
    const b = createEngine({ jobs: [held.job], store, logger: false });
    await a.start();
    await b.start();
    const batch = await b.submit('held', 8);
    await held.startedAtLeast(4);
    await a.stop();
    // Before, a's stop() closed the store under b: b's batch retried "not open" writes forever.
    held.release();
    const done = await b.wait(batch.id, { timeoutMs: 20_000 });
    expect(done).toMatchObject({ status: 'COMPLETED', succeeded: 8 });
    expect((await b.submit('held', 2)).status).toBeDefined();
    const { record } = (await store.loadBatch(batch.id))!;
    await b.stop();
    // The last engine closed it: a write is refused (the memory store still answers reads).
    await expect(
      store.createBatch({ ...(record as BatchRecord), id: 'after-close' }, []),
    ).rejects.toMatchObject({
      code: 'STORE',
    });
  });
});
