import { z } from 'zod';
import { LeaseLostError, StoreError, toError } from '../errors.js';
import { parseOrThrow } from '../validation.js';
import { loadDriver } from './drivers.js';
import { type CapturedPartition, capturePartition, duplicateKey } from './inputs.js';
import { type MigrationSession, runMigrations } from './migrate.js';
import { POSTGRES_MIGRATIONS } from './migrations/postgres.js';
import { StatusListener, statusChannel } from './pg-notify.js';
import {
  type PgPool,
  type PgPoolClient,
  type PgQueryable,
  type PgResult,
  type PgTimedQueryable,
  quoteIdentifier,
} from './pg-types.js';
import type { SqlDialect } from './sql-listing.js';
import type { PruneDialect } from './sql-prune.js';
import { redriveStatements, type Statement } from './sql-redrive.js';
import { noop, outcomeValues, toStoreError } from './sql-rows.js';
import { SqlStore } from './sql-store.js';
import type { BatchRecord, BatchState, Fence, OutcomeRecord, PartitionSource, Store } from './store.js';
import { WriteAhead } from './write-ahead.js';

export type { PgPool, PgPoolClient, PgResult } from './pg-types.js';

export interface PostgresStoreOptions {
  /** e.g. `postgres://user@host:5432/db`. Ignored when `pool` is given; without either, pg reads PG* variables. */
  connectionString?: string;
  /**
   * A pool the caller owns (a `pg.Pool`): the store uses it and never ends it. With a pool, the
   * store never loads `pg` itself. watch() keeps one of its connections while someone watches.
   */
  pool?: PgPool;
  /** Schema holding partita's tables, created when missing. Default `partita`. */
  schema?: string;
  /**
   * Longest wait for the answer to one statement (pg's `query_timeout`): a server that stops
   * answering without closing the connection (a network partition) fails the statement with STORE
   * instead of holding the engine, and its `stop()`, for good. `0`: none. Default 30,000 on the
   * pool the store makes; none on a `pool` you give (give it `query_timeout`, or set this).
   * Migrations at `open()` are not bounded.
   */
  queryTimeoutMs?: number;
  /**
   * Longest wait for a new connection (pg's `connectionTimeoutMillis`), on the pool the store makes
   * from `connectionString`; a `pool` you give keeps its own settings. `0`: none. Default 10,000.
   */
  connectTimeoutMs?: number;
}

/** The longest Node.js timer. */
const MAX_TIMER_MS = 2_147_483_647;

/** Default {@link PostgresStoreOptions.queryTimeoutMs}. */
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;
/** Default {@link PostgresStoreOptions.connectTimeoutMs}. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * A Store in PostgreSQL, for several engines on several hosts sharing one database: batches are
 * owned through leases and every write is fenced by the lease epoch. The `pg` package is an optional
 * peer dependency, loaded by open(); without it open() fails with a STORE error saying to install it.
 * watch() hears every engine on the same schema (LISTEN/NOTIFY).
 *
 * @example
 * ```ts
 * const store = postgresStore({ connectionString: process.env.DATABASE_URL, schema: 'partita' });
 * const engine = createEngine({ jobs: [job], store });
 * ```
 */
export function postgresStore(options: PostgresStoreOptions = {}): Store {
  const o = parseOrThrow(postgresOptionsSchema, options, 'postgresStore options');
  return new PostgresStore(options, o.schema ?? 'partita', {
    // A pool you give keeps its own settings unless you set queryTimeoutMs (a wrapper of a pool may
    // not take pg's config-object form of a query).
    query: o.queryTimeoutMs ?? (o.pool ? 0 : DEFAULT_QUERY_TIMEOUT_MS),
    connect: o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  });
}

/**
 * Strict: a misspelt option (`url` for `connectionString`) is refused, not ignored (pg would fall
 * back to the PG* variables and connect somewhere else).
 */
const postgresOptionsSchema = z
  .object({
    connectionString: z.string().min(1).optional(),
    pool: z
      .custom<PgPool>(
        (v) =>
          typeof v === 'object' &&
          v !== null &&
          typeof (v as PgPool).query === 'function' &&
          typeof (v as PgPool).connect === 'function',
        { message: 'expected a pg.Pool (query and connect)' },
      )
      .optional(),
    schema: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, {
        message: 'expected a plain identifier, /^[A-Za-z_][A-Za-z0-9_]{0,62}$/',
      })
      .optional(),
    queryTimeoutMs: z.number().int().min(0).max(MAX_TIMER_MS).optional(),
    connectTimeoutMs: z.number().int().min(0).max(MAX_TIMER_MS).optional(),
  })
  .strict();

