import { describe, expect, it } from 'vitest';
import {
  type AnyJobDefinition,
  createEngine,
  defineJob,
  type Engine,
  type EngineOptions,
  postgresStore,
  type Store,
  sqliteStore,
} from '../src/index.js';
import { latch } from './helpers.js';
import { PG_URL, pgSchema, pgUnreachable, sqlitePath } from './support/stores.js';

// Two engines sharing one store: a child submitted on B `after` a parent that A runs starts when
// the parent ends, without anyone calling start() again (notification, or the slow backstop).

function jobs() {
  const { promise: gate, open } = latch();
  const parent = defineJob({
    name: 'parent',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `p${i}`, payload: i })),
    handler: async (i: number) => {
      await gate;
      return i;
    },
  });
  const child = defineJob({
    name: 'child',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `c${i}`, payload: i })),
    handler: (i: number) => i,
  });
  return { list: [parent, child], open: () => open() };
}

/** An engine on the SQLite file at `path`, as a process of its own would open it. */
const onFile = (path: string, list: AnyJobDefinition[], ownerId: string, more: Partial<EngineOptions> = {}) =>
  createEngine({ jobs: list, store: sqliteStore({ path }), logger: false, ownerId, ...more });

async function scenario(makeStore: () => Store) {
  const j = jobs();
  const a: Engine = createEngine({
    jobs: j.list,
    store: makeStore(),
    logger: false,
    ownerId: 'shared-test/1/a',
  });
  const b: Engine = createEngine({
    jobs: j.list,
    store: makeStore(),
    logger: false,
    ownerId: 'shared-test/1/b',
  });
  await a.start();
  await b.start();
  try {
    const parent = await a.submit('parent', 3);
    const child = await b.submit('child', 2, { after: [parent.id] });
    expect((await b.get(child.id)).status).toBe('QUEUED');
    const childStarted = new Promise<string>((resolve) => {
      b.subscribe(child.id, (s) => s.status !== 'QUEUED' && resolve(s.status));
    });
    expect((await b.get(parent.id)).job).toBe('parent'); // run by A, read by B from the store
    j.open();
    expect((await a.wait(parent.id)).status).toBe('COMPLETED');
    await childStarted;
    expect((await b.wait(child.id)).status).toBe('COMPLETED');
  } finally {
    await a.stop();
    await b.stop();
  }
}

describe('after a parent run by another engine', () => {
  it('on one SQLite file', async () => {
    const path = sqlitePath();
    await scenario(() => sqliteStore({ path }));
  });
});

const unreachable = await pgUnreachable('the shared-store tests');
describe.skipIf(unreachable !== undefined)('after a parent run by another engine, PostgreSQL', () => {
  it('on one PostgreSQL schema (LISTEN/NOTIFY)', async () => {
    const schema = pgSchema();
    await scenario(() => postgresStore({ connectionString: PG_URL, schema }));
  });
});

describe('an engine started to look on, with other jobs, while a batch runs elsewhere', () => {
  it('reads the batch (get, wait, list) instead of rejecting UNKNOWN_JOB for good', async () => {
    const path = sqlitePath();
    const j = jobs();
    const runner = onFile(path, j.list, 'look/a');
    const other = defineJob({ name: 'other', partition: () => [], handler: () => 1 });
    const looker = onFile(path, [other], 'look/d');
    await runner.start();
    try {
      const batch = await runner.submit('parent', 3);
      await looker.start(); // finds the batch unfinished, of a job it does not have
      try {
        const seen = await looker.get(batch.id);
        // As stored: PROCESSING reaches the store with the runner's next group commit.
        expect(['QUEUED', 'PROCESSING']).toContain(seen.status);
        expect(seen).toMatchObject({ job: 'parent', error: { code: 'UNKNOWN_JOB' } });
        const finished = looker.wait(batch.id);
        j.open();
        expect(await finished).toMatchObject({ status: 'COMPLETED', succeeded: 3 });
        const after = await looker.get(batch.id);
        expect(after.status).toBe('COMPLETED');
        expect(after.error).toBeUndefined();
        expect((await looker.list()).find((s) => s.id === batch.id)?.error).toBeUndefined();
      } finally {
        await looker.stop();
      }
    } finally {
      await runner.stop();
    }
  });
});

describe('a pause from another engine that loses to a pending cancel', () => {
  it('rejects CONFLICT (it resolved with the PROCESSING summary)', async () => {
    const path = sqlitePath();
    const j = jobs();
    // The owner hears the cancel late: it stays pending on the row.
    const owner = onFile(path, j.list, 'race/b', { claimIntervalMs: 60_000 });
    const other = onFile(path, j.list, 'race/a');
    const third = sqliteStore({ path }); // a third host's cancel, left on the row
    await owner.start();
    await other.start();
    await third.open();
    try {
      const batch = await owner.submit('parent', 3);
      expect(await third.requestControl(batch.id, { type: 'cancel', reason: 'from c' })).toBe(true);
      await expect(other.pause(batch.id)).rejects.toMatchObject({ code: 'CONFLICT' });
      expect((await owner.cancel(batch.id)).status).toBe('CANCELLED');
    } finally {
      j.open();
      await third.close();
      await other.stop();
      await owner.stop();
    }
  });
});

describe('the same id submitted by two engines on one SQLite file at once', () => {
  it('both answer the batch: the second reads again while the first is still storing it (it answered NOT_FOUND)', async () => {
    const path = sqlitePath();
    const { promise: halfway, open: reached } = latch();
    const { promise: gate, open } = latch();
    let first = true;
    const job = defineJob({
      name: 'big',
      // The first submit streams 1,500 partitions and waits half way (its row is unreadable till the end).
      partition: async function* (n: number) {
        const gated = first;
        first = false;
        for (let i = 0; i < n; i++) {
          if (gated && i === 1200) {
            reached();
            await gate;
          }
          yield { key: `k${i}`, payload: i };
        }
      },
      handler: (i: number) => i,
    });
    const a = onFile(path, [job], 'same/a');
    const b = onFile(path, [job], 'same/b');
    await a.start();
    await b.start();
    try {
      const fromA = a.submit('big', 1500, { id: 'same' });
      await halfway;
      const fromB = b.submit('big', 1500, { id: 'same' }).catch((err: unknown) => err);
      open();
      expect((await fromA).total).toBe(1500);
      expect(await fromB).toMatchObject({ id: 'same', total: 1500 });
      expect((await a.wait('same')).status).toBe('COMPLETED');
    } finally {
      open();
      await b.stop();
      await a.stop();
    }
  });
});
