import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ValidationError } from '../../src/errors.js';
import { createEngine, defineJob } from '../../src/index.js';
import { SQLITE_MIGRATIONS } from '../../src/store/migrations/sqlite.js';
import { sqliteStore, WAL_SIZE_LIMIT } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/store.js';
import { buildSourceForChild } from './child-build.js';
import { batchRecord, gatedSource, state, storeContract } from './contract.js';

const dirs: string[] = [];
/** A fresh database path per test, in a directory that does not exist yet (open() creates it). */
function tempPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'partita-sqlite-'));
  dirs.push(dir);
  return join(dir, 'nested', 'deeper', 'partita.db');
}
function removeDirs(): void {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

storeContract('sqlite', async () => ({
  store: sqliteStore({ path: tempPath() }),
  cleanup: async () => removeDirs(),
}));

describe('sqliteStore', () => {
  const open: Store[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    removeDirs();
  });
  const start = async (path: string) => {
    const store = sqliteStore({ path });
    open.push(store);
    await store.open();
    return store;
  };
  /** Reads or tampers with the file behind the store's back, as another process or a crash would. */
  const raw = <T>(path: string, fn: (db: Database.Database) => T): T => {
    const db = new Database(path);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  const record = batchRecord;
  const two = [
    { key: 'a', payload: 1 },
    { key: 'b', payload: 2 },
  ];

  it('creates the directory, uses WAL, records migrations, and re-opening is a no-op', async () => {
    const path = tempPath();
    const store = await start(path);
    expect(existsSync(path)).toBe(true);
    await store.createBatch(record('b1'), two);
    await store.close();
    const applied = raw(path, (db) =>
      db.prepare('SELECT id, applied_at FROM partita_migrations ORDER BY id').all(),
    );
    expect(applied.map((r) => (r as { id: number }).id)).toEqual(SQLITE_MIGRATIONS.map((_, i) => i + 1));
    expect(raw(path, (db) => db.pragma('journal_mode', { simple: true }))).toBe('wal');

    await store.open();
    expect(
      raw(path, (db) => db.prepare('SELECT id, applied_at FROM partita_migrations ORDER BY id').all()),
    ).toEqual(applied);
    expect((await store.loadBatch('b1'))?.record).toEqual(record('b1'));
    expect(await store.readPartitions('b1', 0, 10)).toHaveLength(2);
  });

  it('indexes only settled partitions in the journal, and reads the journal and its end through that index', async () => {
    const path = tempPath();
    const store = await start(path);
    await store.createBatch(record('b1'), two);
    await store.close();
    raw(path, (db) => {
      const index = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'partitions_seq'").get() as {
        sql: string;
      };
      expect(index.sql).toMatch(/WHERE seq IS NOT NULL$/);
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all('b1', 0, 10) as { detail: string }[]).map(
          (r) => r.detail,
        );
      // The store's two journal reads (sql-store.ts: outcomesSince and maxOf).
      expect(
        plan('SELECT idx FROM partitions WHERE batch_id = ? AND seq > ? AND seq <= ? ORDER BY seq'),
      ).toEqual([expect.stringContaining('USING INDEX partitions_seq')]);
      expect(
        plan('SELECT max(seq) FROM partitions WHERE batch_id = ? AND seq IS NOT NULL AND ? < ?').join(' '),
      ).toContain('partitions_seq');
    });
  });

  it('refuses a database whose schema is newer than the code (SNAPSHOT_VERSION) and leaves it untouched', async () => {
    const path = tempPath();
    const store = await start(path);
    await store.createBatch(record('b1'), two);
    await store.close();
    const future = SQLITE_MIGRATIONS.length + 1;
    raw(path, (db) =>
      db.prepare('INSERT INTO partita_migrations (id, applied_at) VALUES (?, ?)').run(future, 'later'),
    );

    await expect(store.open()).rejects.toMatchObject({ code: 'SNAPSHOT_VERSION', found: future });
    await expect(store.loadBatch('b1')).rejects.toMatchObject({ code: 'STORE' }); // not open
    expect(raw(path, (db) => db.prepare('SELECT max(id) AS id FROM partita_migrations').get())).toEqual({
      id: future,
    });
    expect(raw(path, (db) => db.prepare('SELECT count(*) AS n FROM partitions').get())).toEqual({ n: 2 });
  });

  it('a store opening on the file leaves the writes of another store of this process alone (its migrations hold the lock across no await)', async () => {
    const path = tempPath();
    const first = sqliteStore({ path, busyTimeoutMs: 300 });
    open.push(first);
    await first.open();
    // A write of the first store asked 0, 1, 2, … microtask turns after the second starts to open:
    // one asked while the second held its migration's write lock across an await waited in its busy
    // handler, which blocks the thread that would release the lock, and failed after the timeout.
    const failed: string[] = [];
    for (let turns = 0; turns < 40; turns++) {
      const second = sqliteStore({ path });
      const opening = second.open();
      for (let i = 0; i < turns; i++) await null;
      await first.requestControl('nobody', { type: 'pause' }).catch((err: Error) => {
        failed.push(`${turns}: ${err.message}`);
      });
      await opening;
      await second.close();
    }
    expect(failed).toEqual([]);
  });

  it('removes a batch left invisible by a crash during createBatch when it opens', async () => {
    const path = tempPath();
    const store = await start(path);
    await store.createBatch(record('kept'), two);
    await store.close();
    raw(path, (db) => {
      db.prepare(
        `INSERT INTO batches (id, job, status, priority, created_at, record, creating)
         VALUES ('ghost', 'job', 'QUEUED', 0, '2026-01-01T00:00:00.000Z', '{}', 1)`,
      ).run();
      db.prepare(
        "INSERT INTO partitions (batch_id, idx, key, payload) VALUES ('ghost', 0, 'a', '1'), ('ghost', 1, 'b', '2')",
      ).run();
    });

    await store.open();
    const count = (table: string, column: string) =>
      raw(path, (db) => db.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${column} = 'ghost'`).get());
    expect(count('batches', 'id')).toEqual({ n: 0 });
    expect(count('partitions', 'batch_id')).toEqual({ n: 0 });
    expect((await store.listBatches()).map((b) => b.id)).toEqual(['kept']);
    expect(await store.readPartitions('kept', 0, 10)).toHaveLength(2);
  });

  it('leaves nothing visible when the store closes in the middle of createBatch', async () => {
    const path = tempPath();
    const store = await start(path);
    const { source, halfway, release } = gatedSource(2500);
    const pending = store.createBatch(record('cut'), source);
    await halfway;
    await store.close();
    release();
    await expect(pending).rejects.toMatchObject({ code: 'STORE' });
    expect(raw(path, (db) => db.prepare("SELECT creating FROM batches WHERE id = 'cut'").get())).toEqual({
      creating: 1,
    });

    await store.open();
    expect(await store.loadBatch('cut')).toBeUndefined();
    expect(
      raw(path, (db) => db.prepare("SELECT count(*) AS n FROM partitions WHERE batch_id = 'cut'").get()),
    ).toEqual({ n: 0 });
    expect(await store.createBatch(record('cut'), two)).toEqual({ created: true });
  });

  const partitionRows = (path: string, id: string) =>
    raw(path, (db) => db.prepare('SELECT count(*) AS n FROM partitions WHERE batch_id = ?').get(id)) as {
      n: number;
    };
  /**
   * The source is read ahead of the writes (src/store/write-ahead.ts): at `halfway` the second
   * chunk may still be on its way to the file. Wait until `n` rows are there (a condition).
   */
  const untilRows = async (path: string, id: string, n: number) => {
    while (partitionRows(path, id).n < n) await new Promise((r) => setTimeout(r, 5));
    return partitionRows(path, id).n;
  };

  it('leaves a creation in progress in another store of this process alone when it opens', async () => {
    const path = tempPath();
    const first = await start(path);
    const { source, halfway, release } = gatedSource(2500);
    const pending = first.createBatch(record('streaming'), source);
    await halfway;
    expect(await untilRows(path, 'streaming', 2000)).toBe(2000); // two chunks written, the batch invisible

    const second = await start(path);
    expect(await second.loadBatch('streaming')).toBeUndefined();
    release();
    expect(await pending).toEqual({ created: true });
    expect((await second.loadBatch('streaming'))?.record).toMatchObject({ total: 2501 });
    expect(partitionRows(path, 'streaming').n).toBe(2501);
    expect(await second.readPartitions('streaming', 2500, 10)).toEqual([
      { index: 2500, key: 'last', payload: null, status: 'pending' },
    ]);
  });

  it('removes the leftovers of creators that are gone, and only those', async () => {
    const path = tempPath();
    const store = await start(path);
    await store.close();
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    const creators = {
      deadProcess: `${hostname()}/${deadPid}/a1`,
      closedStoreOfThisProcess: `${hostname()}/${process.pid}/not-open`,
      liveProcess: `${hostname()}/${process.ppid}/b2`,
      otherHost: `not-${hostname()}/1/c3`,
      legacy: null,
    };
    raw(path, (db) => {
      const batch = db.prepare(
        `INSERT INTO batches (id, job, status, priority, created_at, record, creating, creator)
         VALUES (?, 'job', 'QUEUED', 0, '2026-01-01T00:00:00.000Z', '{}', 1, ?)`,
      );
      const part = db.prepare("INSERT INTO partitions (batch_id, idx, key, payload) VALUES (?, ?, ?, '1')");
      for (const [id, creator] of Object.entries(creators)) {
        batch.run(id, creator);
        for (let i = 0; i < 3; i++) part.run(id, i, `k${i}`);
      }
    });

    await store.open();
    const left = raw(path, (db) => db.prepare('SELECT id FROM batches ORDER BY id').all()) as {
      id: string;
    }[];
    expect(left.map((r) => r.id)).toEqual(['liveProcess', 'otherHost']);
    for (const id of ['deadProcess', 'closedStoreOfThisProcess', 'legacy']) {
      expect(partitionRows(path, id).n).toBe(0);
      expect(await store.createBatch(record(id), two)).toEqual({ created: true });
      expect(partitionRows(path, id).n).toBe(2);
    }
    expect(partitionRows(path, 'liveProcess').n).toBe(3);
  });

  it('takes over an id held by the leftovers of a gone creator when createBatch meets them', async () => {
    const path = tempPath();
    const store = await start(path);
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    raw(path, (db) => {
      db.prepare(
        `INSERT INTO batches (id, job, status, priority, created_at, record, creating, creator)
         VALUES ('left', 'job', 'QUEUED', 0, '2026-01-01T00:00:00.000Z', '{}', 1, ?)`,
      ).run(`${hostname()}/${deadPid}/gone`);
      db.prepare("INSERT INTO partitions (batch_id, idx, key, payload) VALUES ('left', 0, 'x', '1')").run();
    });
    expect(await store.createBatch(record('left'), two)).toEqual({ created: true });
    expect(await store.readPartitions('left', 0, 10)).toEqual([
      { index: 0, key: 'a', payload: 1, status: 'pending' },
      { index: 1, key: 'b', payload: 2, status: 'pending' },
    ]);
    // One held by a live creator stays theirs: the id is taken.
    raw(path, (db) =>
      db
        .prepare(
          `INSERT INTO batches (id, job, status, priority, created_at, record, creating, creator)
           VALUES ('busy', 'job', 'QUEUED', 0, '2026-01-01T00:00:00.000Z', '{}', 1, ?)`,
        )
        .run(`${hostname()}/${process.ppid}/live`),
    );
    expect(await store.createBatch(record('busy'), two)).toEqual({ created: false });
    expect(partitionRows(path, 'busy').n).toBe(0);
  });

  it('fails a creation whose row another store removed, with STORE, and keeps none of its partitions', async () => {
    const path = tempPath();
    const store = await start(path);
    const { source, halfway, release } = gatedSource(2500);
    const pending = store.createBatch(record('taken'), source);
    await halfway;
    // What a cleanup that wrongly judged this creation dead would do.
    raw(path, (db) => {
      db.prepare("DELETE FROM partitions WHERE batch_id = 'taken'").run();
      db.prepare("DELETE FROM batches WHERE id = 'taken'").run();
    });
    release();
    const err = await pending.catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'STORE' });
    expect(String((err as Error).message)).toMatch(/"taken".*no longer being created/);
    expect(partitionRows(path, 'taken').n).toBe(0);
    expect(await store.loadBatch('taken')).toBeUndefined();
    expect(await store.createBatch(record('taken'), two)).toEqual({ created: true });
    expect(partitionRows(path, 'taken').n).toBe(2);
  });

  it('checkpoints in a thread of its own: the database file takes the WAL pages long before the connection would', async () => {
    const path = tempPath();
    const store = await start(path);
    const before = statSync(path).size;
    // About 350 pages in the WAL: under SQLite's default threshold of 1,000 pages (and the store's
    // own 4,000), so the engine's connection copies none of them into the file itself.
    const big = Array.from({ length: 10 }, (_, k) => ({ key: `k${k}`, payload: 'x'.repeat(4000) }));
    for (let i = 0; i < 35; i++) await store.createBatch(record(`c${i}`, { total: 10 }), big);
    await vi.waitFor(() => expect(statSync(path).size).toBeGreaterThan(before + 1_000_000), {
      timeout: 20_000,
      interval: 20,
    });
    expect((await store.readPartitions('c34', 9, 1))[0]).toMatchObject({ key: 'k9', status: 'pending' });
  });

  it('starts the WAL over itself once it has copied it whole, so that no write of the store syncs a new WAL header', async () => {
    const path = tempPath();
    const store = await start(path);
    /** The WAL's frames, and how many of them are in the database file (read without copying any). */
    const wal = () =>
      raw(path, (db) => {
        const [r] = db.pragma('wal_checkpoint(NOOP)') as Array<{ log: number; checkpointed: number }>;
        return { log: r!.log, checkpointed: r!.checkpointed };
      });
    for (const round of [1, 2]) {
      await store.createBatch(record(`w${round}`, { total: 2 }), two);
      expect(wal().log).toBeGreaterThan(1);
      // Copied whole, then started over by the checkpointer's one-page write, which it leaves alone.
      await vi.waitFor(() => expect(wal()).toEqual({ log: 1, checkpointed: 0 }), {
        timeout: 20_000,
        interval: 20,
      });
    }
    // The page it wrote holds what it held: the header's user_version, unchanged.
    expect(raw(path, (db) => db.pragma('user_version', { simple: true }))).toBe(0);
    expect((await store.readPartitions('w2', 0, 2)).map((p) => p.key)).toEqual(['a', 'b']);
  });

  it('cuts a WAL file that a burst grew back to WAL_SIZE_LIMIT when it starts over, instead of keeping it at its largest', async () => {
    const path = tempPath();
    const store = await start(path);
    const walSize = () => statSync(`${path}-wal`).size;
    // A long read holds every checkpoint back, so the burst's pages pile up in the WAL.
    const reader = new Database(path);
    try {
      reader.prepare('BEGIN').run();
      reader.prepare('SELECT count(*) FROM batches').get();
      // 4,000 pages of 9 KB partitions: about 40 MB of WAL, past the 32 MiB limit.
      const wide = Array.from({ length: 4000 }, (_, k) => ({ key: `k${k}`, payload: 'x'.repeat(9000) }));
      await store.createBatch(record('burst', { total: wide.length }), wide);
      expect(walSize()).toBeGreaterThan(WAL_SIZE_LIMIT);
      reader.prepare('COMMIT').run();
    } finally {
      reader.close();
    }
    // Copied whole, then started over by the checkpointer, which cuts the file back.
    await vi.waitFor(() => expect(walSize()).toBeLessThanOrEqual(WAL_SIZE_LIMIT), {
      timeout: 20_000,
      interval: 20,
    });
    expect((await store.readPartitions('burst', 3999, 1))[0]).toMatchObject({ key: 'k3999' });
    await store.createBatch(record('after', { total: 2 }), two);
    expect((await store.readPartitions('after', 0, 2)).map((p) => p.key)).toEqual(['a', 'b']);
  });

  it('finds the unfinished batches through the status index, never by reading every finished batch', async () => {
    const path = tempPath();
    const store = await start(path);
    // The SQL the store prepares, as it prepares it (a pass-through: every statement runs as usual).
    const prepared: string[] = [];
    const prepare = Database.prototype.prepare;
    const spy = vi.spyOn(Database.prototype, 'prepare').mockImplementation(function (
      this: Database.Database,
      sql: string,
    ) {
      prepared.push(sql);
      return prepare.call(this, sql);
    });
    try {
      // What every engine's claim sweep runs once a second, and a listing of the unfinished ones.
      await store.listUnowned(10);
      await store.nextLeaseExpiry!('someone');
      await store.listBatches({ unfinished: true });
    } finally {
      spy.mockRestore();
    }
    const queries = prepared.filter((q) => /FROM batches/.test(q));
    expect(queries).toHaveLength(3);
    for (const q of queries) {
      const plan = raw(path, (db) => {
        const stmt = db.prepare(`EXPLAIN QUERY PLAN ${q}`);
        const unbound = (q.match(/\?/g) ?? []).map(() => null);
        return (stmt.all(...unbound) as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
      });
      // An outside probe: "SCAN batches" read 30,000 finished batches once a second on an idle engine.
      expect(plan).toMatch(/SEARCH batches USING INDEX batches_status_created \(status=\?\)/);
      expect(plan).not.toMatch(/SCAN batches/);
    }
  });

  describe('group commit: the writes of batches that arrive together share one transaction', () => {
    const done = (index: number, key: string) => ({
      index,
      key,
      status: 'succeeded' as const,
      result: index,
      attempts: 1,
      durationMs: 1,
      seq: index + 1,
      finishedAt: '2026-01-01T00:00:01.000Z',
    });
    const stored = (path: string, id: string) =>
      raw(path, (db) => ({
        batch: db.prepare('SELECT status, journal_seq AS seq FROM batches WHERE id = ?').get(id),
        settled: (
          db
            .prepare("SELECT count(*) AS n FROM partitions WHERE batch_id = ? AND status <> 'pending'")
            .get(id) as { n: number }
        ).n,
      }));

    it('leaves out only the write refused for a stale fence; the others of its group commit', async () => {
      const path = tempPath();
      const store = await start(path);
      const fences: Record<string, { owner: string; epoch: number }> = {};
      for (const id of ['a', 'b', 'c']) {
        await store.createBatch(record(id), two);
        const lease = await store.acquireLease(id, 'me', 60_000);
        fences[id] = { owner: 'me', epoch: lease!.epoch };
      }
      // Another engine took 'b' over: this engine's fence for it is stale.
      raw(path, (db) => db.prepare("UPDATE batches SET lease_epoch = lease_epoch + 1 WHERE id = 'b'").run());
      // Asked for in the same turn: one group.
      const results = await Promise.allSettled(
        ['a', 'b', 'c'].map((id) =>
          store.commit!(id, [done(0, 'a'), done(1, 'b')], state('COMPLETED', 2), fences[id]!),
        ),
      );
      expect(results[0]).toEqual({ status: 'fulfilled', value: { accepted: 2, saved: true } });
      expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: 'LEASE_LOST' } });
      expect(results[2]).toEqual({ status: 'fulfilled', value: { accepted: 2, saved: true } });
      expect(stored(path, 'a')).toEqual({ batch: { status: 'COMPLETED', seq: 2 }, settled: 2 });
      expect(stored(path, 'b')).toEqual({ batch: { status: 'QUEUED', seq: 0 }, settled: 0 });
      expect(stored(path, 'c')).toEqual({ batch: { status: 'COMPLETED', seq: 2 }, settled: 2 });
    });

    it('undoes a write that fails half way alone: a duplicate key stores nothing of its batch, the others are created', async () => {
      const path = tempPath();
      const store = await start(path);
      const dup = [
        { key: 'x', payload: 1 },
        { key: 'y', payload: 2 },
        { key: 'x', payload: 3 },
      ];
      const results = await Promise.allSettled([
        store.createBatch(record('first'), two),
        store.createBatch(record('dup'), dup),
        store.createBatch(record('last'), two),
      ]);
      expect(results[0]).toEqual({ status: 'fulfilled', value: { created: true } });
      expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: 'VALIDATION' } });
      expect(results[2]).toEqual({ status: 'fulfilled', value: { created: true } });
      expect(await store.loadBatch('dup')).toBeUndefined();
      expect(partitionRows(path, 'dup').n).toBe(0);
      expect(
        raw(path, (db) => db.prepare("SELECT count(*) AS n FROM batches WHERE id = 'dup'").get()),
      ).toEqual({
        n: 0,
      });
      expect(partitionRows(path, 'first').n).toBe(2);
      expect(partitionRows(path, 'last').n).toBe(2);
    });

    it('reports no write of a group stored when the database refuses the group, and stores none', async () => {
      const path = tempPath();
      const store = sqliteStore({ path, busyTimeoutMs: 0 });
      open.push(store);
      await store.open();
      const fences: Record<string, { owner: string; epoch: number }> = {};
      for (const id of ['a', 'b']) {
        await store.createBatch(record(id), two);
        fences[id] = { owner: 'me', epoch: (await store.acquireLease(id, 'me', 60_000))!.epoch };
      }
      // Another connection holds the write lock: the group's transaction cannot begin.
      const other = new Database(path);
      other.exec('BEGIN IMMEDIATE');
      try {
        const results = await Promise.allSettled(
          ['a', 'b'].map((id) => store.commit!(id, [done(0, 'a')], state('PROCESSING', 1), fences[id]!)),
        );
        expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
        expect(results[0]).toMatchObject({ reason: { code: 'STORE' } });
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
      expect(stored(path, 'a')).toEqual({ batch: { status: 'QUEUED', seq: 0 }, settled: 0 });
      // The same writes again, once the lock is free: both are stored.
      await Promise.all(
        ['a', 'b'].map((id) => store.commit!(id, [done(0, 'a')], state('PROCESSING', 1), fences[id]!)),
      );
      expect(stored(path, 'b')).toEqual({ batch: { status: 'PROCESSING', seq: 1 }, settled: 1 });
    });
  });

  describe('the writer thread: a group of 32 rows or more commits on a thread of its own', () => {
    const forty = Array.from({ length: 40 }, (_, i) => ({ key: `k${i}`, payload: i }));
    const outcomes = (n: number) =>
      Array.from({ length: n }, (_, i) => ({
        index: i,
        key: `k${i}`,
        status: 'succeeded' as const,
        result: { i },
        attempts: 1,
        durationMs: 1,
        seq: i + 1,
        finishedAt: '2026-01-01T00:00:01.000Z',
      }));
    const settledRows = (path: string, id: string) =>
      raw(
        path,
        (db) =>
          (
            db
              .prepare("SELECT count(*) AS n FROM partitions WHERE batch_id = ? AND status <> 'pending'")
              .get(id) as { n: number }
          ).n,
      );
    const leased = async (store: Store, id: string) => {
      await store.createBatch(record(id), forty);
      return { owner: 'me', epoch: (await store.acquireLease(id, 'me', 60_000))!.epoch };
    };

    it('commits while the engine thread is busy, and the promise settles after', async () => {
      const path = tempPath();
      const store = await start(path);
      const fence = await leased(store, 'busy');
      let settled = false;
      // Not the batch's final state: a group that ends a batch stays on this thread (below).
      const commit = store.commit!('busy', outcomes(40), state('PROCESSING', 40), fence).then((r) => {
        settled = true;
        return r;
      });
      await Promise.resolve(); // the group is made in a microtask
      // This thread now holds the event loop: only another thread can commit the group meanwhile.
      const deadline = Date.now() + 20_000;
      let seen = 0;
      while (seen < 40 && Date.now() < deadline) seen = settledRows(path, 'busy');
      expect(seen).toBe(40);
      expect(settled).toBe(false);
      expect(await commit).toEqual({ accepted: 40, saved: true });
      expect(await store.readPartitions('busy', 39, 1)).toMatchObject([{ index: 39, status: 'succeeded' }]);
    });

    it('a group that ends a batch commits on the engine thread up to 1,024 rows, on the writer thread beyond', async () => {
      const path = tempPath();
      const store = await start(path);
      // An answer from the writer thread is a message: it needs a turn of the event loop. A group
      // committed on this thread settles within the microtasks that follow the write.
      const settlesWithoutATurn = async (commit: Promise<unknown>) => {
        let settled = false;
        void commit.then(() => {
          settled = true;
        });
        for (let i = 0; i < 20 && !settled; i++) await Promise.resolve();
        const withoutATurn = settled;
        await commit;
        return withoutATurn;
      };
      const fence = await leased(store, 'ends');
      expect(
        await settlesWithoutATurn(store.commit!('ends', outcomes(40), state('COMPLETED', 40), fence)),
      ).toBe(true);
      expect(settledRows(path, 'ends')).toBe(40);
      const big = Array.from({ length: 1100 }, (_, i) => ({ key: `k${i}`, payload: i }));
      await store.createBatch(record('big'), big);
      const bigFence = { owner: 'me', epoch: (await store.acquireLease('big', 'me', 60_000))!.epoch };
      expect(
        await settlesWithoutATurn(store.commit!('big', outcomes(1100), state('COMPLETED', 1100), bigFence)),
      ).toBe(false);
      expect(settledRows(path, 'big')).toBe(1100);
    });

    it('leaves out only the write refused for a stale fence; the others commit', async () => {
      const path = tempPath();
      const store = await start(path);
      const fences = { a: await leased(store, 'a'), b: await leased(store, 'b') };
      raw(path, (db) => db.prepare("UPDATE batches SET lease_epoch = lease_epoch + 1 WHERE id = 'b'").run());
      const results = await Promise.allSettled(
        (['a', 'b'] as const).map((id) =>
          store.commit!(id, outcomes(40), state('COMPLETED', 40), fences[id]),
        ),
      );
      expect(results[0]).toEqual({ status: 'fulfilled', value: { accepted: 40, saved: true } });
      expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: 'LEASE_LOST', batchId: 'b' } });
      expect([settledRows(path, 'a'), settledRows(path, 'b')]).toEqual([40, 0]);
    });

    it('refuses a duplicate key with VALIDATION and stores nothing of that batch; the others are created', async () => {
      const path = tempPath();
      const store = await start(path);
      const dup = [...forty, { key: 'k3', payload: 'again' }];
      const results = await Promise.allSettled([
        store.createBatch(record('first'), forty),
        store.createBatch(record('dup'), dup),
      ]);
      expect(results[0]).toEqual({ status: 'fulfilled', value: { created: true } });
      expect(results[1]).toMatchObject({ status: 'rejected', reason: { code: 'VALIDATION' } });
      expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(ValidationError);
      expect([partitionRows(path, 'first').n, partitionRows(path, 'dup').n]).toEqual([40, 0]);
    });

    it('leaves an id held by a live creation of another store of this process alone, and takes one held by a gone creator', async () => {
      const path = tempPath();
      const first = await start(path);
      const { source, halfway, release } = gatedSource(2500);
      const pending = first.createBatch(record('held'), source);
      await halfway;
      await untilRows(path, 'held', 2000);
      const second = await start(path);
      // The thread has no registry of this process's live stores of its own: it is told them.
      expect(await second.createBatch(record('held'), forty)).toEqual({ created: false });
      expect(partitionRows(path, 'held').n).toBe(2000);
      release();
      expect(await pending).toEqual({ created: true });
      expect(partitionRows(path, 'held').n).toBe(2501);

      const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
      raw(path, (db) =>
        db
          .prepare(
            `INSERT INTO batches (id, job, status, priority, created_at, record, creating, creator)
             VALUES ('left', 'job', 'QUEUED', 0, '2026-01-01T00:00:00.000Z', '{}', 1, ?)`,
          )
          .run(`${hostname()}/${deadPid}/gone`),
      );
      expect(await second.createBatch(record('left'), forty)).toEqual({ created: true });
      expect(partitionRows(path, 'left').n).toBe(40);
    });

    it('if the thread ends while the store is open, later writes commit on the engine thread', async () => {
      const path = tempPath();
      const store = await start(path);
      const fences = { a: await leased(store, 'a'), b: await leased(store, 'b') };
      expect(await store.commit!('a', outcomes(40), state('COMPLETED', 40), fences.a)).toEqual({
        accepted: 40,
        saved: true,
      });
      // The thread dies (here: terminated; a crash of its isolate ends it the same way).
      const writer = (store as unknown as { conn: { writer: { thread: Worker | undefined } } }).conn.writer;
      await writer.thread!.terminate();
      expect(writer.thread).toBeUndefined();
      // A heavy group, which the thread would have taken, commits all the same, and so does a creation.
      expect(await store.commit!('b', outcomes(40), state('COMPLETED', 40), fences.b)).toEqual({
        accepted: 40,
        saved: true,
      });
      expect(await store.createBatch(record('after'), forty)).toEqual({ created: true });
      expect([settledRows(path, 'a'), settledRows(path, 'b'), partitionRows(path, 'after').n]).toEqual([
        40, 40, 40,
      ]);
      await store.close();
    });

    it('commits what was asked for before close() returns', async () => {
      const path = tempPath();
      const store = sqliteStore({ path });
      await store.open();
      const fence = await leased(store, 'closing');
      const commit = store.commit!('closing', outcomes(40), state('COMPLETED', 40), fence);
      await store.close();
      expect(await commit).toEqual({ accepted: 40, saved: true });
      expect(settledRows(path, 'closing')).toBe(40);
    });
  });

  describe('with another process on the same file', () => {
    let build: ReturnType<typeof buildSourceForChild>;
    let script: string;
    const children: ChildProcessWithoutNullStreams[] = [];
    beforeAll(() => {
      build = buildSourceForChild();
      script = join(build.dir, 'create-gated.mjs');
      writeFileSync(script, CHILD_SCRIPT);
    });
    afterAll(() => build.remove());
    afterEach(() => {
      for (const c of children.splice(0)) c.kill('SIGKILL');
    });

    /** Starts a child that streams `n` partitions of batch `id`, says "halfway", and waits for a line on stdin. */
    const creator = (path: string, id: string, n: number) => {
      const child = spawn(process.execPath, [script, path, id, String(n)]);
      children.push(child);
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      const next = async (): Promise<string> => {
        const line = await lines.next();
        if (line.done) throw new Error(`child ended early: ${stderr}`);
        return line.value;
      };
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      return { child, next, exited };
    };

    it('leaves the creation of a live process alone when it opens, and that creation completes', async () => {
      const path = tempPath();
      await (await start(path)).close(); // migrated before the child starts
      const other = creator(path, 'theirs', 2500);
      expect(await other.next()).toBe('halfway');
      expect(await untilRows(path, 'theirs', 2000)).toBe(2000);

      const store = await start(path); // cleanup runs here, while the child is mid-stream
      expect(await store.loadBatch('theirs')).toBeUndefined();
      other.child.stdin.write('go\n');
      expect(JSON.parse(await other.next())).toEqual({ created: true });
      await other.exited;
      expect((await store.loadBatch('theirs'))?.record).toMatchObject({ total: 2501 });
      expect(partitionRows(path, 'theirs').n).toBe(2501);
      let listed = 0;
      for await (const _ of store.partitions('theirs')) listed++;
      expect(listed).toBe(2501);
    });

    it('removes what a killed process was creating, leaving no partition behind', async () => {
      const path = tempPath();
      await (await start(path)).close();
      const other = creator(path, 'crashed', 2500);
      expect(await other.next()).toBe('halfway');
      await untilRows(path, 'crashed', 2000);
      other.child.kill('SIGKILL');
      await other.exited;
      expect(partitionRows(path, 'crashed').n).toBe(2000);

      const store = await start(path);
      expect(partitionRows(path, 'crashed').n).toBe(0);
      expect(await store.createBatch(record('crashed', { total: 10 }), two)).toEqual({ created: true });
      expect((await store.loadBatch('crashed'))?.record).toMatchObject({ total: 2 });
      expect(partitionRows(path, 'crashed').n).toBe(2);
    });

    it('tells whether an id is being created by a live store: a submit of that id waits, then makes its own batch once the creator is killed', async () => {
      const path = tempPath();
      await (await start(path)).close();
      const other = creator(path, 'contested', 2500);
      expect(await other.next()).toBe('halfway');
      await untilRows(path, 'contested', 2000);

      const store = sqliteStore({ path });
      const asked = vi.spyOn(store, 'beingCreated');
      const job = defineJob({ name: 'job', partition: (n: number) => keysOf(n), handler: async () => 'ok' });
      const engine = createEngine({ jobs: [job], store, logger: false });
      await engine.start();
      try {
        expect(await store.beingCreated!('contested')).toBe(true);
        expect(await store.beingCreated!('nobody')).toBe(false);
        const submitted = engine.submit(job, 3, { id: 'contested' });
        // The submit found the id taken by the live creation and reads again while it lasts.
        await vi.waitFor(() => expect(asked.mock.calls.length).toBeGreaterThan(1), { timeout: 20_000 });
        other.child.kill('SIGKILL');
        await other.exited;
        // It waited 30 s and answered NOT_FOUND: an outside probe.
        expect(await submitted).toMatchObject({ id: 'contested', total: 3 });
        expect((await engine.wait('contested')).status).toBe('COMPLETED');
        expect(await store.beingCreated!('contested')).toBe(false);
        expect(partitionRows(path, 'contested').n).toBe(3);
      } finally {
        await engine.stop();
      }
    });
  });

  it('returns a record or state that does not parse as its raw text', async () => {
    const path = tempPath();
    const store = await start(path);
    await store.createBatch(record('bad'), two);
    raw(path, (db) =>
      db.prepare("UPDATE batches SET record = '{\"id\": trunc', state = 'not json' WHERE id = 'bad'").run(),
    );
    const row = await store.loadBatch('bad');
    expect(row).toMatchObject({ id: 'bad', status: 'QUEUED', record: '{"id": trunc', state: 'not json' });
    expect((await store.listBatches()).find((b) => b.id === 'bad')?.record).toBe('{"id": trunc');
  });

  it('validates its options, naming the option', () => {
    expect(() => sqliteStore({ path: '' })).toThrow(/path: /);
    expect(() => sqliteStore({ path: 'x.db', synchronous: 'OFF' as 'FULL' })).toThrow(
      /synchronous: .*"FULL"/,
    );
  });

  it('accepts synchronous FULL', async () => {
    const path = tempPath();
    const store = sqliteStore({ path, synchronous: 'FULL' });
    open.push(store);
    await store.open();
    expect(await store.createBatch(record('f'), two)).toEqual({ created: true });
  });
});

/** Run by a child `node` on the compiled sources: creates a batch whose source waits for stdin. */
const keysOf = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i }));

const CHILD_SCRIPT = `
import { sqliteStore } from './src/store/sqlite.js';
const [path, id, n] = process.argv.slice(2);
const store = sqliteStore({ path });
await store.open();
let go;
const gate = new Promise((resolve) => { go = resolve; });
process.stdin.on('data', () => go());
async function* source() {
  for (let i = 0; i < Number(n); i++) yield { key: 'k' + i, payload: i };
  process.stdout.write('halfway\\n');
  await gate;
  yield { key: 'last', payload: null };
}
const record = {
  schemaVersion: 1, id, job: 'job', total: 0, priority: 0, after: [], when: 'succeeded',
  createdAt: '2026-01-01T00:00:00.000Z',
};
try {
  process.stdout.write(JSON.stringify(await store.createBatch(record, source())) + '\\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: err.code ?? String(err), message: err.message }) + '\\n');
}
await store.close();
process.exit(0);
`;