/** Partitions per INSERT in createBatch: bounds memory for streamed sources, amortizes round trips. */
const CHUNK = 2000;
/** Lease times come from the database's clock, the one clock every host shares. */
const NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

class PostgresStore extends SqlStore implements Store {
  readonly kind = 'postgres';
  protected readonly dialect: SqlDialect & PruneDialect;
  // Triggers notify every engine on the schema, this one included (migration 7).
  protected override readonly rangesEmitLocally = false;
  private pool: PgPool | undefined;
  private readonly B: string;
  private readonly P: string;
  private readonly listener: StatusListener;

  private readonly queryTimeoutMs: number;
  private readonly connectTimeoutMs: number;

  constructor(
    private readonly options: PostgresStoreOptions,
    private readonly schema: string,
    timeouts: { query: number; connect: number },
  ) {
    super();
    const s = quoteIdentifier(schema);
    this.B = `${s}.batches`;
    this.P = `${s}.partitions`;
    this.dialect = {
      batches: this.B,
      partitions: this.P,
      schedules: `${s}.schedules`,
      leaseHistory: `${s}.lease_history`,
      ranges: `${s}.ranges`,
      rangeAnswers: `${s}.range_answers`,
      skipLocked: 'FOR UPDATE OF r SKIP LOCKED',
      // ord follows insertion.
      insertionOrder: 'ord',
      placeholder: (n) => `$${n}`,
      now: () => NOW_MS,
      endedAt: `(b.state::jsonb #>> '{summary,finishedAt}') COLLATE "C"`,
      parentsOf: `jsonb_array_elements_text(d.record::jsonb -> 'after') AS a(value)`,
      idList: (params, ids) => `SELECT jsonb_array_elements_text(${params.add(JSON.stringify(ids))}::jsonb)`,
    };
    this.queryTimeoutMs = timeouts.query;
    this.connectTimeoutMs = timeouts.connect;
    this.listener = new StatusListener(
      statusChannel(schema),
      (event) => this.watchers.emit(event),
      (event) => this.rangeWatchers.emit(event),
      timeouts.query,
    );
  }

  protected async connect(): Promise<void> {
    const owned = !this.options.pool;
    const pool = this.options.pool ?? (await this.newPool());
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
    if (this.watchCount > 0) this.listener.start(pool);
  }

