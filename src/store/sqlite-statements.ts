import { LeaseLostError, StoreError } from '../errors.js';
import { type CapturedPartition, duplicateKey } from './inputs.js';
import type { Statement } from './sql-redrive.js';
import { outcomeValues } from './sql-rows.js';
import type { BatchState, Fence, OutcomeRecord } from './store.js';

/**
 * Every write of the SQLite store, as data (src/store/sqlite.ts): the store asks for a write by
 * naming it, and whoever holds the writing connection applies it (`applyWrite`) inside a group
 * transaction (src/store/sqlite-group.ts): the writer thread (src/store/sqlite-writer.ts), or the
 * engine's own thread when no writer thread runs.
 */
export type SqliteWrite =
  /** A whole batch that fits in one chunk: row, partitions and visibility together. */
  | { k: 'whole'; row: BatchRow; chunk: readonly CapturedPartition[]; final: string }
  /** A large batch's invisible row, then its chunks, then the last chunk with the flip to visible. */
  | { k: 'insertBatch'; row: BatchRow; record: string }
  | { k: 'insertChunk'; batchId: string; start: number; chunk: readonly CapturedPartition[] }
  | { k: 'finish'; batchId: string; start: number; chunk: readonly CapturedPartition[]; record: string }
  | { k: 'discard'; batchId: string }
  | { k: 'append'; batchId: string; outcomes: readonly OutcomeRow[]; fence: Fence }
  | { k: 'save'; batchId: string; state: StateRow; fence: Fence }
  | { k: 'commit'; batchId: string; outcomes: readonly OutcomeRow[]; state: StateRow; fence: Fence }
  /** A write that returns rows (an UPDATE … RETURNING). */
  | { k: 'rows'; sql: string; params: readonly unknown[] }
  /** A write; answers the number of rows it changed. */
  | { k: 'changes'; sql: string; params: readonly unknown[] }
  /** Statements of which the first must change exactly one row, or none of them is kept (redrive). */
  | { k: 'allOrNothing'; statements: readonly Statement[] }
  /** Statements run in order (in the group's transaction): the rows the last one changed. */
  | { k: 'all'; statements: readonly Statement[] };

/**
 * An outcome as its partition row's values, made where the outcome was (the results are turned into
 * JSON there, so a write carries only text and numbers to the writer thread): status, result,
 * error, attempts, duration_ms, seq, finished_at, then the partition's idx and key.
 */
export type OutcomeRow = readonly unknown[];
/** An outcome's row (sql-rows.ts): one array per outcome, made once. */
export const outcomeRow: (o: OutcomeRecord) => OutcomeRow = outcomeValues;

/** A batch state as its row stores it. */
export interface StateRow {
  json: string;
  status: string;
  journalSeq: number;
}

export function stateRow(state: BatchState): StateRow {
  return { json: JSON.stringify(state), status: state.status, journalSeq: state.journalSeq };
}

export interface BatchRow {
  id: string;
  job: string;
  priority: number;
  createdAt: string;
}

/**
 * What these statements use of a better-sqlite3 connection and its statements, named here so that
 * partita's published declarations name no type of the driver (test/store/lean-imports.test.ts).
 */
