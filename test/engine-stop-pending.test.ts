import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, memoryStore, postgresStore, sqliteStore } from '../src/index.js';
import { latch } from './helpers.js';
import { PG_URL, pgSchema, pgUnreachable, sqlitePath } from './support/stores.js';

// What stop() does to calls still waiting: they settle (ENGINE_STATE), they do not hang, and what
// they asked of another engine stays asked.

function gatedJob() {
  const { promise: gate, open } = latch();
  const job = defineJob({
    name: 'gated',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
    handler: async (i: number, ctx) => {
      await Promise.race([gate, new Promise((r) => ctx.signal.addEventListener('abort', r))]);
      return i;
    },
    concurrency: 2,
  });
  return { job, open: () => open() };
}

/** A submit cut by stop(): ENGINE_STATE, its source closed, and an engine started again sees nothing. */
async function refusedWithNothingStored(
  submitted: Promise<unknown>,
  closed: Promise<unknown>,
  again: () => ReturnType<typeof createEngine>,
): Promise<void> {
  const err = (await submitted) as { code?: string; message?: string };
  expect(err.code).toBe('ENGINE_STATE');
  expect(err.message).toContain('nothing was stored');
  await closed;
  const engine = again();
  await engine.start();
  try {
    expect(await engine.list()).toEqual([]);
  } finally {
    await engine.stop();
  }
}

describe('stop() while calls wait', () => {
  it('a wait() on a batch that has not ended rejects ENGINE_STATE', async () => {
    const { job, open } = gatedJob();
    const engine = createEngine({ jobs: [job], store: memoryStore(), logger: false });
    await engine.start();
    try {
      const batch = await engine.submit('gated', 4);
      const waiting = engine.wait(batch.id);
      await engine.stop();
      await expect(waiting).rejects.toMatchObject({ code: 'ENGINE_STATE' });
    } finally {
      open();
      await engine.stop();
    }
  });

  it.each(['cancel', 'pause'] as const)(
    'a %s left for the engine that runs the batch rejects ENGINE_STATE; the request stays for its owner',
    async (control) => {
      const path = sqlitePath();
      const { job, open } = gatedJob();
      // A, the owner, does not see requests (its sweeps find none) until the test is done: B's
      // request cannot be answered before B stops, and it stays on the row for the next owner. (A
      // sweeps 50 ms after its queue empties, whatever claimIntervalMs says: an earlier version of
      // this test let A carry the request out whenever opening the probing store took longer.)
      let seeNothing: () => void = () => {};
      const blind = new Promise<void>((resolve) => {
        seeNothing = resolve;
      });
      const a = createEngine({
        jobs: [job],
        store: new Proxy(sqliteStore({ path }), {
          get(target, prop) {
            const value: unknown = Reflect.get(target, prop, target);
            if (prop === 'pendingControls')
              return async () => {
                await blind;
                return [];
              };
            return typeof value === 'function' ? value.bind(target) : value;
          },
        }),
        logger: false,
        ownerId: 'stop-pending/1/a',
        claimIntervalMs: 60_000,
      });
      const b = createEngine({
        jobs: [job],
        store: sqliteStore({ path }),
        logger: false,
        ownerId: 'stop-pending/1/b',
      });
      await a.start();
      await b.start();
      let c: ReturnType<typeof createEngine> | undefined;
      try {
        const batch = await a.submit('gated', 4, { id: 'x' });
        const asked = b[control](batch.id);
        asked.catch(() => {}); // judged below, after the stop
        // The request is on the row before B stops.
        const store = sqliteStore({ path });
        await store.open();
        try {
          while ((await store.controlOf('x')) === undefined) await new Promise((r) => setImmediate(r));
        } finally {
          await store.close();
        }
        await b.stop();
        await expect(asked).rejects.toMatchObject({ code: 'ENGINE_STATE' });
        seeNothing(); // A's sweeps end (finding nothing), so that it can stop
        await a.stop();
        // The next owner finds the request and carries it out.
        c = createEngine({
          jobs: [job],
          store: sqliteStore({ path }),
          logger: false,
          ownerId: 'stop-pending/1/c',
        });
        await c.start();
        if (control === 'cancel') expect((await c.wait('x')).status).toBe('CANCELLED');
        else
          await new Promise<void>((resolve) => {
            c!.subscribe('x', (s) => s.status === 'PAUSED' && resolve());
          });
      } finally {
        open();
        seeNothing();
        await b.stop();
        await a.stop();
        await c?.stop();
      }
    },
  );
});

