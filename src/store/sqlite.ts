import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { LeaseLostError, SnapshotVersionError, StoreError, ValidationError } from '../errors.js';
import { SQLITE_MIGRATIONS } from './migrations/sqlite.js';
import {
  BATCH_COLS,
  type BatchDbRow,
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
 * better-sqlite3 transaction, so a crash of the host leaves each batch as last committed.
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
/** Rows per page of the iterators; no statement stays open across a `yield`. */
const PAGE = 1000;
const BUSY_TIMEOUT_MS = 5000;

class SqliteStore implements Store {
  readonly kind = 'sqlite';
  private db: Database.Database | undefined;
  private s: Statements | undefined;
  /** listBatches statements by SQL text: the filters combine into a handful of shapes. */
  private readonly listCache = new Map<string, Database.Statement>();
  /** createBatch calls in flight by id, so a second call with the same id waits for the first. */
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(
    private readonly path: string,
    private readonly synchronous: 'NORMAL' | 'FULL',
    private readonly busyTimeoutMs: number,
  ) {}

  async open(): Promise<void> {
    if (this.db) return;
    let db: Database.Database | undefined;
    try {
      if (this.path !== ':memory:') mkdirSync(dirname(resolve(this.path)), { recursive: true });
      db = new Database(this.path, { timeout: this.busyTimeoutMs });
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.synchronous}`);
      db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      migrate(db);
      // A crash during createBatch leaves an invisible batch: nobody will ever finish it.
      db.transaction(() => {
        db!.exec('DELETE FROM partitions WHERE batch_id IN (SELECT id FROM batches WHERE creating = 1)');
        db!.exec('DELETE FROM batches WHERE creating = 1');
      })();
      this.s = prepare(db);
      this.db = db;
    } catch (err) {
      db?.close();
      throw toStoreError('sqlite', err, `cannot open ${this.path}`);
    }
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    this.s = undefined;
    this.listCache.clear();
    db?.close();
  }

  async createBatch(
    record: BatchRecord,
    partitions: Iterable<PartitionInput> | AsyncIterable<PartitionInput>,
  ): Promise<{ created: boolean }> {
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
   * the batch row is invisible (`creating = 1`); a final transaction makes it visible. A transaction
   * is never held open across an `await`, so writes of other batches cannot land inside one.
   */
  private async createOnce(
    record: BatchRecord,
    partitions: Iterable<PartitionInput> | AsyncIterable<PartitionInput>,
  ): Promise<{ created: boolean }> {
    const json = JSON.stringify(record);
    const inserted = this.run((s) =>
      s.insertBatch.run(record.id, record.job, record.priority, record.createdAt, json),
    );
    if (inserted.changes === 0) return { created: false };
    try {
      let index = 0;
      let chunk: PartitionInput[] = [];
      for await (const p of partitions) {
        chunk.push(p);
        if (chunk.length === CHUNK) {
          this.run((s) => s.insertChunk(record.id, index, chunk));
          index += chunk.length;
          chunk = [];
          // A source that never waits (an array, a sync generator) would otherwise hold the event
          // loop for the whole batch: 1,000,000 partitions take seconds, and other batches stall.
          await yieldToEventLoop();
        }
      }
      // The store, not the caller, knows how many partitions the iterator gave.
      const final = JSON.stringify({ ...record, total: index + chunk.length });
      this.run((s) => s.finish(record.id, index, chunk, final));
      return { created: true };
    } catch (err) {
      // Our own failures are already PartitaErrors; anything else is the source's error, passed on as is.
      // If the undo fails too (store closed), open() removes the invisible leftovers.
      try {
        this.run((s) => s.discard(record.id));
      } catch {}
      throw err;
    }
  }

  async loadBatch(id: string): Promise<BatchRow | undefined> {
    const row = this.run((s) => s.loadBatch.get(id) as BatchDbRow | undefined);
    return row && toBatchRow(row);
  }

  async listBatches(filter: BatchFilter = {}): Promise<BatchRow[]> {
    const where = ['creating = 0'];
    const params: unknown[] = [];
    if (filter.unfinished) {
      where.push(`status NOT IN (${FINAL_STATUS_LIST.map(() => '?').join(', ')})`);
      params.push(...FINAL_STATUS_LIST);
    }
    if (filter.status !== undefined) {
      const list = typeof filter.status === 'string' ? [filter.status] : [...filter.status];
      if (list.length === 0) return [];
      where.push(`status IN (${list.map(() => '?').join(', ')})`);
      params.push(...list);
    }
    if (filter.job !== undefined) {
      where.push('job = ?');
      params.push(filter.job);
    }
    // rowid follows insertion, so batches created in the same millisecond keep their order.
    const dir = filter.unfinished ? 'ASC' : 'DESC';
    let sql = `SELECT ${BATCH_COLS} FROM batches WHERE ${where.join(' AND ')} ORDER BY created_at ${dir}, rowid ${dir}`;
    if (filter.limit !== undefined) {
      sql += ' LIMIT ?';
      params.push(Math.max(0, Math.trunc(filter.limit)));
    }
    const rows = this.run(() => {
      let stmt = this.listCache.get(sql);
      if (!stmt) {
        stmt = this.db!.prepare(sql);
        this.listCache.set(sql, stmt);
      }
      return stmt.all(...params) as BatchDbRow[];
    });
    return rows.map(toBatchRow);
  }

  async readPartitions(batchId: string, fromIndex: number, limit: number): Promise<PartitionRow[]> {
    const rows = this.run((s) =>
      s.visible.get(batchId) ? (s.readPage.all(batchId, fromIndex, fromIndex + limit) as PartDbRow[]) : [],
    );
    return rows.map((r) => ({
      index: r.idx,
      key: r.key,
      payload: parseCell(r.payload ?? null, batchId, r.idx),
      status: r.status,
    }));
  }

  async *partitions(batchId: string, filter: PartitionFilter = {}): AsyncIterable<PartitionView> {
    if (!this.run((s) => s.visible.get(batchId))) return;
    for (let after = -1; ; ) {
      const rows = this.run((s) =>
        filter.status
          ? (s.viewPageByStatus.all(batchId, after, filter.status, PAGE) as PartDbRow[])
          : (s.viewPage.all(batchId, after, PAGE) as PartDbRow[]),
      );
      for (const r of rows) yield toView(r, batchId);
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]!.idx;
    }
  }

  async appendOutcomes(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    fence: Fence,
  ): Promise<{ accepted: number }> {
    return { accepted: this.run((s) => s.append(batchId, outcomes, fence)) };
  }

  async *outcomesSince(batchId: string, afterSeq: number): AsyncIterable<OutcomeRecord> {
    if (!this.run((s) => s.visible.get(batchId))) return;
    for (let after = afterSeq; ; ) {
      const rows = this.run((s) => s.journalPage.all(batchId, after, PAGE) as PartDbRow[]);
      for (const r of rows) yield toOutcome(r, batchId);
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]!.seq!;
    }
  }

  async countOutcomes(batchId: string): Promise<{ succeeded: number; failed: number }> {
    const rows = this.run((s) => s.count.all(batchId) as { status: PartitionStatus; n: number }[]);
    const out = { succeeded: 0, failed: 0 };
    for (const r of rows) if (r.status === 'succeeded' || r.status === 'failed') out[r.status] = r.n;
    return out;
  }

  async saveState(batchId: string, state: BatchState, fence: Fence): Promise<boolean> {
    return this.run((s) => s.save(batchId, state, fence));
  }

  async acquireLease(
    batchId: string,
    owner: string,
    ttlMs: number,
    takeoverFrom?: string,
  ): Promise<Lease | undefined> {
    const now = Date.now();
    const args = { id: batchId, owner, now, expires: now + ttlMs, takeover: takeoverFrom ?? null };
    return this.run((s) => s.acquire.get(args) as Lease | undefined);
  }

  async renewLease(batchId: string, fence: Fence, ttlMs: number): Promise<boolean> {
    return this.run((s) => s.renew.run(Date.now() + ttlMs, batchId, fence.owner, fence.epoch).changes > 0);
  }

  async releaseLease(batchId: string, fence: Fence): Promise<void> {
    this.run((s) => s.release.run(batchId, fence.owner, fence.epoch));
  }

  async leaseOf(batchId: string): Promise<Lease | undefined> {
    return this.run((s) => s.leaseOf.get(batchId) as Lease | undefined);
  }

  /** Runs one synchronous unit against the open database; driver errors become StoreError. */
  private run<T>(fn: (s: Statements) => T): T {
    if (!this.s) throw new StoreError('sqlite store is not open: call open() first');
    try {
      return fn(this.s);
    } catch (err) {
      throw toStoreError('sqlite', err, 'statement failed');
    }
  }
}

type Statements = ReturnType<typeof prepare>;

/** Every statement the store runs more than once, prepared once per connection. */
function prepare(db: Database.Database) {
  const insertPartition = db.prepare(
    'INSERT INTO partitions (batch_id, idx, key, payload) VALUES (?, ?, ?, ?)',
  );
  const fenceOf = db.prepare(
    'SELECT lease_owner AS owner, lease_epoch AS epoch FROM batches WHERE id = ? AND creating = 0',
  );
  const setOutcome = db.prepare(
    `UPDATE partitions SET status = ?, result = ?, error = ?, attempts = ?, duration_ms = ?, seq = ?, finished_at = ?
     WHERE batch_id = ? AND idx = ? AND key = ? AND status = 'pending'`,
  );
  const setState = db.prepare(
    'UPDATE batches SET state = ?, status = ?, journal_seq = ? WHERE id = ? AND journal_seq <= ?',
  );
  const deletePartitions = db.prepare('DELETE FROM partitions WHERE batch_id = ?');
  const deleteBatch = db.prepare('DELETE FROM batches WHERE id = ? AND creating = 1');

  const requireFence = (batchId: string, fence: Fence) => {
    const held = fenceOf.get(batchId) as Fence | undefined;
    if (!held || held.owner !== fence.owner || held.epoch !== fence.epoch) throw new LeaseLostError(batchId);
  };

  const insertChunk = db.transaction((batchId: string, start: number, chunk: readonly PartitionInput[]) => {
    for (let i = 0; i < chunk.length; i++) {
      const p = chunk[i]!;
      if (typeof p?.key !== 'string') {
        throw new ValidationError(`Partition ${start + i} of batch "${batchId}" has no string key`, [
          { path: `partitions[${start + i}].key`, message: 'expected a string' },
        ]);
      }
      try {
        insertPartition.run(batchId, start + i, p.key, toJson(p.payload));
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE')
          throw duplicateKey(batchId, p.key);
        throw err;
      }
    }
  });
  const markVisible = db.prepare('UPDATE batches SET creating = 0, record = ? WHERE id = ?');

  return {
    insertBatch: db.prepare(
      `INSERT INTO batches (id, job, status, priority, created_at, record, creating) VALUES (?, ?, 'QUEUED', ?, ?, ?, 1)
       ON CONFLICT (id) DO NOTHING`,
    ),
    insertChunk,
    // The last chunk, the final record and the flip to visible commit together.
    finish: db.transaction(
      (batchId: string, start: number, chunk: readonly PartitionInput[], record: string) => {
        insertChunk(batchId, start, chunk);
        markVisible.run(record, batchId);
      },
    ),
    discard: db.transaction((batchId: string) => {
      if (deleteBatch.run(batchId).changes > 0) deletePartitions.run(batchId);
    }),
    visible: db.prepare('SELECT 1 FROM batches WHERE id = ? AND creating = 0'),
    loadBatch: db.prepare(`SELECT ${BATCH_COLS} FROM batches WHERE id = ? AND creating = 0`),
    readPage: db.prepare(
      'SELECT idx, key, payload, status FROM partitions WHERE batch_id = ? AND idx >= ? AND idx < ? ORDER BY idx',
    ),
    viewPage: db.prepare(
      `SELECT ${OUTCOME_COLS} FROM partitions WHERE batch_id = ? AND idx > ? ORDER BY idx LIMIT ?`,
    ),
    viewPageByStatus: db.prepare(
      `SELECT ${OUTCOME_COLS} FROM partitions WHERE batch_id = ? AND idx > ? AND status = ? ORDER BY idx LIMIT ?`,
    ),
    journalPage: db.prepare(
      `SELECT ${OUTCOME_COLS} FROM partitions WHERE batch_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
    ),
    count: db.prepare(
      "SELECT status, count(*) AS n FROM partitions WHERE batch_id = ? AND status != 'pending' GROUP BY status",
    ),
    // Group commit: one transaction for the whole group; `status = 'pending'` refuses a second outcome.
    append: db.transaction((batchId: string, outcomes: readonly OutcomeRecord[], fence: Fence) => {
      requireFence(batchId, fence);
      let accepted = 0;
      for (const o of outcomes) {
        const args = [
          o.status,
          toJson(o.result),
          toJson(o.error),
          o.attempts,
          o.durationMs,
          o.seq,
          o.finishedAt,
        ];
        accepted += setOutcome.run(...args, batchId, o.index, o.key).changes;
      }
      return accepted;
    }),
    save: db.transaction((batchId: string, state: BatchState, fence: Fence) => {
      requireFence(batchId, fence);
      return (
        setState.run(JSON.stringify(state), state.status, state.journalSeq, batchId, state.journalSeq)
          .changes > 0
      );
    }),
    // One statement decides and takes the lease, so two acquirers cannot both win.
    acquire: db.prepare(
      `UPDATE batches SET lease_owner = @owner, lease_epoch = lease_epoch + 1, lease_expires_at = @expires
       WHERE id = @id AND creating = 0
         AND (lease_owner IS NULL OR lease_owner = @owner OR lease_owner = @takeover OR lease_expires_at <= @now)
       RETURNING lease_owner AS owner, lease_epoch AS epoch, lease_expires_at AS expiresAt`,
    ),
    renew: db.prepare(
      'UPDATE batches SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND lease_epoch = ?',
    ),
    release: db.prepare(
      'UPDATE batches SET lease_expires_at = 0 WHERE id = ? AND lease_owner = ? AND lease_epoch = ?',
    ),
    leaseOf: db.prepare(
      `SELECT lease_owner AS owner, lease_epoch AS epoch, lease_expires_at AS expiresAt FROM batches
       WHERE id = ? AND creating = 0 AND lease_owner IS NOT NULL`,
    ),
  };
}

/** Applies the missing migrations, each in its own IMMEDIATE transaction (two processes serialize). */
function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS partita_migrations (id INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)');
  const latest = SQLITE_MIGRATIONS.length;
  const step = db.transaction((): boolean => {
    const done =
      (db.prepare('SELECT max(id) AS id FROM partita_migrations').get() as { id: number | null }).id ?? 0;
    if (done > latest) throw new SnapshotVersionError(done, latest, 'database schema');
    if (done === latest) return false;
    db.exec(SQLITE_MIGRATIONS[done]!);
    db.prepare('INSERT INTO partita_migrations (id, applied_at) VALUES (?, ?)').run(
      done + 1,
      new Date().toISOString(),
    );
    return true;
  });
  while (step.immediate()) {}
}

function duplicateKey(batchId: string, key: string): ValidationError {
  return new ValidationError(`Duplicate partition key "${key}" in batch "${batchId}"`, [
    { path: 'key', message: `duplicate: ${key}` },
  ]);
}

function noop(): void {}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
