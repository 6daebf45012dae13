import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SQLITE_MIGRATIONS } from '../../src/store/migrations/sqlite.js';
import { sqliteStore } from '../../src/store/sqlite.js';
import { type BatchRecord, SCHEMA_VERSION, type Store } from '../../src/store/store.js';
import { storeContract } from './contract.js';

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
  const record = (id: string, over: Partial<BatchRecord> = {}): BatchRecord => ({
    schemaVersion: SCHEMA_VERSION,
    id,
    job: 'job',
    total: 2,
    priority: 0,
    after: [],
    when: 'succeeded',
    createdAt: '2026-01-01T00:00:00.000Z',
    ...over,
  });
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
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let reached!: () => void;
    const halfway = new Promise<void>((resolve) => {
      reached = resolve;
    });
    async function* source() {
      for (let i = 0; i < 2500; i++) yield { key: `k${i}`, payload: i };
      reached();
      await gate;
      yield { key: 'last', payload: null };
    }
    const pending = store.createBatch(record('cut'), source());
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

  it('validates its options, naming the option and the value', () => {
    expect(() => sqliteStore({ path: '' })).toThrow(/"path"/);
    expect(() => sqliteStore({ path: 'x.db', synchronous: 'OFF' as 'FULL' })).toThrow(/"synchronous".*"OFF"/);
  });

  it('accepts synchronous FULL', async () => {
    const path = tempPath();
    const store = sqliteStore({ path, synchronous: 'FULL' });
    open.push(store);
    await store.open();
    expect(await store.createBatch(record('f'), two)).toEqual({ created: true });
  });
});
