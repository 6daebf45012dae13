import Database from 'better-sqlite3';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, sqliteStore } from '../../src/index.js';
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
});
