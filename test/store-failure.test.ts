import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, defineJob, sqliteStore } from '../src/index.js';
import { untilSummary as until } from './support/until.js';

const dir = mkdtempSync(join(tmpdir(), 'partita-store-failure-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Inline partitions that wait for the test to open a gate. */
function gatedJob() {
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  const job = defineJob({
    name: 'gated',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
    handler: async (i: number) => {
      if (i >= 5) await gate;
      return { i };
    },
    concurrency: 4,
    // One partition per task: a group holding a finished partition and a gated one would count
    // neither until the gate opens, and the test waits for five outcomes before it opens it.
    batching: false,
  });
  return { job, open: () => open() };
}

/** Another connection holding SQLite's write lock: every write of the engine fails with SQLITE_BUSY. */
function lockWrites(path: string) {
  const blocker = new Database(path);
  blocker.exec('BEGIN EXCLUSIVE');
  return () => {
    blocker.exec('ROLLBACK');
    blocker.close();
  };
}

describe('when the store cannot write', () => {
  it('no final state is reported until the outcomes are durable; the error is reported; the batch finishes once the store is back', async () => {
    const path = join(dir, 'busy.db');
    const { job, open } = gatedJob();
    const errors: Error[] = [];
    const engine = createEngine({
      jobs: [job],
      store: sqliteStore({ path, busyTimeoutMs: 10 }),
      logger: false,
      onError: (err) => errors.push(err),
    });
    await engine.start();
    try {
      const batch = await engine.submit('gated', 20, { id: 'busy' });
      await until(engine, batch.id, (s) => s.succeeded >= 5);
      const unlock = lockWrites(path);
      open();
      const allSettled = await until(engine, batch.id, (s) => s.succeeded === 20);
      expect(allSettled.status).not.toBe('COMPLETED');
      await new Promise<void>((resolve) => {
        const check = () => (errors.length > 0 ? resolve() : setImmediate(check));
        check();
      });
      expect(errors[0]).toMatchObject({ code: 'STORE' });
      expect((await engine.get(batch.id)).status).toBe('FINALIZING');
      unlock();
      const summary = await engine.wait(batch.id);
      expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: 20 });
      expect(await engine.recount(batch.id)).toEqual({ total: 20, succeeded: 20, failed: 0 });
    } finally {
      await engine.stop();
    }
  });

  it('stopped while the store is down, the batch finishes correctly after a restart', async () => {
    const path = join(dir, 'restart.db');
    const { job, open } = gatedJob();
    const first = createEngine({
      jobs: [job],
      store: sqliteStore({ path, busyTimeoutMs: 10 }),
      logger: false,
      onError: () => {},
    });
    await first.start();
    const batch = await first.submit('gated', 20, { id: 'restart' });
    await until(first, batch.id, (s) => s.succeeded >= 5);
    const unlock = lockWrites(path);
    open();
    await until(first, batch.id, (s) => s.succeeded === 20);
    await first.stop();
    unlock();

    const { job: again, open: openAgain } = gatedJob();
    openAgain();
    const second = createEngine({ jobs: [again], store: sqliteStore({ path }), logger: false });
    await second.start();
    try {
      const summary = await second.wait(batch.id);
      expect(summary).toMatchObject({ status: 'COMPLETED', total: 20, succeeded: 20 });
      expect(await second.recount(batch.id)).toEqual({ total: 20, succeeded: 20, failed: 0 });
    } finally {
      await second.stop();
    }
  });
});
