import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type BatchState,
  type BatchSummary,
  createEngine,
  defineJob,
  memoryStore,
  type Store,
  sqliteStore,
} from '../src/index.js';
import { isFinalStatus } from '../src/summary.js';
import { deferred } from './support/until.js';

/**
 * engine.stop() while a batch's final state is being written: the write lands, so the batch ended
 * here, and everyone waiting for it or listening to it here hears its final summary before stop()
 * resolves. It used to be dropped: the runtime, stopped while that write was in flight, saw itself
 * halted and never announced the end. And a listener of the next engine, subscribed before its
 * start(), never heard of a batch already final in the store. Together they left
 * test/properties/engine-books.test.ts waiting for ever about one run in two once SQLite's writes
 * were committed a microtask later (the group commit).
 */

const dir = mkdtempSync(join(tmpdir(), 'partita-stop-end-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const stores: Array<[string, () => Store]> = [
  ['memory', () => memoryStore()],
  ['sqlite', () => sqliteStore({ path: join(dir, `end-${Math.random().toString(36).slice(2)}.db`) })],
];

/** `inner`, except that the first write of a final state waits for `gate` (and `asked` says it came). */
function holdingTheFinalWrite(inner: Store) {
  const asked = deferred();
  const gate = deferred();
  let held = false;
  const hold = async (state: BatchState) => {
    if (held || !isFinalStatus(state.status)) return;
    held = true;
    asked.resolve();
    await gate.promise;
  };
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'commit' && typeof value === 'function')
        return async (id: string, outcomes: unknown, state: BatchState, fence: unknown) => {
          await hold(state);
          return value.call(target, id, outcomes, state, fence);
        };
      if (prop === 'saveState')
        return async (id: string, state: BatchState, fence: unknown) => {
          await hold(state);
          return value.call(target, id, state, fence);
        };
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store, asked: asked.promise, release: gate.resolve };
}

/** Resolves once `check()` holds, looked at once per turn of the event loop. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe.each(stores)('stop() while the final state is written (%s store)', (_name, makeStore) => {
  it('the batch ends here: its waiters and listeners get the final summary', async () => {
    const inner = makeStore();
    const { store, asked, release } = holdingTheFinalWrite(inner);
    const job = defineJob({
      name: 'one',
      partition: (n: number) => [{ key: 'only', payload: n }],
      handler: (n: number) => n * 2,
    });
    const engine = createEngine({ jobs: [job], store, logger: false });
    await engine.start();
    const heard: BatchSummary[] = [];
    engine.subscribe('b', (s) => heard.push(s));
    await engine.submit('one', 21, { id: 'b' });
    let waited: BatchSummary | undefined;
    const waiting = engine.wait('b').then((s) => {
      waited = s;
    });

    await asked; // the final state's write is in flight
    const stopping = engine.stop();
    // stop() has reached the batch (it is no longer among the batches running here)...
    await until(() => Object.keys(engine.metrics().batches).length === 0);
    release(); // ...and then the write lands.
    await stopping;

    expect(waited?.status).toBe('COMPLETED');
    expect(heard.at(-1)).toMatchObject({ status: 'COMPLETED', succeeded: 1 });
    await waiting;

    // The next engine on the store, subscribed before its start() (so that the batches it resumes
    // are heard from their first step): a batch final in the store, which nothing resumes, is
    // heard once, as subscribe() promises.
    const next = createEngine({ jobs: [job], store: inner, logger: false });
    const again: BatchSummary[] = [];
    const first = deferred();
    next.subscribe('b', (s) => {
      again.push(s);
      first.resolve();
    });
    await next.start();
    try {
      await first.promise;
      expect(again).toHaveLength(1);
      expect(again[0]).toMatchObject({ status: 'COMPLETED', succeeded: 1 });
    } finally {
      await next.stop();
    }
  });
});
