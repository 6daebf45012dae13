import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { parseOrThrow } from '../validation.js';
import { isThenable } from '../values.js';
import { creatorIsGone, newCreator, retireCreator } from './creators.js';
import { loadDriver } from './drivers.js';
import { type CapturedPartition, capturePartition, closeSource } from './inputs.js';
import { runMigrationsSync, type SyncMigrationSession } from './migrate.js';
import { SQLITE_MIGRATIONS } from './migrations/sqlite.js';
import type { Params } from './sql-listing.js';
import { redriveStatements, type Statement } from './sql-redrive.js';
import { noop, toStoreError } from './sql-rows.js';
import { SqlStore } from './sql-store.js';
import {
  outcomeRow,
  prepare,
  type SqliteDb,
  type SqliteWrite,
  type Statements,
  stateRow,
} from './sqlite-statements.js';
import { notOpen, startWriterThread, Writer } from './sqlite-writers.js';
import type {
  BatchRecord,
  BatchState,
  Fence,
  OutcomeRecord,
  PartitionInput,
  PartitionSource,
  Store,
} from './store.js';
import { compiledThreadFile, endThread } from './store-threads.js';
import { WriteAhead } from './write-ahead.js';

export interface SqliteStoreOptions {
  /** Database file. Its directory is created when missing. `:memory:` keeps it in memory. */
  path: string;
  /** `NORMAL` (default) may lose the last transactions on power loss, never on a process crash; `FULL` loses none. */
  synchronous?: 'NORMAL' | 'FULL';
  /** How long a write waits for another connection's lock before failing with a STORE error. Default 5,000 ms. */
  busyTimeoutMs?: number;
}

/**
 * A Store in one SQLite file (WAL mode), the engine's default. Writes commit in groups, one
 * better-sqlite3 transaction a group, on the engine's thread or, for large groups, on a writer
 * thread of the store's own (docs/architecture.md, "The SQLite writer thread"); a write's promise
 * settles once it has committed, so a crash of the host leaves each batch as last committed. Several
 * processes may share one file (docs/persistence.md, "Several processes on one SQLite file").
 * better-sqlite3 is loaded by open(), not when partita is imported.
 *
 * watch() hears only the saveState calls made through this same store object: SQLite has no
 * notification across connections, so engines in other processes are not heard.
 *
 * @example
 * ```ts
 * const engine = createEngine({ jobs: [job], store: sqliteStore({ path: '.partita/partita.db' }) });
 * ```
 */
export function sqliteStore(options: SqliteStoreOptions): Store {
  const o = parseOrThrow(sqliteOptionsSchema, options, 'sqliteStore options');
  return new SqliteStore(o.path, o.synchronous ?? 'NORMAL', o.busyTimeoutMs ?? BUSY_TIMEOUT_MS);
}

/** Strict: a misspelt option (`pth`, `busyTimeout`) is refused, not ignored. */
const sqliteOptionsSchema = z
  .object({
    path: z.string().min(1),
    synchronous: z.enum(['NORMAL', 'FULL']).optional(),
    busyTimeoutMs: z.number().int().min(0).optional(),
  })
  .strict();

/** Partitions per insert transaction in createBatch: bounds memory for streamed sources. */
const CHUNK = 1000;
const BUSY_TIMEOUT_MS = 5000;

/** How often the checkpointer thread copies the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 100;
/**
 * The engine's own connection checkpoints only past this many WAL pages (16 MB; SQLite's default is
 * 1,000): the checkpointer thread does it long before, unless it could not start or falls behind.
 */
const WAL_AUTOCHECKPOINT = 4000;
/**
 * The size the WAL file is cut back to when it starts over (`journal_size_limit`, 32 MiB): SQLite
 * otherwise keeps the file at its largest, so one burst (a batch of a million partitions created
 * while a long read held the checkpoint back) would leave hundreds of MB on disk for good. Twice
 * what 4,000 pages hold, so the WAL of steady work (100 ms of writes) is never cut and grown again.
 */
export const WAL_SIZE_LIMIT = 32 * 1024 * 1024;

interface Connection {
  /** The engine's thread's connection: reads (and writes, when no writer thread runs). */
  db: Database.Database;
  s: Statements;
  /** Who commits the writes: the writer thread, or this thread (src/store/sqlite-writers.ts). */
  writer: Writer;
  /** This open()'s creator id (src/store/creators.ts), written on the batches it creates. */
  creator: string;
  /** The checkpointer thread (src/store/sqlite-checkpointer.ts), when one runs. */
  checkpointer: Worker | undefined;
}

