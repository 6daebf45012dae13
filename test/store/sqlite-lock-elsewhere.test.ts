import { setImmediate as nextTurn } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, sqliteStore } from '../../src/index.js';
import { latch } from '../helpers.js';
import { sqlitePath } from '../support/stores.js';

/**
 * Another process (here: another connection) holding the SQLite file's write lock makes the writer
 * thread wait, not the engine's (found by an outside probe: a small group, committed on the engine's
 * thread, waited there for the busy timeout, twice, and froze the host's event loop ~10 s). A small
 * group now asks for the lock without waiting and, refused, goes to the writer thread.
 */
describe('sqlite store: a write lock held elsewhere', () => {
  it("the engine's event loop goes on while a write waits for the lock; the write lands once it is free", async () => {
    const path = sqlitePath();
    const busyTimeoutMs = 3000;
    const job = defineJob({
      name: 'one',
      partition: () => [{ key: 'a', payload: 1 }],
      handler: async () => 1,
    });
    const engine = createEngine({ jobs: [job], store: sqliteStore({ path, busyTimeoutMs }), logger: false });
    await engine.start();
    const other = new Database(path);
    try {
      other.prepare('BEGIN IMMEDIATE').run();
      const submitted = engine.submit('one', null, { id: 'b' });
      // The submit's write is committed a microtask from now; a turn of the event loop later we are
      // back here at once, where waiting on the engine's thread took the whole busy timeout.
      const t0 = performance.now();
      await nextTurn();
      await nextTurn();
      expect(performance.now() - t0).toBeLessThan(busyTimeoutMs / 2);
      other.prepare('COMMIT').run();
      await submitted;
      expect(await engine.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 1 });
    } finally {
      if (other.inTransaction) other.prepare('ROLLBACK').run();
      other.close();
      await engine.stop();
    }
  });

  it('a creation that failed, and whose undo failed too, does not hold its id: the same id is submitted again at once', async () => {
    const path = sqlitePath();
    const written = latch();
    const gate = latch();
    const CHUNK = 1000; // the SQLite store's: a larger batch is written a chunk at a time
    const job = defineJob({
      name: 'import',
      partition: async function* (broken: boolean) {
        for (let i = 0; i <= CHUNK; i++) {
          if (i === CHUNK && broken) {
            written.open(); // the first chunk is on its way to the file (invisible)
            await gate.promise;
            throw new Error('the source broke');
          }
          yield { key: `k${i}`, payload: i };
        }
      },
      handler: async (i: number) => i,
    });
    const engine = createEngine({
      jobs: [job],
      store: sqliteStore({ path, busyTimeoutMs: 50 }),
      logger: false,
    });
    await engine.start();
    const other = new Database(path);
    try {
      const failed = engine.submit('import', true, { id: 'b' });
      await written.promise;
      // The source is read ahead of the writes (src/store/write-ahead.ts): wait until the first
      // chunk is in the file (a condition), so that only the undo meets the lock.
      const rows = other.prepare('SELECT count(*) AS n FROM partitions WHERE batch_id = ?');
      while ((rows.get('b') as { n: number }).n < CHUNK) await new Promise((r) => setTimeout(r, 5));
      other.prepare('BEGIN IMMEDIATE').run(); // the undo cannot get the lock: it fails and leaves the rows
      gate.open();
      await expect(failed).rejects.toMatchObject({ code: 'VALIDATION', message: /the source broke/ });
      other.prepare('COMMIT').run();
      await engine.submit('import', false, { id: 'b' });
      expect(await engine.wait('b')).toMatchObject({
        status: 'COMPLETED',
        total: CHUNK + 1,
        succeeded: CHUNK + 1,
      });
    } finally {
      if (other.inTransaction) other.prepare('ROLLBACK').run();
      other.close();
      await engine.stop();
    }
  }, 20_000);
});
