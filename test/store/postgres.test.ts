import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_MIGRATIONS } from '../../src/store/migrations/postgres.js';
import { statusChannel } from '../../src/store/pg-notify.js';
import { postgresStore } from '../../src/store/postgres.js';
import type { OutcomeRecord, Store } from '../../src/store/store.js';
import type { BatchStatus } from '../../src/summary.js';
import { batchRecord, state, storeContract, until } from './contract.js';

const URL = process.env.PARTITA_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** Every schema this file creates starts with this prefix, and is dropped at the end. */
const SCHEMA = `partita_test_${process.pid}_${Date.now().toString(36)}`;

const unreachable = await probe(URL);
if (unreachable && process.env.CI === 'true') {
  it('reaches PostgreSQL (required when CI=true)', () => {
    throw new Error(`PostgreSQL at ${URL} is unreachable: ${unreachable}`);
  });
} else if (unreachable) {
  console.warn(`Skipping the PostgreSQL store tests: ${URL} is unreachable (${unreachable})`);
}

describe.skipIf(unreachable !== undefined)('postgresStore', () => {
  let admin: pg.Pool;
  beforeAll(() => {
    admin = new pg.Pool({ connectionString: URL });
  });
  afterAll(async () => {
    const { rows } = await admin.query<{ nspname: string }>(
      'SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)',
      [SCHEMA],
    );
    for (const r of rows) await admin.query(`DROP SCHEMA ${pg.escapeIdentifier(r.nspname)} CASCADE`);
    await admin.end();
  });

  // One schema for the whole file: the contract names every batch with a per-test prefix.
  storeContract('postgres', async () => ({
    store: postgresStore({ connectionString: URL, schema: SCHEMA }),
    cleanup: async () => {},
  }));

  it('writes outcomes and state in one statement (commit): never outcomes without a state covering them', () => {
    // Without it the journal writes them in two steps, and a crash between the two on a batch's
    // first write would leave outcomes under a row with no state, which restarts from nothing.
    expect(typeof postgresStore({ connectionString: URL, schema: SCHEMA }).commit).toBe('function');
  });

  const record = (id: string) => batchRecord(id);
  const migrations = async (schema: string) =>
    (
      await admin.query(
        `SELECT id, applied_at FROM ${pg.escapeIdentifier(schema)}.partita_migrations ORDER BY id`,
      )
    ).rows;

  it('records migrations, and re-opening is a no-op', async () => {
    const schema = `${SCHEMA}_m1`;
    const store = postgresStore({ connectionString: URL, schema });
    await store.open();
    await store.createBatch(record('b1'), [
      { key: 'a', payload: 1 },
      { key: 'b', payload: 2 },
    ]);
    await store.close();
    const applied = await migrations(schema);
    expect(applied.map((r) => r.id)).toEqual(POSTGRES_MIGRATIONS.map((_, i) => i + 1));
    await store.open();
    expect(await migrations(schema)).toEqual(applied);
    expect((await store.loadBatch('b1'))?.record).toEqual(record('b1'));
    await store.close();
  });

  it('indexes only settled partitions in the journal, and reads the journal and its end through that index', async () => {
    const schema = `${SCHEMA}_seq`;
    const store = postgresStore({ connectionString: URL, schema });
    await store.open();
    await store.close();
    const { rows } = await admin.query<{ indexdef: string }>(
      "SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'partitions_seq'",
      [schema],
    );
    expect(rows[0]?.indexdef).toMatch(/WHERE \(seq IS NOT NULL\)$/);
    const client = await admin.connect();
    try {
      await client.query(`SET search_path = ${pg.escapeIdentifier(schema)}`);
      await client.query('SET enable_seqscan = off'); // an empty table: only whether the index can serve
      const plan = async (sql: string, params: unknown[]) =>
        (await client.query(`EXPLAIN ${sql}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n');
      // The store's two journal reads (sql-store.ts: outcomesSince and maxOf).
      expect(
        await plan('SELECT idx FROM partitions WHERE batch_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq', [
          'b1',
          0,
          10,
        ]),
      ).toContain('partitions_seq');
      expect(
        await plan('SELECT max(seq) FROM partitions WHERE batch_id = $1 AND seq IS NOT NULL', ['b1']),
      ).toContain('partitions_seq');
    } finally {
      client.release();
    }
  });

  it('migrates once when several processes open a fresh schema at the same time', async () => {
    const schema = `${SCHEMA}_m2`;
    const stores = Array.from({ length: 4 }, () => postgresStore({ connectionString: URL, schema }));
    await Promise.all(stores.map((s) => s.open()));
    expect((await migrations(schema)).map((r) => r.id)).toEqual(POSTGRES_MIGRATIONS.map((_, i) => i + 1));
    await Promise.all(stores.map((s) => s.close()));
  });

  it('refuses a schema newer than the code (SNAPSHOT_VERSION) and leaves it untouched', async () => {
    const schema = `${SCHEMA}_m3`;
    const store = postgresStore({ connectionString: URL, schema });
    await store.open();
    await store.close();
    const future = POSTGRES_MIGRATIONS.length + 1;
    await admin.query(`INSERT INTO ${pg.escapeIdentifier(schema)}.partita_migrations (id) VALUES ($1)`, [
      future,
    ]);
    await expect(store.open()).rejects.toMatchObject({ code: 'SNAPSHOT_VERSION', found: future });
    expect((await migrations(schema)).map((r) => r.id)).toContain(future);
    await expect(store.loadBatch('x')).rejects.toMatchObject({ code: 'STORE' }); // not open
  });

  it('returns a record or state that does not parse as its raw text', async () => {
    const store = postgresStore({ pool: admin, schema: SCHEMA });
    await store.open();
    const id = `${SCHEMA}-corrupt`;
    await store.createBatch(record(id), [{ key: 'a', payload: 1 }]);
    await admin.query(
      `UPDATE ${SCHEMA}.batches SET record = '{"id": trunc', state = 'not json' WHERE id = $1`,
      [id],
    );
    expect(await store.loadBatch(id)).toMatchObject({
      id,
      status: 'QUEUED',
      record: '{"id": trunc',
      state: 'not json',
    });
    expect((await store.listBatches({ job: 'job' })).find((b) => b.id === id)?.state).toBe('not json');
    await store.close();
    // A pool the caller passed in stays open.
    expect((await admin.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('counts exactly what it accepted while the lease changes hands under concurrent writes', async () => {
    const store = postgresStore({ connectionString: URL, schema: SCHEMA });
    await store.open();
    const id = `${SCHEMA}-race`;
    const n = 400;
    await store.createBatch(
      record(id),
      Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
    );
    const a = (await store.acquireLease(id, 'A', 60_000))!;
    const out = (i: number): OutcomeRecord => ({
      index: i,
      key: `k${i}`,
      status: 'succeeded',
      result: i,
      attempts: 1,
      durationMs: 1,
      seq: i + 1,
      finishedAt: '2026-01-01T00:00:00.000Z',
    });
    const writes = Array.from({ length: 40 }, (_, g) =>
      store.appendOutcomes(
        id,
        Array.from({ length: 10 }, (_, j) => out(g * 10 + j)),
        a,
      ),
    );
    const takeover = store.acquireLease(id, 'B', 60_000, 'A');
    const settled = await Promise.allSettled(writes);
    expect((await takeover)?.owner).toBe('B');
    let accepted = 0;
    for (const s of settled) {
      if (s.status === 'fulfilled') accepted += s.value.accepted;
      else expect(s.reason).toMatchObject({ code: 'LEASE_LOST' });
    }
    const counts = await store.countOutcomes(id);
    expect(counts.succeeded).toBe(accepted);
    await store.close();
  });

  describe('watch', () => {
    const listening = async (schema: string) => {
      const { rows } = await admin.query<{ pid: number }>(
        'SELECT pid FROM pg_stat_activity WHERE query = $1',
        [`LISTEN "${statusChannel(schema)}"`],
      );
      return rows.map((r) => r.pid);
    };
    const opened: Store[] = [];
    const open = async (schema: string, pool?: pg.Pool) => {
      const store = postgresStore(pool ? { pool, schema } : { connectionString: URL, schema });
      opened.push(store);
      await store.open();
      return store;
    };
    afterAll(async () => {
      for (const s of opened) await s.close();
    });

    it('tells a watcher of one store about a final status saved through another store on the schema', async () => {
      const schema = `${SCHEMA}_w1`;
      const writer = await open(schema);
      const watcher = await open(schema);
      const seen: { batchId: string; status: BatchStatus }[] = [];
      const stop = watcher.watch!((event) => seen.push(event));
      await until(async () => (await listening(schema)).length === 1);
      await writer.createBatch(record('w1'), [{ key: 'a', payload: 1 }]);
      const fence = (await writer.acquireLease('w1', 'A', 60_000))!;
      await writer.saveState('w1', state('PROCESSING', 0), fence);
      await writer.saveState('w1', state('PROCESSING', 0), fence); // same status: nothing new to tell
      await writer.saveState('w1', state('COMPLETED', 1), fence);
      await until(() => seen.some((e) => e.status === 'COMPLETED'));
      expect(seen).toEqual([
        { batchId: 'w1', status: 'QUEUED' }, // a new batch (migration 4)
        { batchId: 'w1', status: 'PROCESSING' },
        { batchId: 'w1', status: 'COMPLETED' },
      ]);
      stop();
      await until(async () => (await listening(schema)).length === 0);
    });

    it('listens again after its connection is cut', async () => {
      const schema = `${SCHEMA}_w2`;
      const store = await open(schema);
      const seen: BatchStatus[] = [];
      store.watch!((event) => seen.push(event.status));
      await until(async () => (await listening(schema)).length === 1);
      const [cut] = await listening(schema);
      await admin.query('SELECT pg_terminate_backend($1)', [cut]);
      await until(async () => {
        const now = await listening(schema);
        return now.length === 1 && now[0] !== cut;
      });
      await store.createBatch(record('w2'), [{ key: 'a', payload: 1 }]);
      const fence = (await store.acquireLease('w2', 'A', 60_000))!;
      await store.saveState('w2', state('FAILED', 0), fence);
      await until(() => seen.includes('FAILED'));
    });

    it('stops listening and hands back its client on close, also with a pool the caller owns', async () => {
      const schema = `${SCHEMA}_w3`;
      const pool = new pg.Pool({ connectionString: URL });
      const store = await open(schema, pool);
      store.watch!(() => {});
      await until(async () => (await listening(schema)).length === 1);
      await store.close();
      await until(async () => (await listening(schema)).length === 0);
      expect(pool.totalCount - pool.idleCount).toBe(0); // nothing checked out
      await pool.end();
    });
  });

  it('validates the schema option', () => {
    expect(() => postgresStore({ schema: 'bad; drop' })).toThrow(/schema: expected a plain identifier/);
  });
});

async function probe(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return [e.code, e.message].filter(Boolean).join(' ') || String(err);
  } finally {
    await client.end().catch(() => {});
  }
}