class SqliteStore extends SqlStore implements Store {
  readonly kind = 'sqlite';
  protected readonly dialect = {
    batches: 'batches',
    partitions: 'partitions',
    schedules: 'schedules',
    leaseHistory: 'lease_history',
    ranges: 'ranges',
    rangeAnswers: 'range_answers',
    // One writer at a time holds the whole file: there is no row to skip.
    skipLocked: '',
    visible: 'creating = 0',
    // rowid follows insertion.
    insertionOrder: 'rowid',
    placeholder: () => '?',
    // Every process on a SQLite file runs on the same host, so the host's clock serves.
    now: (params: Params) => params.add(Date.now()),
    endedAt: "json_extract(b.state, '$.summary.finishedAt')",
    parentsOf: "json_each(d.record, '$.after')",
    idList: (params: Params, ids: readonly string[]) =>
      `SELECT value FROM json_each(${params.add(JSON.stringify(ids))})`,
  };
  private conn: Connection | undefined;
  constructor(
    private readonly path: string,
    private readonly synchronous: 'NORMAL' | 'FULL',
    private readonly busyTimeoutMs: number,
  ) {
    super();
  }

  protected async connect(): Promise<void> {
    const Driver = await loadDriver(
      'sqlite',
      'better-sqlite3',
      async () => (await import('better-sqlite3')).default,
    );
    let db: Database.Database | undefined;
    let creator: string | undefined;
    try {
      if (this.path !== ':memory:') mkdirSync(dirname(resolve(this.path)), { recursive: true });
      db = new Driver(this.path, { timeout: this.busyTimeoutMs });
      // Switching a new file to WAL answers SQLITE_BUSY at once, without its busy timeout, while
      // another process opens the same file (seen once by an outside probe starting three engines).
      const conn = db;
      await untilNotBusy(() => conn.pragma('journal_mode = WAL'), this.busyTimeoutMs);
      db.pragma(`synchronous = ${this.synchronous}`);
      db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
      runMigrationsSync(migrationSession(db), SQLITE_MIGRATIONS);
      creator = newCreator();
      // The driver's generic transaction type is wider than SqliteDb says; what prepare() uses matches.
      const s = prepare(db as unknown as SqliteDb, creator, (c) => creatorIsGone(c));
      // A crash during createBatch leaves an invisible batch that nobody will finish.
      s.sweep.immediate();
      const checkpointer = this.path === ':memory:' ? undefined : startCheckpointer(this.path);
      if (checkpointer) db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT}`);
      const thread =
        this.path === ':memory:'
          ? undefined
          : await startWriterThread({
              path: this.path,
              creator,
              synchronous: this.synchronous,
              busyTimeoutMs: this.busyTimeoutMs,
              walAutocheckpoint: checkpointer ? WAL_AUTOCHECKPOINT : undefined,
              walSizeLimit: WAL_SIZE_LIMIT,
            });
      // While the writer thread runs, the engine's thread never waits for a lock (see Writer): its
      // reads do not need one (WAL), and a group it cannot commit at once goes to the thread.
      const lockWait = {
        off: () => conn.pragma('busy_timeout = 0'),
        on: () => conn.pragma(`busy_timeout = ${this.busyTimeoutMs}`),
      };
      this.conn = { db, s, writer: new Writer(s, thread, lockWait), creator, checkpointer };
    } catch (err) {
      if (creator) retireCreator(creator);
      db?.close();
      throw toStoreError('sqlite', err, `cannot open ${this.path}`);
    }
  }

  protected async disconnect(): Promise<void> {
    const conn = this.conn;
    // Writes already asked for are committed (or fail) before the connection goes.
    await conn?.writer.close();
    this.conn = undefined;
    if (!conn) return;
    // From now on this store's unfinished creations are dead: the next open() anywhere removes them.
    retireCreator(conn.creator);
    await stopCheckpointer(conn.checkpointer);
    conn.db.close();
  }

  protected async create(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }> {
    return this.oneCreationAtATime(record.id, () => this.createOnce(record, partitions));
  }

  /**
   * Streams the partitions in chunks of {@link CHUNK}, each its own write, while
   * the batch row is invisible (`creating = 1`, `creator` = this open()); a final transaction makes
   * it visible. A transaction is never held open across an `await`, so writes of other batches
   * cannot land inside one. Each chunk first checks that the row is still ours and being created:
   * if another store removed it, the chunk writes nothing and createBatch fails (STORE).
   */
  private async createOnce(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }> {
    const source = new Source(partitions);
    try {
      return await this.createFrom(record, source);
    } finally {
      source.close();
    }
  }

  private async createFrom(record: BatchRecord, source: Source): Promise<{ created: boolean }> {
    // The first chunk is read before anything is written: a batch that fits in it is stored whole.
    let chunk: CapturedPartition[] = [];
    const ended = !(await source.fill(chunk, CHUNK, (p) => capturePartition(p, chunk.length, record.id)));
    const row = { id: record.id, job: record.job, priority: record.priority, createdAt: record.createdAt };
    if (ended) {
      const final = JSON.stringify({ ...record, total: chunk.length });
      return { created: (await this.write({ k: 'whole', row, chunk, final })) as boolean };
    }
    if (!(await this.write({ k: 'insertBatch', row, record: JSON.stringify(record) })))
      return { created: false };
    // Each chunk is written while the next is read from the source (WriteAhead).
    const ahead = new WriteAhead();
    try {
      let index = 0;
      const written = chunk;
      await ahead.push(() => this.write({ k: 'insertChunk', batchId: record.id, start: 0, chunk: written }));
      index += chunk.length;
      chunk = [];
      await yieldToEventLoop();
      const take = (p: PartitionInput) => {
        ahead.check();
        return capturePartition(p, index + chunk.length, record.id);
      };
      while (await source.fill(chunk, CHUNK, take)) {
        const full = chunk;
        const start = index;
        await ahead.push(() => this.write({ k: 'insertChunk', batchId: record.id, start, chunk: full }));
        index += chunk.length;
        chunk = [];
        // A source that never waits (an array, a sync generator) would otherwise hold the event
        // loop for the whole batch: 1,000,000 partitions take seconds, and other batches stall.
        await yieldToEventLoop();
      }
      await ahead.drain();
      // The store, not the caller, knows how many partitions the iterator gave.
      const final = JSON.stringify({ ...record, total: index + chunk.length });
      await this.write({ k: 'finish', batchId: record.id, start: index, chunk, record: final });
      return { created: true };
    } catch (err) {
      // A chunk's write that failed before the source did is the failure to report.
      const first = (await ahead.settle()) ?? err;
      // Our own failures are already PartitaErrors; anything else is the source's error, passed on as is.
      // If the undo fails too (store closed), an open() removes the invisible leftovers.
      await this.write({ k: 'discard', batchId: record.id }).catch(noop);
      throw first;
    }
  }

  async appendOutcomes(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    fence: Fence,
  ): Promise<{ accepted: number }> {
    return {
      accepted: (await this.write({
        k: 'append',
        batchId,
        outcomes: outcomes.map(outcomeRow),
        fence,
      })) as number,
    };
  }

  /** appendOutcomes and saveState in one transaction: the journal's usual write, half the commits. */
  async commit(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    state: BatchState,
    fence: Fence,
  ): Promise<{ accepted: number; saved: boolean }> {
    const { accepted, saved, changed } = (await this.write({
      k: 'commit',
      batchId,
      outcomes: outcomes.map(outcomeRow),
      state: stateRow(state),
      fence,
    })) as { accepted: number; saved: boolean; changed: boolean };
    if (changed) this.watchers.emit({ batchId, status: state.status });
    return { accepted, saved };
  }

  async saveState(batchId: string, state: BatchState, fence: Fence): Promise<boolean> {
    const { saved, changed } = (await this.write({ k: 'save', batchId, state: stateRow(state), fence })) as {
      saved: boolean;
      changed: boolean;
    };
    if (changed) this.watchers.emit({ batchId, status: state.status });
    return saved;
  }

  async redrive(batchId: string, state: BatchState, endedRun: number): Promise<boolean> {
    const statements = redriveStatements(this.dialect, batchId, state, endedRun, (params, run) => {
      const entry = `json_object('run', ${params.add(run)}, 'status', 'failed', 'error', json(error),
        'attempts', attempts, 'durationMs', duration_ms, 'finishedAt', finished_at)`;
      return `json_insert(coalesce(history, '[]'), '$[#]', ${entry})`;
    });
    const done = (await this.write({ k: 'allOrNothing', statements })) as boolean;
    if (done) this.watchers.emit({ batchId, status: 'QUEUED' });
    return done;
  }

  async beingCreated(id: string): Promise<boolean> {
    const [row] = await this.select<{ creator: string | null }>(
      'SELECT creator FROM batches WHERE id = ? AND creating = 1',
      [id],
    );
    return row !== undefined && !creatorIsGone(row.creator);
  }

  protected async select<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    return this.run((s) => s.statement(sql).all(...params) as R[]);
  }

  /** A write that returns rows (taking a lease): committed with the writes around it. */
  protected override async selectWrite<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    return (await this.write({ k: 'rows', sql, params })) as R[];
  }

  protected async execute(sql: string, params: readonly unknown[]): Promise<number> {
    return (await this.write({ k: 'changes', sql, params })) as number;
  }

  protected async executeAll(statements: readonly Statement[]): Promise<number> {
    return (await this.write({ k: 'all', statements })) as number;
  }

  /** Asks the writer for a write (src/store/sqlite-writers.ts); it settles once its group has committed. */
  private write(w: SqliteWrite): Promise<unknown> {
    const conn = this.conn;
    if (!conn) return Promise.reject(notOpen());
    return conn.writer.write(w);
  }

  /** Runs one synchronous unit against the open database; driver errors become StoreError. */
  private run<T>(fn: (s: Statements) => T): T {
    const conn = this.conn;
    if (!conn) throw notOpen();
    try {
      return fn(conn.s);
    } catch (err) {
      throw toStoreError('sqlite', err, 'statement failed');
    }
  }
}

/**
 * Checkpoints in a worker thread of their own (src/store/sqlite-checkpointer.ts), so that the fsyncs
 * of a checkpoint never hold up the engine's thread. Undefined when the compiled checkpointer is not
 * found (the engine's connection then checkpoints as SQLite does by default).
 */
function startCheckpointer(path: string): Worker | undefined {
  const file = compiledThreadFile('sqlite-checkpointer');
  if (!file) return undefined;
  const worker = new Worker(file, {
    workerData: { path, intervalMs: CHECKPOINT_INTERVAL_MS, walSizeLimit: WAL_SIZE_LIMIT },
  });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  checkpointerExits.set(worker, exited);
  // A checkpointer that fails only leaves checkpoints to the engine's connection.
  worker.on('error', () => {});
  worker.unref();
  return worker;
}

const checkpointerExits = new WeakMap<Worker, Promise<void>>();

/** Lets the checkpointer close its connection and end. */
async function stopCheckpointer(worker: Worker | undefined): Promise<void> {
  if (worker) await endThread(worker, checkpointerExits.get(worker)!);
}

/** Migrations in IMMEDIATE transactions: the first writer lock serializes two processes opening at once. */
function migrationSession(db: Database.Database): SyncMigrationSession {
  return {
    begin() {
      db.exec('BEGIN IMMEDIATE');
      db.exec(
        'CREATE TABLE IF NOT EXISTS partita_migrations (id INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)',
      );
    },
    applied() {
      return (
        (db.prepare('SELECT max(id) AS id FROM partita_migrations').get() as { id: number | null }).id ?? 0
      );
    },
    apply(id, sql) {
      db.exec(sql);
      db.prepare('INSERT INTO partita_migrations (id, applied_at) VALUES (?, ?)').run(
        id,
        new Date().toISOString(),
      );
    },
    commit() {
      db.exec('COMMIT');
    },
    rollback() {
      if (db.inTransaction) db.exec('ROLLBACK');
    },
  };
}

/**
 * The partitions, read in chunks whatever kind of iterable they came in (a sync one without a
 * promise per partition), and closed (`return()`, as `for await` does) when createBatch stops
 * reading before their end: a generator's `finally` runs, a cursor it holds is released.
 */
class Source {
  private readonly sync: Iterator<PartitionInput> | undefined;
  private readonly async: AsyncIterator<PartitionInput> | undefined;
  private open = true;

  constructor(partitions: PartitionSource) {
    const asyncIt = (partitions as AsyncIterable<PartitionInput>)[Symbol.asyncIterator];
    if (asyncIt) this.async = asyncIt.call(partitions);
    else this.sync = (partitions as Iterable<PartitionInput>)[Symbol.iterator]();
  }

  /**
   * Reads partitions into `chunk` (each through `take`) until it holds `max`: true when full, false
   * at the source's end. A sync source is read without a promise per partition.
   */
  async fill(
    chunk: CapturedPartition[],
    max: number,
    take: (p: PartitionInput) => CapturedPartition,
  ): Promise<boolean> {
    while (chunk.length < max) {
      let step: IteratorResult<PartitionInput>;
      try {
        step = this.sync ? this.sync.next() : await this.async!.next();
      } catch (err) {
        this.open = false; // a source that threw has ended
        throw err;
      }
      if (step.done) {
        this.open = false;
        return false;
      }
      // A sync source's partition may be a promise, awaited as `for await` would (src/runtime/submission.ts).
      const value = step.value;
      chunk.push(take((isThenable(value) ? await value : value) as PartitionInput));
    }
    return true;
  }

  /** Not awaited: a source stuck in its own `await` must not hold the submit's answer. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    closeSource((this.sync ?? this.async)!);
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Runs `fn` again while SQLite answers SQLITE_BUSY, for `ms` at most. */
async function untilNotBusy<T>(fn: () => T, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}