export interface SqliteDb {
  prepare(sql: string): SqliteStatement;
  // biome-ignore lint/suspicious/noExplicitAny: better-sqlite3's own signature
  transaction<F extends (...args: any[]) => unknown>(fn: F): Transaction<F>;
}
export interface SqliteStatement {
  run(...params: unknown[]): { changes: number };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
/** A function that runs in a transaction; `immediate` takes the write lock at once. */
// biome-ignore lint/suspicious/noExplicitAny: better-sqlite3's own signature
export interface Transaction<F extends (...args: any[]) => unknown> {
  (...params: Parameters<F>): ReturnType<F>;
  immediate(...params: Parameters<F>): ReturnType<F>;
}

/** Every statement the store writes with, on one connection. */
export interface Statements {
  /** A statement by its SQL text, prepared once. */
  statement(sql: string): SqliteStatement;
  /** The group commit's transaction (src/store/sqlite-group.ts): runs the writes it is given. */
  group: Transaction<(writes: () => unknown) => unknown>;
  whole(row: BatchRow, chunk: readonly CapturedPartition[], final: string): boolean;
  insertBatch(row: BatchRow, record: string): boolean;
  insertChunk(batchId: string, start: number, chunk: readonly CapturedPartition[]): void;
  finish(batchId: string, start: number, chunk: readonly CapturedPartition[], record: string): void;
  discard(batchId: string): void;
  /** Removes the creations whose creator is provably gone (src/store/creators.ts); run by open(). */
  sweep: Transaction<() => void>;
  append(batchId: string, outcomes: readonly OutcomeRow[], fence: Fence): number;
  save(batchId: string, state: StateRow, fence: Fence): { saved: boolean; changed: boolean };
  commit(
    batchId: string,
    outcomes: readonly OutcomeRow[],
    state: StateRow,
    fence: Fence,
  ): { accepted: number; saved: boolean; changed: boolean };
}

/**
 * Every statement the store writes with, prepared once per connection. `creator`: this open()'s
 * creator id (src/store/creators.ts); `isGone`: whether a creator is provably gone, as the
 * connection's thread can tell.
 */
export function prepare(
  db: SqliteDb,
  creator: string,
  isGone: (creator: string | null) => boolean,
): Statements {
  const creation = creationStatements(db, creator, isGone);
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
  /** Other statements by SQL text (listings' and leases' shapes are few). */
  const bySql = new Map<string, SqliteStatement>();
  const statement = (sql: string): SqliteStatement => {
    let stmt = bySql.get(sql);
    if (!stmt) {
      stmt = db.prepare(sql);
      bySql.set(sql, stmt);
    }
    return stmt;
  };

  /** The stored status when `fence` holds the lease; LEASE_LOST otherwise. */
  const requireFence = (batchId: string, fence: Fence): string => {
    const held = fenceOf.get(batchId) as (Fence & { status: string }) | undefined;
    if (!held || held.owner !== fence.owner || held.epoch !== fence.epoch) throw new LeaseLostError(batchId);
    return held.status;
  };
  /** Write the outcomes; the fence was checked in this same transaction. */
  const setOutcomes = (batchId: string, outcomes: readonly OutcomeRow[]): number => {
    let accepted = 0;
    for (const o of outcomes)
      accepted += setOutcome.run(o[0], o[1], o[2], o[3], o[4], o[5], o[6], batchId, o[7], o[8]).changes;
    return accepted;
  };
  /** Write the state over `before` (the stored status); the fence was checked in this same transaction. */
  const setStateOver = (batchId: string, state: StateRow, before: string) => {
    const saved =
      setState.run(state.json, state.status, state.journalSeq, batchId, state.journalSeq).changes > 0;
    return { saved, changed: saved && before !== state.status };
  };

  return {
    ...creation,
    statement,
    /** The group commit's transaction (src/store/sqlite-group.ts): runs the writes it is given. */
    group: db.transaction((writes: () => unknown): unknown => writes()),
    // `status = 'pending'` refuses a second outcome. Each checks its fence before it writes
    // anything: a refusal leaves nothing to undo.
    append: (batchId: string, outcomes: readonly OutcomeRow[], fence: Fence): number => {
      requireFence(batchId, fence);
      return setOutcomes(batchId, outcomes);
    },
    save: (batchId: string, state: StateRow, fence: Fence) =>
      setStateOver(batchId, state, requireFence(batchId, fence)),
    // The journal's group and the state that covers it (Store.commit).
    commit: (batchId: string, outcomes: readonly OutcomeRow[], state: StateRow, fence: Fence) => {
      const before = requireFence(batchId, fence);
      const accepted = setOutcomes(batchId, outcomes);
      return { accepted, ...setStateOver(batchId, state, before) };
    },
  };
}

/**
 * Apply one write. Always inside a transaction (the group's): a write that throws is rolled back
 * with it (src/store/sqlite-group.ts), so none is ever half kept.
 */
export function applyWrite(s: Statements, w: SqliteWrite): unknown {
  switch (w.k) {
    case 'whole':
      return s.whole(w.row, w.chunk, w.final);
    case 'insertBatch':
      return s.insertBatch(w.row, w.record);
    case 'insertChunk':
      return s.insertChunk(w.batchId, w.start, w.chunk);
    case 'finish':
      return s.finish(w.batchId, w.start, w.chunk, w.record);
    case 'discard':
      return s.discard(w.batchId);
    case 'append':
      return s.append(w.batchId, w.outcomes, w.fence);
    case 'save':
      return s.save(w.batchId, w.state, w.fence);
    case 'commit':
      return s.commit(w.batchId, w.outcomes, w.state, w.fence);
    case 'rows':
      return s.statement(w.sql).all(...w.params);
    case 'changes':
      return s.statement(w.sql).run(...w.params).changes;
    case 'all': {
      let changes = 0;
      for (const st of w.statements) changes = s.statement(st.sql).run(...st.params).changes;
      return changes;
    }
    case 'allOrNothing': {
      const [first, ...rest] = w.statements;
      if (!first || s.statement(first.sql).run(...first.params).changes !== 1) return false;
      for (const st of rest) s.statement(st.sql).run(...st.params);
      return true;
    }
  }
}

const isDuplicate = (err: unknown) => (err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE';

/** Partition rows per INSERT statement of createBatch (4 parameters each; SQLite allows 32,766). */
const ROWS_PER_INSERT = 100;

/**
 * createBatch's statements. Partition rows are written only inside a transaction that has just seen
 * the batch row being created by `creator`, and are deleted in the transaction that deletes that
 * row, so no partition ever outlives its batch (no orphan rows), even when another store removes a
 * creation it judged abandoned.
 */
function creationStatements(db: SqliteDb, creator: string, isGone: (creator: string | null) => boolean) {
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
  const insertRows = db.prepare(
    `INSERT INTO partitions (batch_id, idx, key, payload) VALUES ${Array(ROWS_PER_INSERT).fill('(?, ?, ?, ?)').join(', ')}`,
  );
  const rowsArgs: unknown[] = new Array(ROWS_PER_INSERT * 4);
  const insertOne = (batchId: string, idx: number, p: CapturedPartition) => {
    try {
      insertPartition.run(batchId, idx, p.key, p.json ?? null);
    } catch (err) {
      if (isDuplicate(err)) throw duplicateKey(batchId, p.key);
      throw err;
    }
  };
  /**
   * A chunk's rows, ROWS_PER_INSERT to a statement: half the time of one statement a row
   * (docs/benchmarks.md, "Submit without a promise per partition"). A statement refused for a duplicate
   * key is undone alone (SQLite's ABORT), and its rows go again one by one to name the key.
   */
  const insertPartitions = (batchId: string, start: number, chunk: readonly CapturedPartition[]) => {
    let i = 0;
    for (; i + ROWS_PER_INSERT <= chunk.length; i += ROWS_PER_INSERT) {
      for (let j = 0; j < ROWS_PER_INSERT; j++) {
        const p = chunk[i + j]!;
        rowsArgs[j * 4] = batchId;
        rowsArgs[j * 4 + 1] = start + i + j;
        rowsArgs[j * 4 + 2] = p.key;
        rowsArgs[j * 4 + 3] = p.json ?? null;
      }
      try {
        insertRows.run(rowsArgs);
      } catch (err) {
        if (!isDuplicate(err)) throw err;
        for (let j = 0; j < ROWS_PER_INSERT; j++) insertOne(batchId, start + i + j, chunk[i + j]!);
      }
    }
    for (; i < chunk.length; i++) insertOne(batchId, start + i, chunk[i]!);
  };
  const insertChunk = (batchId: string, start: number, chunk: readonly CapturedPartition[]) => {
    requireOurs(batchId);
    insertPartitions(batchId, start, chunk);
  };
  /**
   * Inserts the row (`insert`); when the id is held by a creation whose creator is gone, takes it
   * over, as open() would have removed it. Also one of this store's own: the store runs one creation
   * of an id at a time (SqliteStore.create), so a creation of ours found here is one that failed and
   * whose undo failed too (a disk full: found by an outside probe, the id then held for good until a
   * restart, and the same id submitted again waited 30 s for it before NOT_FOUND). False when the id
   * is taken.
   */
  const insertOrReclaim = (id: string, insert: () => boolean): boolean => {
    if (insert()) return true;
    const held = creatorOf.get(id) as { creator: string | null } | undefined;
    if (!held || !(held.creator === creator || isGone(held.creator))) return false;
    remove(id, held.creator);
    return insert();
  };

  return {
    /**
     * A whole batch that fits in one chunk, in one transaction: row, partitions and visibility
     * (most batches; three transactions instead of one made up much of a small batch's cost). The
     * row is visible at once, with its final record, since nobody can see it before its
     * partitions are in.
     */
    whole: (row: BatchRow, chunk: readonly CapturedPartition[], final: string): boolean => {
      const inserted = insertOrReclaim(
        row.id,
        () => insertVisible.run(row.id, row.job, row.priority, row.createdAt, final, creator).changes > 0,
      );
      if (inserted) insertPartitions(row.id, 0, chunk);
      return inserted;
    },
    /** Inserts the invisible batch row; false when the id is taken (by a batch, or a live creation). */
    insertBatch: (row: BatchRow, record: string): boolean =>
      insertOrReclaim(
        row.id,
        () => insertRow.run(row.id, row.job, row.priority, row.createdAt, record, creator).changes > 0,
      ),
    insertChunk,
    // The last chunk, the final record and the flip to visible commit together.
    finish: (batchId: string, start: number, chunk: readonly CapturedPartition[], record: string) => {
      insertChunk(batchId, start, chunk);
      markVisible.run(record, batchId, creator);
    },
    discard: (batchId: string) => remove(batchId, creator),
    /** Removes the creations whose creator is provably gone (src/store/creators.ts); run by open(). */
    sweep: db.transaction(() => {
      for (const row of creations.all() as { id: string; creator: string | null }[]) {
        if (isGone(row.creator)) remove(row.id, row.creator);
      }
    }),
  };
}