  private async newPool(): Promise<PgPool> {
    const pg = await loadDriver('postgres', 'pg', async () => (await import('pg')).default);
    return new pg.Pool({
      connectionString: this.options.connectionString,
      connectionTimeoutMillis: this.connectTimeoutMs,
      // A peer that vanished (a host gone, a partition) is noticed by TCP on an idle connection too.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
  }

  protected async disconnect(): Promise<void> {
    await this.listener.stop(); // before end(): the pool waits for every client checked out
    const pool = this.pool;
    this.pool = undefined;
    if (pool && !this.options.pool) await pool.end();
  }

  /** Listens only while someone watches: otherwise the connection would be taken for nothing. */
  protected override watchersChanged(count: number): void {
    if (count === 0) void this.listener.stop();
    else if (this.pool) this.listener.start(this.pool);
  }

  /**
   * One transaction on a dedicated client for the whole batch: PostgreSQL can hold it open across
   * the source's awaits, and nothing is visible to anyone until COMMIT. A concurrent call with the
   * same id blocks on the primary key until this one commits or rolls back.
   */
  protected async create(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }> {
    const total = await this.transaction<number | undefined>(async (client) => {
      const inserted = await this.sql(
        client,
        `INSERT INTO ${this.B} (id, job, status, priority, created_at, record) VALUES ($1, $2, 'QUEUED', $3, $4, $5)
         ON CONFLICT (id) DO NOTHING`,
        [record.id, record.job, record.priority, record.createdAt, JSON.stringify(record)],
      );
      if (inserted.rowCount === 0) return { commit: false, value: undefined };
      let index = 0;
      let chunk: CapturedPartition[] = [];
      // Each chunk is written while the next is read from the source (WriteAhead).
      const ahead = new WriteAhead();
      try {
        for await (const p of partitions) {
          ahead.check();
          chunk.push(capturePartition(p, index + chunk.length, record.id));
          if (chunk.length === CHUNK) {
            const full = chunk;
            const start = index;
            await ahead.push(() => this.insertChunk(client, record.id, start, full));
            index += chunk.length;
            chunk = [];
          }
        }
        await ahead.drain();
      } catch (err) {
        // Before the ROLLBACK (one query at a time on the client); a chunk's write that failed
        // before the source did is the failure to report.
        throw (await ahead.settle()) ?? err;
      }
      await this.insertChunk(client, record.id, index, chunk);
      // The store, not the caller, knows how many partitions the iterator gave.
      const final = JSON.stringify({ ...record, total: index + chunk.length });
      await this.sql(client, `UPDATE ${this.B} SET record = $2 WHERE id = $1`, [record.id, final]);
      return { commit: true, value: index + chunk.length };
    });
    if (total === undefined) return { created: false };
    if (total >= ANALYZE_FROM) await this.analyzeIfBehind(total);
    return { created: true };
  }

  /**
   * ANALYZE the partitions table when a batch just created outweighs what the planner knows of it
   * (never analyzed, as in a new schema, or the batch more than a quarter of its rows): with the
   * statistics from before, the planner takes the batch's rows for a handful, and its group commits
   * scan all of them (writeGroup). Autovacuum would analyze it too, but only a minute or more later.
   * Best effort: a failure (a user who does not own the table only gets a warning) changes nothing.
   */
  private async analyzeIfBehind(total: number): Promise<void> {
    try {
      const { rows } = await this.q<{ reltuples: number }>(
        'SELECT reltuples::float8 AS reltuples FROM pg_class WHERE oid = to_regclass($1)',
        [this.P],
      );
      const known = rows[0]?.reltuples ?? -1;
      if (known < 0 || total * 4 > known) await this.q(`ANALYZE ${this.P}`);
    } catch {
      // the store's own statements still work; they may only run slower
    }
  }

  /**
   * Runs `work` in one transaction on a dedicated client, then COMMIT or ROLLBACK as it says. A
   * failure rolls back and is passed on as is (our own are PartitaErrors already; a partition
   * source's error stays the caller's); a connection that cannot even roll back is discarded.
   */
  private async transaction<T>(
    work: (client: PgPoolClient) => Promise<{ commit: boolean; value: T }>,
    begin = 'BEGIN',
  ): Promise<T> {
    const client = await this.requirePool()
      .connect()
      .catch((err: unknown) => Promise.reject(toStoreError('postgres', err, 'connect')));
    let broken: Error | undefined;
    // A connection lost while the client is checked out (the server restarted, a proxy cut it, an
    // idle-in-transaction timeout) is emitted as 'error' on the client, which pg's pool no longer
    // listens to then: unheard, it would end the host process. Heard here, the next query fails
    // with a StoreError and the client is discarded.
    const lost = (e: unknown) => {
      broken ??= toError(e);
    };
    client.on('error', lost);
    try {
      await this.sql(client, begin);
      const { commit, value } = await work(client);
      await this.sql(client, commit ? 'COMMIT' : 'ROLLBACK');
      return value;
    } catch (err) {
      await this.sql(client, 'ROLLBACK').catch((e: unknown) => {
        broken = toError(e); // the connection is unusable: release(err) discards it
      });
      throw err;
    } finally {
      client.removeListener?.('error', lost);
      client.release(broken);
    }
  }

  /**
   * One INSERT for the chunk. ON CONFLICT DO NOTHING on the key, then the first index not returned
   * names the duplicate: the error says which key, as the other stores' do.
   */
  private async insertChunk(
    client: PgPoolClient,
    batchId: string,
    start: number,
    chunk: readonly CapturedPartition[],
  ) {
    if (chunk.length === 0) return;
    const idx = chunk.map((_, i) => start + i);
    const { rows } = await this.sql<{ idx: number }>(
      client,
      `INSERT INTO ${this.P} (batch_id, idx, key, payload) SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[])
       ON CONFLICT (batch_id, key) DO NOTHING RETURNING idx`,
      [batchId, idx, chunk.map((p) => p.key), chunk.map((p) => p.json ?? null)],
    );
    if (rows.length === chunk.length) return;
    const stored = new Set(rows.map((r) => r.idx));
    const first = idx.findIndex((i) => !stored.has(i));
    throw duplicateKey(batchId, chunk[first]!.key);
  }

  /**
   * Group commit in ONE statement (see writeGroup): the CTE locks the batch row only when the
   * fence matches, so a concurrent takeover either waits for this write or makes it write nothing.
   */
  async appendOutcomes(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    fence: Fence,
  ): Promise<{ accepted: number }> {
    const { accepted } = await this.writeGroup(batchId, outcomeColumns(outcomes), undefined, fence);
    return { accepted };
  }

  /**
   * `appendOutcomes` and `saveState` in ONE statement (one transaction): a crash can never leave
   * outcomes stored without a state that covers them (a batch's first write would otherwise leave a
   * row with outcomes and no state, which restarts from nothing and skips those partitions uncounted).
   */
  async commit(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    state: BatchState,
    fence: Fence,
  ): Promise<{ accepted: number; saved: boolean }> {
    return this.writeGroup(batchId, outcomeColumns(outcomes), state, fence);
  }

  /**
   * The outcomes of `cols` (see outcomeColumns), and `state` when given, in one statement. A group
   * whose results and errors are too large for one statement (pg builds each array parameter as
   * one string, and V8's strings end near 512 MB: six results of 100 MB failed every time, and their
   * batch never left FINALIZING) is written in parts of at most {@link STATEMENT_TEXT_MAX}
   * characters (one outcome at least), the same statement for each, in one transaction; the state
   * goes with the last part.
   *
   * The transaction forbids nested loops (BEGIN_WITHOUT_NESTED_LOOPS), and the statement finds its
   * rows by the primary key (`idx = ANY`). With statistics taken before a large batch was created
   * (a fresh schema: an outside probe), the planner judged the batch's pending rows to be one and
   * scanned every outcome of the group once for each of them: 200,000 partitions on a new schema
   * held each commit for a minute, past the lease's renewal, and the batch was lost. A hash join
   * costs the group's size whatever the statistics say.
   */
  private async writeGroup(
    batchId: string,
    cols: unknown[][],
    state: BatchState | undefined,
    fence: Fence,
  ): Promise<{ accepted: number; saved: boolean }> {
    // A group this small cannot be scanned many times over: its statement runs alone, without the
    // transaction's two round trips (0.3 ms on a commit of 1 ms, measured on a local server).
    if (cols[0]!.length <= SMALL_GROUP)
      return this.groupStatement(this.requirePool(), batchId, cols, state, fence);
    const parts = textLength(cols) <= STATEMENT_TEXT_MAX ? [cols] : [...partsOf(cols)];
    return this.transaction(async (client) => {
      let accepted = 0;
      let saved = false;
      for (let i = 0; i < parts.length; i++) {
        const last = i === parts.length - 1;
        const done = await this.groupStatement(client, batchId, parts[i]!, last ? state : undefined, fence);
        accepted += done.accepted;
        saved = done.saved;
      }
      return { commit: true, value: { accepted, saved } };
    }, BEGIN_WITHOUT_NESTED_LOOPS);
  }

  /** The group commit's statement, on writeGroup's transaction (or the pool, for a small group). */
  private async groupStatement(
    on: PgQueryable,
    batchId: string,
    cols: unknown[][],
    state: BatchState | undefined,
    fence: Fence,
  ): Promise<{ accepted: number; saved: boolean }> {
    const { rows } = await this.sql<{ fenced: number; accepted: number; saved?: number }>(
      on,
      state
        ? `${this.fencedOutcomes()}, saved AS (
             UPDATE ${this.B} b SET state = $13, status = $14, journal_seq = $15
             WHERE b.id = $1 AND EXISTS (SELECT 1 FROM fence) AND b.journal_seq <= $15
             RETURNING 1
           )
           SELECT (SELECT count(*) FROM fence)::int AS fenced, (SELECT count(*) FROM done)::int AS accepted,
                  (SELECT count(*) FROM saved)::int AS saved`
        : `${this.fencedOutcomes()}
           SELECT (SELECT count(*) FROM fence)::int AS fenced, (SELECT count(*) FROM done)::int AS accepted`,
      state
        ? [batchId, fence.owner, fence.epoch, ...cols, JSON.stringify(state), state.status, state.journalSeq]
        : [batchId, fence.owner, fence.epoch, ...cols],
    );
    if (rows[0]?.fenced !== 1) throw new LeaseLostError(batchId);
    return { accepted: rows[0].accepted, saved: rows[0].saved === 1 };
  }

  /**
   * The CTEs `fence` (the batch row, locked, only when the lease is `$2`/`$3`) and `done` (the
   * outcomes of `$4`…`$12`, see outcomeColumns, written only where still pending), shared by
   * appendOutcomes and commit. The fence is a condition (`EXISTS`, run once), not a join: joined,
   * with nested loops off, the batch row was found by hashing all of `batches` at every commit.
   */
  private fencedOutcomes(): string {
    return `WITH fence AS (
         SELECT id FROM ${this.B} WHERE id = $1 AND lease_owner = $2 AND lease_epoch = $3 FOR UPDATE
       ), done AS (
         UPDATE ${this.P} p SET status = u.status, result = u.result, error = u.error, attempts = u.attempts,
                duration_ms = u.duration_ms, seq = u.seq, finished_at = u.finished_at
         FROM unnest($4::int[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::float8[], $11::int[], $12::text[])
              AS u(idx, key, status, result, error, attempts, duration_ms, seq, finished_at)
         WHERE EXISTS (SELECT 1 FROM fence) AND p.batch_id = $1 AND p.idx = ANY($4::int[])
           AND p.idx = u.idx AND p.key = u.key AND p.status = 'pending'
         RETURNING 1
       )`;
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

  async redrive(batchId: string, state: BatchState, endedRun: number): Promise<boolean> {
    const [batch, ...rest] = redriveStatements(this.dialect, batchId, state, endedRun, (params, run) => {
      const entry = `jsonb_build_object('run', ${params.add(run)}::int, 'status', 'failed', 'error', error::jsonb,
        'attempts', attempts, 'durationMs', duration_ms, 'finishedAt', finished_at)`;
      return `(coalesce(history, '[]')::jsonb || jsonb_build_array(${entry}))::text`;
    });
    return this.transaction<boolean>(async (client) => {
      if ((await this.sql(client, batch!.sql, batch!.params)).rowCount !== 1)
        return { commit: false, value: false };
      for (const s of rest) await this.sql(client, s.sql, s.params);
      return { commit: true, value: true };
    });
  }

  protected executeAll(statements: readonly Statement[]): Promise<number> {
    return this.transaction<number>(async (client) => {
      let changed = 0;
      for (const s of statements) changed = (await this.sql(client, s.sql, s.params)).rowCount ?? 0;
      return { commit: true, value: changed };
    });
  }

  /** The cap's count and take, one at a time across every engine on the schema (an advisory lock). */
  protected override serialized<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    return this.transaction<R[]>(async (client) => {
      await this.sql(client, 'SELECT pg_advisory_xact_lock(hashtext($1))', [`partita.cap.${this.schema}`]);
      const rows = await this.sql<R>(client, sql, [...params]);
      return { commit: true, value: rows.rows };
    });
  }

  protected async select<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    return (await this.q<R>(sql, [...params])).rows;
  }

  protected async execute(sql: string, params: readonly unknown[]): Promise<number> {
    return (await this.q(sql, [...params])).rowCount ?? 0;
  }

  private requirePool(): PgPool {
    if (!this.pool) throw new StoreError('postgres store is not open: call open() first');
    return this.pool;
  }

  // biome-ignore lint/suspicious/noExplicitAny: rows are typed by each query, as pg does
  private q<R = any>(text: string, values?: unknown[]): Promise<Rows<R>> {
    return this.sql<R>(this.requirePool(), text, values);
  }

  /** One statement on the pool or a client, bounded by `queryTimeoutMs`. */
  // biome-ignore lint/suspicious/noExplicitAny: rows are typed by each query, as pg does
  private sql<R = any>(on: PgQueryable, text: string, values?: unknown[]): Promise<Rows<R>> {
    return query<R>(on, text, values, this.queryTimeoutMs);
  }
}

interface Rows<R> extends PgResult {
  rows: R[];
}

/**
 * Outcomes as the nine parameter arrays `unnest` takes (index, key, then the seven values the row
 * gets: outcomeValues). UPDATE ... FROM applies one arbitrary source row per target row: the first
 * per index is kept, as the other stores do.
 */
function outcomeColumns(outcomes: readonly OutcomeRecord[]): unknown[][] {
  const seen = new Set<number>();
  const cols: unknown[][] = [[], [], [], [], [], [], [], [], []];
  for (const o of outcomes) {
    if (seen.has(o.index)) continue;
    seen.add(o.index);
    const values = outcomeValues(o);
    cols[0]!.push(values[7]);
    cols[1]!.push(values[8]);
    for (let i = 0; i < 7; i++) cols[i + 2]!.push(values[i]);
  }
  return cols;
}

/**
 * Most characters of results and errors one statement carries (writeGroup): far below the
 * ~512 MB a V8 string can hold, which pg's array parameters, each one string, must fit in.
 */
export const STATEMENT_TEXT_MAX = 64 * 1024 * 1024;

/**
 * Outcomes up to which a group commit is one statement on the pool (writeGroup): whatever plan it
 * gets, it reads the batch's rows at most this many times, as a hash join that cannot use the
 * index would read them once.
 */
const SMALL_GROUP = 8;

/** Partitions from which a new batch may call for an ANALYZE (PostgresStore.analyzeIfBehind). */
const ANALYZE_FROM = 10_000;

/**
 * How a group commit's transaction begins (writeGroup): no plan may rescan the group per row. And no
 * JIT: a nested loop the plan cannot avoid (the fence's one row) still counts the penalty that
 * `enable_nestloop = off` adds to its cost, far past `jit_above_cost`, and compiling the statement
 * took a second for a group of one (the PostgreSQL backlog test ran 100 times slower).
 */
const BEGIN_WITHOUT_NESTED_LOOPS = 'BEGIN; SET LOCAL enable_nestloop = off; SET LOCAL jit = off';

/** Characters of the results and errors of outcomeColumns' arrays. */
function textLength(cols: unknown[][]): number {
  let n = 0;
  for (const col of [cols[3]!, cols[4]!]) for (const v of col) if (typeof v === 'string') n += v.length;
  return n;
}

/** outcomeColumns' arrays cut into parts of at most STATEMENT_TEXT_MAX characters (one row at least). */
function* partsOf(cols: unknown[][]): Generator<unknown[][]> {
  const rows = cols[0]!.length;
  let from = 0;
  while (from < rows) {
    let to = from;
    let size = 0;
    do {
      size += textOf(cols[3]![to]) + textOf(cols[4]![to]);
      to++;
    } while (to < rows && size + textOf(cols[3]![to]) + textOf(cols[4]![to]) <= STATEMENT_TEXT_MAX);
    yield cols.map((col) => col.slice(from, to));
    from = to;
  }
}

const textOf = (v: unknown) => (typeof v === 'string' ? v.length : 0);

// biome-ignore lint/suspicious/noExplicitAny: rows are typed by each query, as pg does
async function query<R = any>(
  on: PgQueryable,
  text: string,
  values: unknown[] | undefined,
  timeoutMs: number,
): Promise<Rows<R>> {
  try {
    // pg's own read timeout: a connection that stops answering (a network partition, a proxy that
    // holds the socket) fails the query instead of holding the engine, and its stop(), for good.
    const result =
      timeoutMs > 0
        ? (on as unknown as PgTimedQueryable).query({ text, values, query_timeout: timeoutMs })
        : on.query(text, values);
    return (await result) as Rows<R>;
  } catch (err) {
    throw toStoreError('postgres', err, 'query failed');
  }
}

/**
 * Migrations on one client, each in its own transaction under a transaction-level advisory lock, so
 * two processes that open the same schema at once apply each migration exactly once. The schema and
 * the migrations table are created in the first one when missing; `search_path` points at the
 * schema, so the migrations name none.
 */
async function migrate(pool: PgPool, schema: string): Promise<void> {
  const client = await pool.connect();
  const s = quoteIdentifier(schema);
  let broken: Error | undefined;
  // As in PostgresStore.transaction: a connection lost meanwhile must not end the process.
  const lost = (e: unknown) => {
    broken ??= toError(e);
  };
  client.on('error', lost);
  const session: MigrationSession = {
    async begin() {
      await client.query('BEGIN');
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
    },
    async applied() {
      const { rows } = await client.query('SELECT coalesce(max(id), 0)::int AS id FROM partita_migrations');
      return rows[0].id;
    },
    async apply(id, sql) {
      await client.query(sql);
      await client.query('INSERT INTO partita_migrations (id) VALUES ($1)', [id]);
    },
    async commit() {
      await client.query('COMMIT');
    },
    async rollback() {
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = toError(e); // the connection is unusable: release(err) discards it
      });
    },
  };
  try {
    await runMigrations(session, POSTGRES_MIGRATIONS);
  } finally {
    client.removeListener?.('error', lost);
    client.release(broken);
  }
}