describe('stop() under a submit still storing its batch', () => {
  it.each(['sqlite', 'memory', 'postgres'] as const)(
    'the submit rejects ENGINE_STATE (not the store\'s "not open"), reads its source no further, closes it, and nothing is stored (%s)',
    async (kind) => {
      if (kind === 'postgres' && (await pgUnreachable('stop() under a PostgreSQL submit'))) return;
      const path = sqlitePath();
      const memory = memoryStore();
      const schema = pgSchema();
      const store = () =>
        kind === 'sqlite'
          ? sqliteStore({ path })
          : kind === 'memory'
            ? memory
            : postgresStore({ connectionString: PG_URL, schema });
      const { promise: atGate, open: reached } = latch();
      const { promise: gate, open } = latch();
      const { promise: closed, open: close } = latch();
      let read = 0;
      const job = defineJob({
        name: 'slow-input',
        // The partitions are streamed into the store as they come: the submit is half way when stop() runs.
        partition: async function* (n: number) {
          try {
            for (let i = 0; i < n; i++) {
              if (i === n / 2) {
                reached();
                await gate;
              }
              read++;
              yield { key: `k${i}`, payload: i };
            }
          } finally {
            close(); // a cursor the source held would be released here
          }
        },
        handler: async (i: number) => i,
      });
      const engine = createEngine({ jobs: [job], store: store(), logger: false });
      await engine.start();
      const submitted = engine.submit(job, 5_000, { id: 'half' }).catch((err: unknown) => err);
      await atGate;
      const stopped = engine.stop();
      // PostgreSQL's stop() waits for the submit's transaction, which ends at the source's next item.
      if (kind === 'postgres') open();
      await stopped;
      open();
      await refusedWithNothingStored(submitted, closed, () =>
        createEngine({ jobs: [job], store: store(), logger: false }),
      );
      // The item the source was waiting to give when stop() began, and none after it.
      expect(read).toBe(2_501);
    },
  );

  it.each(['sqlite', 'memory'] as const)(
    'a submit reading a sync generator stops between its chunks: ENGINE_STATE, the source closed, nothing stored (%s)',
    async (kind) => {
      // A sync source is read without a promise per partition (src/store/sqlite.ts `Source.fill`),
      // so stop() can only come in where the submit yields: between chunks on SQLite.
      const path = sqlitePath();
      const memory = memoryStore();
      const store = () => (kind === 'sqlite' ? sqliteStore({ path }) : memory);
      const { promise: atMark, open: reached } = latch();
      const { promise: closed, open: close } = latch();
      let read = 0;
      const job = defineJob({
        name: 'sync-input',
        partition: function* (n: number) {
          try {
            for (let i = 0; i < n; i++) {
              if (i === 2_000) reached();
              read++;
              yield { key: `k${i}`, payload: i };
            }
          } finally {
            close();
          }
        },
        handler: async (i: number) => i,
      });
      const engine = createEngine({ jobs: [job], store: store(), logger: false });
      await engine.start();
      const submitted = engine.submit(job, 1_000_000, { id: 'sync' }).catch((err: unknown) => err);
      await atMark;
      await engine.stop();
      await refusedWithNothingStored(submitted, closed, () =>
        createEngine({ jobs: [job], store: store(), logger: false }),
      );
      // The chunk being read when stop() began, and none after it (a chunk is 1,000 on SQLite).
      expect(read).toBeLessThanOrEqual(3_000);
    },
  );
});
