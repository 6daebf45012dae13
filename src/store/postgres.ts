import pg from 'pg';
import { LeaseLostError, SnapshotVersionError, StoreError, toError, ValidationError } from '../errors.js';
import { POSTGRES_MIGRATIONS } from './migrations/postgres.js';
import {
  BATCH_COLS,
  OUTCOME_COLS,
  type PartDbRow,
  parseCell,
  toBatchRow,
  toJson,
  toOutcome,
  toStoreError,
  toView,
} from './sql-rows.js';
import {
  type BatchFilter,
  type BatchRecord,
  type BatchRow,
  type BatchState,
  type Fence,
  FINAL_STATUS_LIST,
  type Lease,
  type OutcomeRecord,
  type PartitionFilter,
  type PartitionInput,
  type PartitionRow,
  type PartitionStatus,
  type PartitionView,
  type Store,
} from './store.js';

export interface PostgresStoreOptions {
  /** e.g. `postgres://user@host:5432/db`. Ignored when `pool` is given; without either, pg reads PG* variables. */
  connectionString?: string;
  /** A pool the caller owns: the store uses it and never ends it. */
  pool?: pg.Pool;
  /** Schema holding partita's tables, created when missing. Default `partita`. */
  schema?: string;
}

/**
 * A Store in PostgreSQL, for several engines on several hosts sharing one database: batches are
 * owned through leases and every write is fenced by the lease epoch.
 *
 * @example
 * ```ts
 * const store = postgresStore({ connectionString: process.env.DATABASE_URL, schema: 'partita' });
 * const engine = createEngine({ jobs: [job], store });
 * ```
 */
export function postgresStore(options: PostgresStoreOptions = {}): Store {
  const schema = options.schema ?? 'partita';
  if (typeof schema !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) {
    throw new ValidationError(
      `postgresStore: "schema" must be a plain identifier, received ${JSON.stringify(schema)}`,
      [{ path: 'schema', message: 'expected /^[A-Za-z_][A-Za-z0-9_]{0,62}$/' }],
    );
  }
  return new PostgresStore(options, schema);
}

/** Partitions per INSERT in createBatch: bounds memory for streamed sources, amortizes round trips. */
const CHUNK = 2000;
/** Width of the iterators' windows (indexes or seqs); no cursor or client is held across a `yield`. */
const PAGE = 1000;
/** Lease times come from the database's clock, the one clock every host shares. */
const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

class PostgresStore implements Store {
  readonly kind = 'postgres';
  private pool: pg.Pool | undefined;
  private opening: Promise<void> | undefined;
  private readonly B: string;
  private readonly P: string;

  constructor(
    private readonly options: PostgresStoreOptions,
    private readonly schema: string,
  ) {
    const s = pg.escapeIdentifier(schema);
    this.B = `${s}.batches`;
    this.P = `${s}.partitions`;
  }

