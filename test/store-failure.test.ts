import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, defineJob, sqliteStore } from '../src/index.js';
import { MAX_BACKLOG } from '../src/runtime/durability.js';
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

  it('holds the work back while its outcomes cannot be written: they do not pile up in memory', async () => {
    // A store behind the work (here: one that cannot write at all) used to let outcomes queue in
    // the batch's journal without bound (110,000 of them in a batch of 1,000,000 partitions on a
    // loaded machine). Now the lanes start nothing more once MAX_BACKLOG outcomes wait.
    const path = join(dir, 'backlog.db');
    const total = 20_000;
    const maxItems = 10;
    const concurrency = 8;
    let calls = 0;
    const job = defineJob({
      name: 'fast',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: (i: number) => {
        calls++;
        return i;
      },
      concurrency,
      batching: { maxItems },
    });
    const engine = createEngine({
      jobs: [job],
      store: sqliteStore({ path, busyTimeoutMs: 10 }),
      logger: false,
      onError: () => {},
    });
    await engine.start();
    try {
      const batch = await engine.submit('fast', total, { id: 'backlog' });
      const unlock = lockWrites(path);
      // Wait, in turns of the event loop (not time), until no handler has been called for 50 turns
      // in a row, or until every partition ran (what the journal without a bound let happen).
      await new Promise<void>((resolve) => {
        let seen = -1;
        let still = 0;
        const check = () => {
          if (calls === total) return resolve();
          still = calls === seen ? still + 1 : 0;
          seen = calls;
          if (still >= 50) return resolve();
          setImmediate(check);
        };
        check();
      });
      // What ran: the outcomes waiting behind the failed write, the group that fills the bound, what
      // the lanes had started then, and what may have been written before the lock (a group at most).
      expect(calls).toBeGreaterThanOrEqual(MAX_BACKLOG);
      expect(calls).toBeLessThanOrEqual(MAX_BACKLOG + 2 * 1000 + concurrency * maxItems);
      expect(await engine.get(batch.id)).toMatchObject({ status: 'PROCESSING' });
      unlock();
      const summary = await engine.wait(batch.id);
      expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: total });
      // Each partition ran once: the held starts went when the store caught up, none again.
      expect(calls).toBe(total);
      expect(await engine.recount(batch.id)).toEqual({ total, succeeded: total, failed: 0 });
    } finally {
      await engine.stop();
    }
  });
});
