import { existsSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { LeaseLostError, StoreError, ValidationError } from '../errors.js';
import { creatorIsGone, newCreator, retireCreator } from './creators.js';
import { loadDriver } from './drivers.js';
import { type CapturedPartition, capturePartition, duplicateKey } from './inputs.js';
import { type MigrationSession, runMigrations } from './migrate.js';
import { SQLITE_MIGRATIONS } from './migrations/sqlite.js';
import type { Params } from './sql-listing.js';
import { redriveStatements } from './sql-redrive.js';
import { noop, outcomeValues, toStoreError } from './sql-rows.js';
import { SqlStore } from './sql-store.js';
import type {
  BatchRecord,
  BatchState,
  Fence,
  OutcomeRecord,
  PartitionInput,
  PartitionSource,
  Store,
} from './store.js';

export interface SqliteStoreOptions {
  /** Database file. Its directory is created when missing. `:memory:` keeps it in memory. */
  path: string;
  /** `NORMAL` (default) may lose the last transactions on power loss, never on a process crash; `FULL` loses none. */
  synchronous?: 'NORMAL' | 'FULL';
  /** How long a write waits for another connection's lock before failing with a STORE error. Default 5,000 ms. */
  busyTimeoutMs?: number;
}

/**
 * A Store in one SQLite file (WAL mode), the engine's default. Every write is one synchronous
 * better-sqlite3 transaction, so a crash of the host leaves each batch as last committed. Several
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
  const invalid = (path: string, expected: string, received: unknown) =>
    new ValidationError(`sqliteStore: "${path}" must be ${expected}, received ${JSON.stringify(received)}`, [
      { path, message: `expected ${expected}` },
    ]);
  if (typeof options?.path !== 'string' || options.path === '')
    throw invalid('path', 'a non-empty string', options?.path);
  const sync = options.synchronous ?? 'NORMAL';
  if (sync !== 'NORMAL' && sync !== 'FULL') throw invalid('synchronous', "'NORMAL' or 'FULL'", sync);
  const busy = options.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  if (!Number.isInteger(busy) || busy < 0) throw invalid('busyTimeoutMs', 'a whole number >= 0', busy);
  return new SqliteStore(options.path, sync, busy);
}

/** Partitions per insert transaction in createBatch: bounds memory for streamed sources. */
const CHUNK = 1000;
const BUSY_TIMEOUT_MS = 5000;
/** Most writes committed in one group transaction: bounds how long one holds the event loop and the lock. */
const MAX_GROUP = 256;

/** A write waiting for the group commit (`grouped`). */
interface GroupedWrite {
  fn: (s: Statements) => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

/** How often the checkpointer thread copies the WAL into the database file. */
const CHECKPOINT_INTERVAL_MS = 100;
/**
 * The engine's own connection checkpoints only past this many WAL pages (16 MB; SQLite's default is
 * 1,000): the checkpointer thread does it long before, unless it could not start or falls behind.
 */
const WAL_AUTOCHECKPOINT = 4000;

interface Connection {
  db: Database.Database;
  s: Statements;
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
  };
  private conn: Connection | undefined;
  /** select()'s and execute()'s statements by SQL text: listBatches' filters combine into a handful of shapes. */
  private readonly statements = new Map<string, Database.Statement>();
  /** createBatch calls in flight by id, so a second call with the same id waits for the first. */
  private readonly inflight = new Map<string, Promise<unknown>>();
  /** Writes waiting for the group commit (`grouped`). */
  private group: GroupedWrite[] = [];
  private groupQueued = false;

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
      await runMigrations(migrationSession(db), SQLITE_MIGRATIONS);
      creator = newCreator();
      const s = prepare(db, creator);
      // A crash during createBatch leaves an invisible batch that nobody will finish.
      s.sweep.immediate();
      const checkpointer = this.path === ':memory:' ? undefined : startCheckpointer(this.path);
      if (checkpointer) db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT}`);
      this.conn = { db, s, creator, checkpointer };
    } catch (err) {
      if (creator) retireCreator(creator);
      db?.close();
      throw toStoreError('sqlite', err, `cannot open ${this.path}`);
    }
  }

  protected async disconnect(): Promise<void> {
    // Writes already asked for are committed (or fail) before the connection goes.
    while (this.group.length > 0) this.writeGroup();
    const conn = this.conn;
    this.conn = undefined;
    this.statements.clear();
    if (!conn) return;
    // From now on this store's unfinished creations are dead: the next open() anywhere removes them.
    retireCreator(conn.creator);
    await stopCheckpointer(conn.checkpointer);
    conn.db.close();
  }

  protected async create(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }> {
    for (let prior = this.inflight.get(record.id); prior; prior = this.inflight.get(record.id)) {
      await prior.then(noop, noop);
    }
    const run = this.createOnce(record, partitions);
    this.inflight.set(record.id, run);
    try {
      return await run;
    } finally {
      if (this.inflight.get(record.id) === run) this.inflight.delete(record.id);
    }
  }

  /**
   * Streams the partitions in chunks of {@link CHUNK}, each its own synchronous transaction, while
   * the batch row is invisible (`creating = 1`, `creator` = this open()); a final transaction makes
   * it visible. A transaction is never held open across an `await`, so writes of other batches
   * cannot land inside one. Each chunk first checks that the row is still ours and being created:
   * if another store removed it, the chunk writes nothing and createBatch fails (STORE).
   */
  private async createOnce(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }> {
    const source = iterate(partitions);
    // The first chunk is read before anything is written: a batch that fits in it is stored whole.
    let chunk: CapturedPartition[] = [];
    let ended = false;
    while (chunk.length < CHUNK) {
      const step = await source.next();
      if (step.done) {
        ended = true;
        break;
      }
      chunk.push(capturePartition(step.value, chunk.length, record.id));
    }
    if (ended) {
      const final = JSON.stringify({ ...record, total: chunk.length });
      const row = { id: record.id, job: record.job, priority: record.priority, createdAt: record.createdAt };
      return { created: await this.grouped((s) => s.whole(row, chunk, final)) };
    }
    const json = JSON.stringify(record);
    if (!this.run((s) => s.insertBatch(record.id, record.job, record.priority, record.createdAt, json)))
      return { created: false };
    try {
      let index = 0;
      this.run((s) => s.insertChunk.immediate(record.id, index, chunk));
      index += chunk.length;
      chunk = [];
      await yieldToEventLoop();
      for (let step = await source.next(); !step.done; step = await source.next()) {
        chunk.push(capturePartition(step.value, index + chunk.length, record.id));
        if (chunk.length === CHUNK) {
          this.run((s) => s.insertChunk.immediate(record.id, index, chunk));
          index += chunk.length;
          chunk = [];
          // A source that never waits (an array, a sync generator) would otherwise hold the event
          // loop for the whole batch: 1,000,000 partitions take seconds, and other batches stall.
          await yieldToEventLoop();
        }
      }
      // The store, not the caller, knows how many partitions the iterator gave.
      const final = JSON.stringify({ ...record, total: index + chunk.length });
      this.run((s) => s.finish.immediate(record.id, index, chunk, final));
      return { created: true };
    } catch (err) {
      // Our own failures are already PartitaErrors; anything else is the source's error, passed on as is.
      // If the undo fails too (store closed), an open() removes the invisible leftovers.
      try {
        this.run((s) => s.discard.immediate(record.id));
      } catch {}
      throw err;
    }
  }

  async appendOutcomes(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    fence: Fence,
  ): Promise<{ accepted: number }> {
    return { accepted: await this.grouped((s) => s.append(batchId, outcomes, fence)) };
  }

  /** appendOutcomes and saveState in one transaction: the journal's usual write, half the commits. */
  async commit(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    state: BatchState,
    fence: Fence,
  ): Promise<{ accepted: number; saved: boolean }> {
    const { accepted, saved, changed } = await this.grouped((s) => s.commit(batchId, outcomes, state, fence));
    if (changed) this.watchers.emit({ batchId, status: state.status });
    return { accepted, saved };
  }

  async saveState(batchId: string, state: BatchState, fence: Fence): Promise<boolean> {
    const { saved, changed } = await this.grouped((s) => s.save(batchId, state, fence));
    if (changed) this.watchers.emit({ batchId, status: state.status });
    return saved;
  }

  async redrive(batchId: string, state: BatchState, endedRun: number): Promise<boolean> {
    const [batch, ...rest] = redriveStatements(this.dialect, batchId, state, endedRun, (params, run) => {
      const entry = `json_object('run', ${params.add(run)}, 'status', 'failed', 'error', json(error),
        'attempts', attempts, 'durationMs', duration_ms, 'finishedAt', finished_at)`;
      return `json_insert(coalesce(history, '[]'), '$[#]', ${entry})`;
    });
    const done = this.run(({ db }) =>
      db
        .transaction(() => {
          if (this.statement(db, batch!.sql).run(...batch!.params).changes !== 1) return false;
          for (const s of rest) this.statement(db, s.sql).run(...s.params);
          return true;
        })
        .immediate(),
    );
    if (done) this.watchers.emit({ batchId, status: 'QUEUED' });
    return done;
  }

  protected async select<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    return this.run(({ db }) => this.statement(db, sql).all(...params) as R[]);
  }

  /** A write that returns rows (taking a lease): committed with the writes around it (`grouped`). */
  protected override async selectWrite<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    return this.grouped(({ db }) => this.statement(db, sql).all(...params) as R[]);
  }

  protected async execute(sql: string, params: readonly unknown[]): Promise<number> {
    return this.run(({ db }) => this.statement(db, sql).run(...params).changes);
  }

  private statement(db: Database.Database, sql: string): Database.Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      stmt = db.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  /**
   * Group commit across batches: a write asked for now runs a moment later (`queueGroup`), in one
   * IMMEDIATE transaction with every other write asked for meanwhile (the creations, journal
   * groups, states and leases of all the batches that got there together). On SQLite a
   * transaction's fixed cost (the lock, the WAL header and index) weighs on the statements of a
   * small batch. Each promise settles only after the whole transaction has committed.
   *
   * A write that the store refuses for a stale fence (LEASE_LOST) is refused before it has written
   * anything, so it is left out alone and the others commit. Any other error rolls the whole group
   * back, and each of its writes is then run again in a transaction of its own: each settles as it
   * would have without the group (no savepoints: SQLite copies every page a savepoint touches to a
   * sub-journal, which cost more than the group saved).
   */
  private grouped<T>(fn: (s: Statements) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.group.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      this.queueGroup();
    });
  }

  /**
   * The group is written in a microtask: after the code running now and the microtasks queued before
   * it, so every batch moving in step with this one (a backlog of submits, lanes settling together)
   * has joined it. Waiting for the next turn of the event loop (`setImmediate`) would gather writes
   * from more timers and I/O callbacks, but cost more than it saved: measured, 60–80 µs more CPU
   * per one-partition batch submitted one after another.
   */
  private queueGroup(later = false): void {
    if (this.groupQueued) return;
    this.groupQueued = true;
    const write = () => {
      this.groupQueued = false;
      this.writeGroup();
    };
    if (later) setImmediate(write);
    else queueMicrotask(write);
  }

  /** Commits up to {@link MAX_GROUP} waiting writes in one transaction and settles their promises. */
  private writeGroup(): void {
    if (this.group.length === 0) return;
    const writes = this.group.length <= MAX_GROUP ? this.group : this.group.slice(0, MAX_GROUP);
    this.group = writes === this.group ? [] : this.group.slice(MAX_GROUP);
    // More than one group's worth (a backlog submitted at once): the rest after I/O has had a turn.
    if (this.group.length > 0) this.queueGroup(true);
    const results: unknown[] = new Array(writes.length);
    const refused: Array<LeaseLostError | undefined> = new Array(writes.length);
    try {
      this.run((s) =>
        s.group.immediate(() => {
          for (let i = 0; i < writes.length; i++) {
            try {
              results[i] = writes[i]!.fn(s);
            } catch (err) {
              if (!(err instanceof LeaseLostError)) throw err;
              refused[i] = err;
            }
          }
        }),
      );
    } catch {
      // Nothing of the group is stored: each write alone, as if there had been no group.
      for (const w of writes) {
        try {
          w.resolve(this.run((s) => s.group.immediate(() => w.fn(s))));
        } catch (err) {
          w.reject(err);
        }
      }
      return;
    }
    for (let i = 0; i < writes.length; i++) {
      const err = refused[i];
      if (err) writes[i]!.reject(err);
      else writes[i]!.resolve(results[i]);
    }
  }

  /** Runs one synchronous unit against the open database; driver errors become StoreError. */
  private run<T>(fn: (s: Statements) => T): T {
    const conn = this.conn;
    if (!conn) throw new StoreError('sqlite store is not open: call open() first');
    try {
      return fn(conn.s);
    } catch (err) {
      throw toStoreError('sqlite', err, 'statement failed');
    }
  }
}

type Statements = ReturnType<typeof prepare>;

/** Every statement the store runs more than once, prepared once per connection. */
function prepare(db: Database.Database, creator: string) {
  const creation = creationStatements(db, creator);
  const fenceOf = db.prepare(
    'SELECT lease_owner AS owner, lease_epoch AS epoch, status FROM batches WHERE id = ? AND creating = 0',
  );
  const setOutcome = db.prepare(
    `UPDATE partitions SET status = ?, result = ?, error = ?, attempts = ?, duration_ms = ?, seq = ?, finished_at = ?
     WHERE batch_id = ? AND idx = ? AND key = ? AND status = 'pending'`,
  );
  const setState = db.prepare(
    'UPDATE batches SET state = ?, status = ?, journal_seq = ? WHERE id = ? AND journal_seq <= ?',
  );

  /** The stored status when `fence` holds the lease; LEASE_LOST otherwise. */
  const requireFence = (batchId: string, fence: Fence): string => {
    const held = fenceOf.get(batchId) as (Fence & { status: string }) | undefined;
    if (!held || held.owner !== fence.owner || held.epoch !== fence.epoch) throw new LeaseLostError(batchId);
    return held.status;
  };

  /** Write the outcomes; the fence was checked in this same transaction. */
  const setOutcomes = (batchId: string, outcomes: readonly OutcomeRecord[]): number => {
    let accepted = 0;
    for (const o of outcomes)
      accepted += setOutcome.run(...outcomeValues(o), batchId, o.index, o.key).changes;
    return accepted;
  };
  /** Write the state over `before` (the stored status); the fence was checked in this same transaction. */
  const setStateOver = (batchId: string, state: BatchState, before: string) => {
    const saved =
      setState.run(JSON.stringify(state), state.status, state.journalSeq, batchId, state.journalSeq).changes >
      0;
    return { saved, changed: saved && before !== state.status };
  };
  const append = (batchId: string, outcomes: readonly OutcomeRecord[], fence: Fence): number => {
    requireFence(batchId, fence);
    return setOutcomes(batchId, outcomes);
  };
  const save = (batchId: string, state: BatchState, fence: Fence) =>
    setStateOver(batchId, state, requireFence(batchId, fence));

  return {
    db,
    ...creation,
    /** The group commit's transaction (`grouped`): runs the writes it is given. */
    group: db.transaction((writes: () => void) => writes()),
    // Group commit: one transaction for the whole group; `status = 'pending'` refuses a second outcome.
    // These three run inside the group commit's transaction (`grouped`), which makes each atomic.
    // Each checks its fence before it writes anything: a refusal leaves nothing to undo.
    append,
    save,
    // The journal's group and the state that covers it (Store.commit).
    commit: (batchId: string, outcomes: readonly OutcomeRecord[], state: BatchState, fence: Fence) => {
      const before = requireFence(batchId, fence);
      const accepted = setOutcomes(batchId, outcomes);
      return { accepted, ...setStateOver(batchId, state, before) };
    },
  };
}

/**
 * createBatch's statements. Partition rows are written only inside a transaction that has just seen
 * the batch row being created by `creator`, and are deleted in the transaction that deletes that
 * row, so no partition ever outlives its batch (no orphan rows), even when another store removes a
 * creation it judged abandoned.
 */
function creationStatements(db: Database.Database, creator: string) {
  const insertRow = db.prepare(
    `INSERT INTO batches (id, job, status, priority, created_at, record, creating, creator)
     VALUES (?, ?, 'QUEUED', ?, ?, ?, 1, ?) ON CONFLICT (id) DO NOTHING`,
  );
  const insertVisible = db.prepare(
    `INSERT INTO batches (id, job, status, priority, created_at, record, creating, creator)
     VALUES (?, ?, 'QUEUED', ?, ?, ?, 0, ?) ON CONFLICT (id) DO NOTHING`,
  );
  const creatorOf = db.prepare('SELECT creator FROM batches WHERE id = ? AND creating = 1');
  const creations = db.prepare('SELECT id, creator FROM batches WHERE creating = 1');
  const ours = db.prepare('SELECT 1 FROM batches WHERE id = ? AND creating = 1 AND creator = ?');
  const someoneElses = db.prepare(
    'SELECT 1 FROM batches WHERE id = ? AND NOT (creating = 1 AND creator IS ?)',
  );
  const insertPartition = db.prepare(
    'INSERT INTO partitions (batch_id, idx, key, payload) VALUES (?, ?, ?, ?)',
  );
  const markVisible = db.prepare(
    'UPDATE batches SET creating = 0, record = ? WHERE id = ? AND creating = 1 AND creator = ?',
  );
  const deleteCreation = db.prepare('DELETE FROM batches WHERE id = ? AND creating = 1 AND creator IS ?');
  const deletePartitions = db.prepare('DELETE FROM partitions WHERE batch_id = ?');

  const requireOurs = (batchId: string) => {
    if (!ours.get(batchId, creator)) {
      throw new StoreError(
        `sqlite store: batch "${batchId}" is no longer being created by this store (another store removed it as abandoned, or it was deleted); none of its partitions were kept`,
      );
    }
  };
  /** Removes a creation and its partitions, unless the id now belongs to a batch someone else holds. */
  const remove = (batchId: string, by: string | null) => {
    if (someoneElses.get(batchId, by)) return;
    deleteCreation.run(batchId, by);
    deletePartitions.run(batchId);
  };
  const insertChunk = db.transaction(
    (batchId: string, start: number, chunk: readonly CapturedPartition[]) => {
      requireOurs(batchId);
      for (let i = 0; i < chunk.length; i++) {
        const p = chunk[i]!;
        try {
          insertPartition.run(batchId, start + i, p.key, p.json ?? null);
        } catch (err) {
          if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE')
            throw duplicateKey(batchId, p.key);
          throw err;
        }
      }
    },
  );
  // An id held by a creation whose creator is gone is taken over, as open() would have removed it.
  const reclaim = db.transaction((batchId: string): boolean => {
    const row = creatorOf.get(batchId) as { creator: string | null } | undefined;
    if (!row || !creatorIsGone(row.creator)) return false;
    remove(batchId, row.creator);
    return true;
  });

  return {
    /**
     * A whole batch that fits in one chunk, in one transaction: row, partitions and visibility
     * (most batches; three transactions instead of one made up much of a small batch's cost).
     */
    whole: (
      row: { id: string; job: string; priority: number; createdAt: string },
      chunk: readonly CapturedPartition[],
      final: string,
    ): boolean => {
      // Run inside the group commit's transaction (`grouped`): the row is visible at once, with
      // its final record, since nobody can see it before its partitions are in.
      const insert = () =>
        insertVisible.run(row.id, row.job, row.priority, row.createdAt, final, creator).changes > 0;
      if (!insert()) {
        const held = creatorOf.get(row.id) as { creator: string | null } | undefined;
        if (!held || !creatorIsGone(held.creator)) return false;
        remove(row.id, held.creator);
        if (!insert()) return false;
      }
      for (let i = 0; i < chunk.length; i++) {
        const p = chunk[i]!;
        try {
          insertPartition.run(row.id, i, p.key, p.json ?? null);
        } catch (err) {
          if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE')
            throw duplicateKey(row.id, p.key);
          throw err;
        }
      }
      return true;
    },
    /** Inserts the invisible batch row; false when the id is taken (by a batch, or a live creation). */
    insertBatch: (id: string, job: string, priority: number, createdAt: string, record: string): boolean => {
      const insert = () => insertRow.run(id, job, priority, createdAt, record, creator).changes > 0;
      return insert() || (reclaim.immediate(id) && insert());
    },
    insertChunk,
    // The last chunk, the final record and the flip to visible commit together.
    finish: db.transaction(
      (batchId: string, start: number, chunk: readonly CapturedPartition[], record: string) => {
        insertChunk(batchId, start, chunk);
        markVisible.run(record, batchId, creator);
      },
    ),
    discard: db.transaction((batchId: string) => remove(batchId, creator)),
    /** Removes the creations whose creator is provably gone (src/store/creators.ts); run by open(). */
    sweep: db.transaction(() => {
      for (const row of creations.all() as { id: string; creator: string | null }[]) {
        if (creatorIsGone(row.creator)) remove(row.id, row.creator);
      }
    }),
  };
}

/**
 * Checkpoints in a worker thread of their own (src/store/sqlite-checkpointer.ts), so that the fsyncs
 * of a checkpoint never hold up the engine's thread. Undefined when the compiled checkpointer is not
 * found (the engine's connection then checkpoints as SQLite does by default).
 */
function startCheckpointer(path: string): Worker | undefined {
  // Built code finds it beside this file; from TypeScript sources (partita's own tests), in dist/.
  const file = [
    new URL('./sqlite-checkpointer.js', import.meta.url),
    new URL('../../dist/store/sqlite-checkpointer.js', import.meta.url),
  ]
    .map((url) => fileURLToPath(url))
    .find((f) => existsSync(f));
  if (!file) return undefined;
  const worker = new Worker(file, { workerData: { path, intervalMs: CHECKPOINT_INTERVAL_MS } });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  checkpointerExits.set(worker, exited);
  // A checkpointer that fails only leaves checkpoints to the engine's connection.
  worker.on('error', () => {});
  worker.unref();
  return worker;
}

const checkpointerExits = new WeakMap<Worker, Promise<void>>();

/**
 * Let the checkpointer close its connection and end (a terminate could cut it inside SQLite);
 * terminated only if it has not ended a few seconds later.
 */
async function stopCheckpointer(worker: Worker | undefined): Promise<void> {
  if (!worker) return;
  const exited = checkpointerExits.get(worker)!;
  worker.postMessage('close');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), 5000);
  });
  if ((await Promise.race([exited, late])) === 'late') await worker.terminate();
  clearTimeout(timer);
}

/** Migrations in IMMEDIATE transactions: the first writer lock serializes two processes opening at once. */
function migrationSession(db: Database.Database): MigrationSession {
  return {
    async begin() {
      db.exec('BEGIN IMMEDIATE');
      db.exec(
        'CREATE TABLE IF NOT EXISTS partita_migrations (id INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)',
      );
    },
    async applied() {
      return (
        (db.prepare('SELECT max(id) AS id FROM partita_migrations').get() as { id: number | null }).id ?? 0
      );
    },
    async apply(id, sql) {
      db.exec(sql);
      db.prepare('INSERT INTO partita_migrations (id, applied_at) VALUES (?, ?)').run(
        id,
        new Date().toISOString(),
      );
    },
    async commit() {
      db.exec('COMMIT');
    },
    async rollback() {
      if (db.inTransaction) db.exec('ROLLBACK');
    },
  };
}

/** The partitions as one async iterator, whatever kind of iterable they came in. */
function iterate(partitions: PartitionSource): AsyncIterator<PartitionInput> {
  const asyncIt = (partitions as AsyncIterable<PartitionInput>)[Symbol.asyncIterator];
  if (asyncIt) return asyncIt.call(partitions);
  const it = (partitions as Iterable<PartitionInput>)[Symbol.iterator]();
  return { next: async () => it.next() };
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