  open(): Promise<void> {
    this.opening ??= this.connect().catch((err: unknown) => {
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  private async connect(): Promise<void> {
    const owned = !this.options.pool;
    const pool = this.options.pool ?? new pg.Pool({ connectionString: this.options.connectionString });
    // An idle client that loses its connection emits 'error' on the pool; unhandled, that would end
    // the host process. The next query reports the failure as a StoreError instead.
    if (owned) pool.on('error', noop);
    try {
      await migrate(pool, this.schema);
    } catch (err) {
      if (owned) await pool.end().catch(noop);
      throw toStoreError('postgres', err, 'cannot open');
    }
    this.pool = pool;
  }

  async close(): Promise<void> {
    await this.opening?.catch(noop); // an open() in flight would otherwise set a pool nobody ends
    const pool = this.pool;
    this.pool = undefined;
    this.opening = undefined;
    if (pool && !this.options.pool) await pool.end();
  }

  /**
   * One transaction on a dedicated client for the whole batch: PostgreSQL can hold it open across
   * the source's awaits, and nothing is visible to anyone until COMMIT. A concurrent call with the
   * same id blocks on the primary key until this one commits or rolls back.
   */
  async createBatch(
    record: BatchRecord,
    partitions: Iterable<PartitionInput> | AsyncIterable<PartitionInput>,
  ): Promise<{ created: boolean }> {
    const client = await this.requirePool()
      .connect()
      .catch((err: unknown) => Promise.reject(toStoreError('postgres', err, 'connect')));
    let broken: Error | undefined;
    try {
      await query(client, 'BEGIN');
      const inserted = await query(
        client,
        `INSERT INTO ${this.B} (id, job, status, priority, created_at, record) VALUES ($1, $2, 'QUEUED', $3, $4, $5)
         ON CONFLICT (id) DO NOTHING`,
        [record.id, record.job, record.priority, record.createdAt, JSON.stringify(record)],
      );
      if (inserted.rowCount === 0) {
        await query(client, 'ROLLBACK');
        return { created: false };
      }
      let index = 0;
      let chunk: PartitionInput[] = [];
      for await (const p of partitions) {
        chunk.push(p);
        if (chunk.length === CHUNK) {
          await this.insertChunk(client, record.id, index, chunk);
          index += chunk.length;
          chunk = [];
        }
      }
      await this.insertChunk(client, record.id, index, chunk);
      // The store, not the caller, knows how many partitions the iterator gave.
      const final = JSON.stringify({ ...record, total: index + chunk.length });
      await query(client, `UPDATE ${this.B} SET record = $2 WHERE id = $1`, [record.id, final]);
      await query(client, 'COMMIT');
      return { created: true };
    } catch (err) {
      // Our own failures are already PartitaErrors; anything else is the source's error, passed on as is.
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = toError(e); // the connection is unusable: release(err) discards it
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  private async insertChunk(
    client: pg.PoolClient,
    batchId: string,
    start: number,
    chunk: readonly PartitionInput[],
  ) {
    if (chunk.length === 0) return;
    const idx: number[] = [];
    const keys: string[] = [];
    const payloads: (string | null)[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const p = chunk[i]!;
      if (typeof p?.key !== 'string') {
        throw new ValidationError(`Partition ${start + i} of batch "${batchId}" has no string key`, [
          { path: `partitions[${start + i}].key`, message: 'expected a string' },
        ]);
      }
      idx.push(start + i);
      keys.push(p.key);
      payloads.push(toJson(p.payload));
    }
    try {
      await client.query(
        `INSERT INTO ${this.P} (batch_id, idx, key, payload) SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[])`,
        [batchId, idx, keys, payloads],
      );
    } catch (err) {
      const e = err as { code?: string; constraint?: string; detail?: string };
      if (e.code === '23505' && e.constraint === 'partitions_key_unique') {
        throw new ValidationError(`Duplicate partition key in batch "${batchId}": ${e.detail ?? ''}`, [
          { path: 'key', message: 'duplicate' },
        ]);
      }
      throw toStoreError('postgres', err, 'insert partitions');
    }
  }

  async loadBatch(id: string): Promise<BatchRow | undefined> {
    const { rows } = await this.q(`SELECT ${BATCH_COLS} FROM ${this.B} WHERE id = $1`, [id]);
    return rows[0] && toBatchRow(rows[0]);
  }

  async listBatches(filter: BatchFilter = {}): Promise<BatchRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.unfinished) where.push(`status <> ALL($${params.push([...FINAL_STATUS_LIST])}::text[])`);
    if (filter.status !== undefined) {
      const list = typeof filter.status === 'string' ? [filter.status] : [...filter.status];
      if (list.length === 0) return [];
      where.push(`status = ANY($${params.push(list)}::text[])`);
    }
    if (filter.job !== undefined) where.push(`job = $${params.push(filter.job)}`);
    // ord follows insertion, so batches created in the same millisecond keep their order.
    const dir = filter.unfinished ? 'ASC' : 'DESC';
    let sql = `SELECT ${BATCH_COLS} FROM ${this.B}${where.length ? ` WHERE ${where.join(' AND ')}` : ''}`;
    sql += ` ORDER BY created_at ${dir}, ord ${dir}`;
    if (filter.limit !== undefined) sql += ` LIMIT $${params.push(Math.max(0, Math.trunc(filter.limit)))}`;
    const { rows } = await this.q(sql, params);
    return rows.map(toBatchRow);
  }

  async readPartitions(batchId: string, fromIndex: number, limit: number): Promise<PartitionRow[]> {
    const { rows } = await this.q<PartDbRow>(
      `SELECT idx, key, payload, status FROM ${this.P} WHERE batch_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx`,
      [batchId, fromIndex, fromIndex + limit],
    );
    return rows.map((r) => ({
      index: r.idx,
      key: r.key,
      payload: parseCell(r.payload ?? null, batchId, r.idx),
      status: r.status,
    }));
  }

  async *partitions(batchId: string, filter: PartitionFilter = {}): AsyncIterable<PartitionView> {
    const byStatus = filter.status ? ' AND status = $4' : '';
    const sql = `SELECT ${OUTCOME_COLS} FROM ${this.P} WHERE batch_id = $1 AND idx >= $2 AND idx < $3${byStatus} ORDER BY idx`;
    const last = await this.maxOf('idx', batchId);
    for (let from = 0; last !== null && from <= last; from += PAGE) {
      const params: unknown[] = [batchId, from, from + PAGE];
      if (filter.status) params.push(filter.status);
      const { rows } = await this.q<PartDbRow>(sql, params);
      for (const r of rows) yield toView(r, batchId);
    }
  }

  /**
   * Group commit in ONE statement (its own transaction): the CTE locks the batch row only when the
   * fence matches, so a concurrent takeover either waits for this write or makes it write nothing.
   */
  async appendOutcomes(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    fence: Fence,
  ): Promise<{ accepted: number }> {
    // UPDATE ... FROM applies one arbitrary source row per target row: keep the first per index, as the other stores do.
    const seen = new Set<number>();
    const cols: unknown[][] = [[], [], [], [], [], [], [], [], []];
    for (const o of outcomes) {
      if (seen.has(o.index)) continue;
      seen.add(o.index);
      const values = [
        o.index,
        o.key,
        o.status,
        toJson(o.result),
        toJson(o.error),
        o.attempts,
        o.durationMs,
        o.seq,
        o.finishedAt,
      ];
      for (let i = 0; i < values.length; i++) cols[i]!.push(values[i]);
    }
    const { rows } = await this.q<{ fenced: number; accepted: number }>(
      `WITH fence AS (
         SELECT id FROM ${this.B} WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3 FOR UPDATE
       ), done AS (
         UPDATE ${this.P} p SET status = u.status, result = u.result, error = u.error, attempts = u.attempts,
                duration_ms = u.duration_ms, seq = u.seq, finished_at = u.finished_at
         FROM fence, unnest($4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::float8[], $11::int[], $12::text[])
              AS u(idx, key, status, result, error, attempts, duration_ms, seq, finished_at)
         WHERE p.batch_id = fence.id AND p.idx = u.idx AND p.key = u.key AND p.status = 'pending'
         RETURNING 1
       )
       SELECT (SELECT count(*) FROM fence)::int AS fenced, (SELECT count(*) FROM done)::int AS accepted`,
      [batchId, fence.owner, fence.epoch, ...cols],
    );
    if (rows[0]?.fenced !== 1) throw new LeaseLostError(batchId);
    return { accepted: rows[0].accepted };
  }

  async *outcomesSince(batchId: string, afterSeq: number): AsyncIterable<OutcomeRecord> {
    const sql = `SELECT ${OUTCOME_COLS} FROM ${this.P} WHERE batch_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`;
    const last = await this.maxOf('seq', batchId);
    for (let after = afterSeq; last !== null && after < last; after += PAGE) {
      const { rows } = await this.q<PartDbRow>(sql, [batchId, after, after + PAGE]);
      for (const r of rows) yield toOutcome(r, batchId);
    }
  }

  /**
   * The iterators page through bounded windows up to this maximum, never `> $after ORDER BY ... LIMIT n`:
   * right after a bulk load PostgreSQL has no statistics for the new rows, and the open-ended form
   * then sorts the whole rest of the batch for every page (1,000,000 partitions: 158 s instead of
   * seconds). max() is a backward index-only scan whatever the statistics say.
   */
  private async maxOf(column: 'idx' | 'seq', batchId: string): Promise<number | null> {
    const { rows } = await this.q<{ m: number | null }>(
      `SELECT max(${column})::int AS m FROM ${this.P} WHERE batch_id = $1`,
      [batchId],
    );
    return rows[0]?.m ?? null;
  }

  async countOutcomes(batchId: string): Promise<{ succeeded: number; failed: number }> {
    const { rows } = await this.q<{ status: PartitionStatus; n: number }>(
      `SELECT status, count(*)::int AS n FROM ${this.P} WHERE batch_id = $1 AND status <> 'pending' GROUP BY status`,
      [batchId],
    );
    const out = { succeeded: 0, failed: 0 };
    for (const r of rows) if (r.status === 'succeeded' || r.status === 'failed') out[r.status] = r.n;
    return out;
  }

  async saveState(batchId: string, state: BatchState, fence: Fence): Promise<boolean> {
    const saved = await this.q(
      `UPDATE ${this.B} SET state = $4, status = $5, journal_seq = $6
       WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3 AND journal_seq <= $6`,
      [batchId, fence.owner, fence.epoch, JSON.stringify(state), state.status, state.journalSeq],
    );
    if (saved.rowCount === 1) return true;
    // Nothing was written; say why: a stale fence, or a stored state at a later journal position.
    const held = await this.leaseOf(batchId);
    if (!held || held.owner !== fence.owner || held.epoch !== fence.epoch) throw new LeaseLostError(batchId);
    return false;
  }

  async acquireLease(
    batchId: string,
    owner: string,
    ttlMs: number,
    takeoverFrom?: string,
  ): Promise<Lease | undefined> {
    // One conditional UPDATE decides and takes the lease: of two racing acquirers, the second
    // re-checks the row the first committed and gets nothing.
    const { rows } = await this.q<{ epoch: string; expires: string }>(
      `WITH now AS (SELECT ${NOW_MS} AS ms)
       UPDATE ${this.B} SET lease_owner = $2, lease_epoch = lease_epoch + 1, lease_expires_at = now.ms + $3
       FROM now
       WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_owner = $4 OR lease_expires_at <= now.ms)
       RETURNING lease_epoch AS epoch, lease_expires_at AS expires`,
      [batchId, owner, Math.round(ttlMs), takeoverFrom ?? null],
    );
    return rows[0] && { owner, epoch: Number(rows[0].epoch), expiresAt: Number(rows[0].expires) };
  }

  async renewLease(batchId: string, fence: Fence, ttlMs: number): Promise<boolean> {
    const res = await this.q(
      `UPDATE ${this.B} SET lease_expires_at = ${NOW_MS} + $4 WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3`,
      [batchId, fence.owner, fence.epoch, Math.round(ttlMs)],
    );
    return res.rowCount === 1;
  }

  async releaseLease(batchId: string, fence: Fence): Promise<void> {
    await this.q(
      `UPDATE ${this.B} SET lease_expires_at = 0 WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3`,
      [batchId, fence.owner, fence.epoch],
    );
  }

  async leaseOf(batchId: string): Promise<Lease | undefined> {
    const { rows } = await this.q<{ owner: string; epoch: string; expires: string }>(
      `SELECT lease_owner AS owner, lease_epoch AS epoch, lease_expires_at AS expires FROM ${this.B}
       WHERE id = $1 AND lease_owner IS NOT NULL`,
      [batchId],
    );
    return (
      rows[0] && { owner: rows[0].owner, epoch: Number(rows[0].epoch), expiresAt: Number(rows[0].expires) }
    );
  }

  private requirePool(): pg.Pool {
    if (!this.pool) throw new StoreError('postgres store is not open: call open() first');
    return this.pool;
  }

  // biome-ignore lint/suspicious/noExplicitAny: pg's row type parameter defaults to any
  private q<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return query<R>(this.requirePool(), text, values);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: pg's row type parameter defaults to any
async function query<R extends pg.QueryResultRow = any>(
  on: pg.Pool | pg.PoolClient,
  text: string,
  values?: unknown[],
): Promise<pg.QueryResult<R>> {
  try {
    return await on.query<R>(text, values);
  } catch (err) {
    throw toStoreError('postgres', err, 'query failed');
  }
}

/**
 * Applies the missing migrations, each in its own transaction under a transaction-level advisory
 * lock, so two processes that open the same schema at once apply each migration exactly once.
 */
async function migrate(pool: pg.Pool, schema: string): Promise<void> {
  const s = pg.escapeIdentifier(schema);
  const latest = POSTGRES_MIGRATIONS.length;
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    for (;;) {
      await client.query('BEGIN');
      try {
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`partita.migrate:${schema}`]);
        // Check before creating: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists.
        const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
        if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${s}`);
        await client.query(`SET LOCAL search_path TO ${s}`);
        const table = await client.query('SELECT to_regclass($1) AS t', [`${s}.partita_migrations`]);
        if (table.rows[0].t === null) {
          await client.query(
            'CREATE TABLE partita_migrations (id integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
          );
        }
        const { rows } = await client.query<{ id: number }>(
          'SELECT coalesce(max(id), 0)::int AS id FROM partita_migrations',
        );
        const done = rows[0]!.id;
        if (done > latest) throw new SnapshotVersionError(done, latest, 'database schema');
        if (done === latest) {
          await client.query('COMMIT');
          return;
        }
        await client.query(POSTGRES_MIGRATIONS[done]!);
        await client.query('INSERT INTO partita_migrations (id) VALUES ($1)', [done + 1]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch((e: unknown) => {
          broken = toError(e);
        });
        throw err;
      }
    }
  } finally {
    client.release(broken);
  }
}

function noop(): void {}
