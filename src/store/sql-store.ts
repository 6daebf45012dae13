import type { BatchStatus } from '../summary.js';
import { ConnectedStore } from './base.js';
import { checkLimit } from './inputs.js';
import { listingQuery, Params, type SqlDialect } from './sql-listing.js';
import {
  deleteBatchesStatements,
  neededParentsQuery,
  type PruneDialect,
  prunePageQuery,
} from './sql-prune.js';
import { SqlRanges } from './sql-ranges.js';
import type { Statement } from './sql-redrive.js';
import {
  BATCH_COLS,
  type BatchDbRow,
  OUTCOME_COLS,
  type PartDbRow,
  parseLoose,
  toBatchRow,
  toCounts,
  toOutcome,
  toPartitionRow,
  toView,
} from './sql-rows.js';
import type * as S from './store.js';
import { FINAL_STATUS_LIST, UNFINISHED_STATUS_LIST } from './store.js';

interface ScheduleDbRow {
  name: string;
  definition: string;
  created_at: number | string;
  last_fire_at: number | string | null;
  last_batch_id: string | null;
}

const SCHEDULE_COLS = 'name, definition, created_at, last_fire_at, last_batch_id';

/** Width of the iterators' windows (indexes or seqs); no cursor or statement is held across a `yield`. */
const PAGE = 1000;
/** Rows read per page of engine.prune's selection. */
const PRUNE_PAGE = 1000;

/**
 * The reads that SQLite and PostgreSQL answer with the same SQL, written once: each store says how
 * it names tables and parameters ({@link SqlDialect}) and how it runs a SELECT. A batch that is not
 * visible (SQLite: still being created) has no partitions and no journal for these reads.
 */
export abstract class SqlStore extends ConnectedStore {
  protected abstract readonly dialect: SqlDialect & PruneDialect;

  /** Runs one statement that returns rows (a SELECT, or a write with RETURNING); driver errors reach the caller as StoreError. */
  protected abstract select<R>(sql: string, params: readonly unknown[]): Promise<R[]>;
  /**
   * Runs one write that returns rows (an UPDATE with RETURNING). The SQLite store commits it with the
   * other writes of the same turn of the event loop; by default it is a `select`.
   */
  protected selectWrite<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    return this.select<R>(sql, params);
  }
  /** Runs one write and returns the number of rows it changed. */
  protected abstract execute(sql: string, params: readonly unknown[]): Promise<number>;
  /** Runs the statements in one transaction and returns the number of rows the last one changed. */
  protected abstract executeAll(statements: readonly Statement[]): Promise<number>;
  /** Ranges offered and answered are told to this store's own listeners (no notification does it). */
  protected readonly rangesEmitLocally: boolean = true;
  private rangeStore: SqlRanges | undefined;

  /** Ranges of partitions for `distribute` (src/store/sql-ranges.ts). */
  get ranges(): S.RangeStore {
    this.rangeStore ??= new SqlRanges({
      dialect: this.dialect,
      select: (sql, params) => this.select(sql, params),
      selectWrite: (sql, params) => this.selectWrite(sql, params),
      execute: (sql, params) => this.execute(sql, params),
      watchers: this.rangeWatchers,
      emitsLocally: this.rangesEmitLocally,
    });
    return this.rangeStore;
  }

  async loadBatch(id: string): Promise<S.BatchRow | undefined> {
    const d = this.dialect;
    const params = new Params(d);
    const where = [`id = ${params.add(id)}`, ...(d.visible ? [d.visible] : [])].join(' AND ');
    const [row] = await this.select<BatchDbRow>(
      `SELECT ${BATCH_COLS} FROM ${d.batches} WHERE ${where}`,
      params.values,
    );
    return row && toBatchRow(row);
  }

  async loadBatches(ids: readonly string[]): Promise<S.BatchRow[]> {
    if (ids.length === 0) return [];
    const d = this.dialect;
    const params = new Params(d);
    // One parameter (a JSON array) however many ids: no statement-size limit to page around.
    const where = [`id IN (${d.idList(params, ids)})`, ...(d.visible ? [d.visible] : [])].join(' AND ');
    const rows = await this.select<BatchDbRow>(
      `SELECT ${BATCH_COLS} FROM ${d.batches} WHERE ${where}`,
      params.values,
    );
    return rows.map(toBatchRow);
  }

  async listBatches(filter: S.BatchFilter = {}): Promise<S.BatchRow[]> {
    const listing = listingQuery(filter, this.dialect);
    if (!listing) return [];
    return (await this.select<BatchDbRow>(listing.sql, listing.params)).map(toBatchRow);
  }

  async listUnowned(limit: number): Promise<S.BatchRow[]> {
    const d = this.dialect;
    const params = new Params(d);
    const sql = `WITH now AS (SELECT ${d.now(params)} AS ms)
      SELECT ${BATCH_COLS} FROM ${d.batches}, now
      WHERE status IN (${params.list(UNFINISHED_STATUS_LIST)}) ${d.visible ? `AND ${d.visible}` : ''}
        AND (lease_owner IS NULL OR lease_expires_at <= now.ms)
      ORDER BY priority DESC, created_at, ${d.insertionOrder} LIMIT ${params.add(checkLimit(limit) ?? 0)}`;
    return (await this.select<BatchDbRow>(sql, params.values)).map(toBatchRow);
  }

  async nextLeaseExpiry(owner: string): Promise<number | undefined> {
    const d = this.dialect;
    const params = new Params(d);
    const sql = `WITH now AS (SELECT ${d.now(params)} AS ms)
      SELECT min(lease_expires_at) - min(now.ms) AS wait FROM ${d.batches}, now
      WHERE status IN (${params.list(UNFINISHED_STATUS_LIST)}) ${d.visible ? `AND ${d.visible}` : ''}
        AND lease_owner IS NOT NULL AND lease_owner <> ${params.add(owner)} AND lease_expires_at > now.ms`;
    const [row] = await this.select<{ wait: number | string | null }>(sql, params.values);
    return row?.wait === null || row?.wait === undefined ? undefined : Number(row.wait);
  }

  async requestControl(batchId: string, control: S.BatchControl): Promise<boolean> {
    const { batches, visible } = this.dialect;
    const params = new Params(this.dialect);
    const replaces =
      control.type === 'cancel' ? '' : `AND (control IS NULL OR control NOT LIKE '{"type":"cancel"%')`;
    const sql = `UPDATE ${batches} SET control = ${params.add(JSON.stringify(control))}
      WHERE id = ${params.add(batchId)} AND status NOT IN (${params.list(FINAL_STATUS_LIST)})
      ${visible ? `AND ${visible}` : ''} ${replaces}`;
    return (await this.execute(sql, params.values)) === 1;
  }

  async pendingControls(owner: string): Promise<Array<{ batchId: string; control: S.BatchControl }>> {
    const params = new Params(this.dialect);
    const rows = await this.select<{ id: string; control: string }>(
      `SELECT id, control FROM ${this.dialect.batches}
       WHERE lease_owner = ${params.add(owner)} AND control IS NOT NULL`,
      params.values,
    );
    return rows.flatMap((r) => {
      const control = parseLoose(r.control) as S.BatchControl | undefined;
      return control && typeof control === 'object' ? [{ batchId: r.id, control }] : [];
    });
  }

  async controlOf(batchId: string): Promise<S.BatchControl | undefined> {
    const params = new Params(this.dialect);
    const [row] = await this.select<{ control: string | null }>(
      `SELECT control FROM ${this.dialect.batches} WHERE id = ${params.add(batchId)}`,
      params.values,
    );
    return row?.control ? (parseLoose(row.control) as S.BatchControl) : undefined;
  }

  async clearControl(batchId: string, control: S.BatchControl): Promise<void> {
    const params = new Params(this.dialect);
    await this.execute(
      `UPDATE ${this.dialect.batches} SET control = NULL
       WHERE id = ${params.add(batchId)} AND control = ${params.add(JSON.stringify(control))}`,
      params.values,
    );
  }

  async readPartitions(batchId: string, fromIndex: number, limit: number): Promise<S.PartitionRow[]> {
    const params = new Params(this.dialect);
    const sql = `SELECT idx, key, CASE WHEN status = 'pending' THEN payload END AS payload, status FROM ${this.dialect.partitions}
      WHERE batch_id = ${params.add(batchId)} AND idx >= ${params.add(fromIndex)} AND idx < ${params.add(fromIndex + limit)}
      ${this.ifVisible(params, batchId)} ORDER BY idx`;
    const rows = await this.select<PartDbRow>(sql, params.values);
    return rows.map((r) => toPartitionRow(r, batchId));
  }

  async *partitions(batchId: string, filter: S.PartitionFilter = {}): AsyncIterable<S.PartitionView> {
    const last = await this.maxOf('idx', batchId);
    for (let from = 0; last !== null && from <= last; from += PAGE) {
      const params = new Params(this.dialect);
      let sql = `SELECT ${OUTCOME_COLS} FROM ${this.dialect.partitions}
        WHERE batch_id = ${params.add(batchId)} AND idx >= ${params.add(from)} AND idx < ${params.add(from + PAGE)}`;
      if (filter.status) sql += ` AND status = ${params.add(filter.status)}`;
      const rows = await this.select<PartDbRow>(`${sql} ORDER BY idx`, params.values);
      for (const r of rows) yield toView(r, batchId);
    }
  }

  async *outcomesSince(batchId: string, afterSeq: number): AsyncIterable<S.OutcomeRecord> {
    const last = await this.maxOf('seq', batchId);
    for (let after = afterSeq; last !== null && after < last; after += PAGE) {
      const params = new Params(this.dialect);
      const sql = `SELECT ${OUTCOME_COLS} FROM ${this.dialect.partitions}
        WHERE batch_id = ${params.add(batchId)} AND seq > ${params.add(after)} AND seq <= ${params.add(after + PAGE)} ORDER BY seq`;
      const rows = await this.select<PartDbRow>(sql, params.values);
      for (const r of rows) yield toOutcome(r, batchId);
    }
  }

  async countOutcomes(batchId: string): Promise<{ succeeded: number; failed: number }> {
    const params = new Params(this.dialect);
    const rows = await this.select<{ status: S.PartitionStatus; n: number }>(
      `SELECT status, CAST(count(*) AS integer) AS n FROM ${this.dialect.partitions}
       WHERE batch_id = ${params.add(batchId)} AND status <> 'pending' GROUP BY status`,
      params.values,
    );
    return toCounts(rows);
  }

  /**
   * One conditional UPDATE decides and takes the lease: of two racing acquirers, the second re-checks
   * the row the first committed and gets nothing. `now` is read once for the whole statement.
   */
  async acquireLease(batchId: string, owner: string, ttlMs: number, takeoverFrom?: string) {
    const { sql, params } = this.leaseSql(batchId, owner, ttlMs, takeoverFrom, undefined);
    const [row] = await this.selectWrite<LeaseDbRow>(sql, params);
    return row && toAcquired(row, owner);
  }

  async acquireLeaseWithin(
    batchId: string,
    owner: string,
    ttlMs: number,
    cap: number,
    competing: readonly string[] = [],
  ) {
    const { sql, params } = this.leaseSql(batchId, owner, ttlMs, undefined, { cap, competing });
    const [row] = await this.serialized<LeaseDbRow>(sql, params);
    if (row) return toAcquired(row, owner);
    // Refused: held by a live engine (undefined), or free and refused for the cap ('full').
    const p = new Params(this.dialect);
    const free = await this.select<{ id: string }>(
      `SELECT id FROM ${this.dialect.batches} WHERE id = ${p.add(batchId)} AND status = 'QUEUED'
         AND (lease_owner IS NULL OR lease_owner = ${p.add(owner)} OR lease_expires_at <= ${this.dialect.now(p)})`,
      p.values,
    );
    return free.length > 0 ? ('full' as const) : undefined;
  }

  /**
   * The cluster-wide cap's condition on the batch being taken (`batches`): fewer than `cap` other
   * unfinished batches hold a live lease, and no ready QUEUED batch nobody holds comes first.
   * "Ready" is approximated by "no `after` dependencies" (a record written with `"after":[]`): a
   * batch waiting for parents must not hold back the others, and the store does not know whether
   * its parents ended. Only the `competing` jobs (those the engine runs) count, so a batch of a
   * job no live engine runs cannot hold back the cluster.
   */
  private capSql(
    params: Params,
    batchId: string,
    { cap, competing }: { cap: number; competing: readonly string[] },
  ): string {
    const { batches, visible, insertionOrder: ord } = this.dialect;
    const count = `(SELECT count(*) FROM ${batches} AS o
             WHERE o.status IN (${params.list(UNFINISHED_STATUS_LIST)}) AND o.lease_owner IS NOT NULL
               AND o.lease_expires_at > now.ms AND o.id <> ${params.add(batchId)}) < ${params.add(cap)}`;
    if (competing.length === 0) return count;
    // The row being updated, by its table's name (PostgreSQL: the name without its schema).
    const me = 'batches';
    return `${count} AND NOT EXISTS (SELECT 1 FROM ${batches} AS q
             WHERE q.status = 'QUEUED' AND q.id <> ${me}.id ${visible ? `AND q.${visible}` : ''}
               AND (q.lease_owner IS NULL OR q.lease_expires_at <= now.ms)
               AND q.job IN (${params.list(competing)}) AND q.record LIKE '%"after":[]%'
               AND (q.priority > ${me}.priority OR (q.priority = ${me}.priority
                 AND (q.created_at < ${me}.created_at
                   OR (q.created_at = ${me}.created_at AND q.${ord} < ${me}.${ord})))))`;
  }

  /**
   * Runs a statement that must see every write committed before it, with no other such statement
   * running meanwhile (the cluster-wide cap's count and take). SQLite has one writer at a time
   * already; PostgreSQL takes an advisory lock in a transaction of its own.
   */
  protected serialized<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    return this.selectWrite<R>(sql, params);
  }

  private leaseSql(
    batchId: string,
    owner: string,
    ttlMs: number,
    takeoverFrom: string | undefined,
    capped: { cap: number; competing: readonly string[] } | undefined,
  ): { sql: string; params: unknown[] } {
    const { batches, visible } = this.dialect;
    const params = new Params(this.dialect);
    const now = this.dialect.now(params);
    const set = `lease_owner = ${params.add(owner)}, lease_epoch = lease_epoch + 1,
         lease_expires_at = now.ms + ${params.add(Math.round(ttlMs))}`;
    const id = params.add(batchId);
    const free = `(lease_owner IS NULL OR lease_owner = ${params.add(owner)} OR lease_owner = ${params.add(takeoverFrom ?? null)}
              OR lease_expires_at <= now.ms)`;
    const cap =
      capped === undefined ? '' : `AND (status <> 'QUEUED' OR (${this.capSql(params, batchId, capped)}))`;
    return {
      sql: `WITH now AS (SELECT ${now} AS ms)
       UPDATE ${batches} SET ${set}
       FROM now
       WHERE id = ${id} ${visible ? `AND ${visible}` : ''} AND ${free} ${cap}
       RETURNING lease_epoch AS epoch, lease_expires_at AS expires, status, journal_seq AS seq, control`,
      params: params.values,
    };
  }

  async renewLease(batchId: string, fence: S.Fence, ttlMs: number): Promise<boolean> {
    const params = new Params(this.dialect);
    const expires = `${this.dialect.now(params)} + ${params.add(Math.round(ttlMs))}`;
    const changed = await this.execute(
      `UPDATE ${this.dialect.batches} SET lease_expires_at = ${expires} ${this.fenced(params, batchId, fence)}`,
      params.values,
    );
    return changed === 1;
  }

  async releaseLease(batchId: string, fence: S.Fence): Promise<void> {
    const params = new Params(this.dialect);
    await this.execute(
      `UPDATE ${this.dialect.batches} SET lease_expires_at = 0 ${this.fenced(params, batchId, fence)}`,
      params.values,
    );
  }

  async leaseOf(batchId: string): Promise<S.Lease | undefined> {
    const { batches, visible } = this.dialect;
    const params = new Params(this.dialect);
    const [row] = await this.select<{ owner: string; epoch: number | string; expires: number | string }>(
      `SELECT lease_owner AS owner, lease_epoch AS epoch, lease_expires_at AS expires FROM ${batches}
       WHERE id = ${params.add(batchId)} ${visible ? `AND ${visible}` : ''} AND lease_owner IS NOT NULL`,
      params.values,
    );
    // PostgreSQL returns bigint columns as strings.
    return row && { owner: row.owner, epoch: Number(row.epoch), expiresAt: Number(row.expires) };
  }

  async leaseHistory(batchId: string): Promise<S.LeaseTaken[]> {
    const params = new Params(this.dialect);
    const rows = await this.select<{ owner: string; epoch: number | string; taken_at: number | string }>(
      `SELECT owner, epoch, taken_at FROM ${this.dialect.leaseHistory}
       WHERE batch_id = ${params.add(batchId)} ORDER BY epoch`,
      params.values,
    );
    return rows.map((r) => ({ owner: r.owner, epoch: Number(r.epoch), takenAt: Number(r.taken_at) }));
  }

  async listSchedules(): Promise<S.ScheduleRow[]> {
    const rows = await this.select<ScheduleDbRow>(
      `SELECT ${SCHEDULE_COLS} FROM ${this.dialect.schedules} ORDER BY name`,
      [],
    );
    return rows.map(toScheduleRow);
  }

  async loadSchedule(name: string): Promise<S.ScheduleRow | undefined> {
    const params = new Params(this.dialect);
    const [row] = await this.select<ScheduleDbRow>(
      `SELECT ${SCHEDULE_COLS} FROM ${this.dialect.schedules} WHERE name = ${params.add(name)}`,
      params.values,
    );
    return row && toScheduleRow(row);
  }

  async saveSchedule(name: string, definition: unknown, createdAt: number): Promise<void> {
    const params = new Params(this.dialect);
    await this.execute(
      `INSERT INTO ${this.dialect.schedules} (name, definition, created_at)
       VALUES (${params.add(name)}, ${params.add(JSON.stringify(definition))}, ${params.add(Math.round(createdAt))})
       ON CONFLICT (name) DO UPDATE SET definition = excluded.definition`,
      params.values,
    );
  }

  async deleteSchedule(name: string): Promise<boolean> {
    const params = new Params(this.dialect);
    return (
      (await this.execute(
        `DELETE FROM ${this.dialect.schedules} WHERE name = ${params.add(name)}`,
        params.values,
      )) > 0
    );
  }

  async prunable(filter: S.PruneFilter, limit: number): Promise<string[]> {
    const d = this.dialect;
    const needed = neededParentsQuery(d);
    const keep = new Set(
      (await this.select<{ value: string }>(needed.sql, needed.params)).map((r) => r.value),
    );
    const ids: string[] = [];
    let from: { createdAt: string; id: string } | undefined;
    while (ids.length < limit) {
      const page = prunePageQuery(d, filter, from, PRUNE_PAGE);
      const rows = await this.select<{ id: string; created_at: string }>(page.sql, page.params);
      for (const row of rows) if (!keep.has(row.id) && ids.length < limit) ids.push(row.id);
      const last = rows[rows.length - 1];
      if (!last || rows.length < PRUNE_PAGE) break;
      from = { createdAt: String(last.created_at), id: last.id };
    }
    return ids;
  }

  async deleteBatches(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.executeAll(deleteBatchesStatements(this.dialect, ids));
  }

  /** One conditional UPDATE: of two engines recording fires, the later fire time wins whatever the order. */
  async recordFire(name: string, fireAt: number, batchId: string | undefined): Promise<boolean> {
    const params = new Params(this.dialect);
    // A placeholder per use: SQLite's `?` are positional.
    const at = () => params.add(Math.round(fireAt));
    const sql = `UPDATE ${this.dialect.schedules}
      SET last_fire_at = ${at()}, last_batch_id = COALESCE(${params.add(batchId ?? null)}, last_batch_id)
      WHERE name = ${params.add(name)} AND (last_fire_at IS NULL OR last_fire_at < ${at()}
        OR (last_fire_at = ${at()} AND ${params.add(batchId === undefined ? 0 : 1)} = 1))`;
    return (await this.execute(sql, params.values)) > 0;
  }

  /** The WHERE clause of a write that only the holder of `fence` may make. */
  private fenced(params: Params, batchId: string, fence: S.Fence): string {
    return `WHERE id = ${params.add(batchId)} AND lease_owner = ${params.add(fence.owner)} AND lease_epoch = ${params.add(fence.epoch)}`;
  }

  /**
   * The iterators page through bounded windows up to this maximum, never `> $after ORDER BY ... LIMIT n`:
   * right after a bulk load PostgreSQL has no statistics for the new rows, and the open-ended form
   * then sorts the whole rest of the batch for every page (1,000,000 partitions: 158 s instead of
   * seconds). max() is a backward index-only scan whatever the statistics say. Null when the batch
   * has no rows, or is not visible.
   */
  private async maxOf(column: 'idx' | 'seq', batchId: string): Promise<number | null> {
    const params = new Params(this.dialect);
    const [row] = await this.select<{ m: number | null }>(
      // IS NOT NULL: what lets the planner read max(seq) from the journal's partial index (migrations).
      `SELECT CAST(max(${column}) AS integer) AS m FROM ${this.dialect.partitions}
       WHERE batch_id = ${params.add(batchId)} AND ${column} IS NOT NULL ${this.ifVisible(params, batchId)}`,
      params.values,
    );
    return row?.m ?? null;
  }

  /** A condition that holds only while the batch is visible; it names no column, so it is evaluated once. */
  private ifVisible(params: Params, batchId: string): string {
    const { batches, visible } = this.dialect;
    return visible
      ? `AND EXISTS (SELECT 1 FROM ${batches} WHERE id = ${params.add(batchId)} AND ${visible})`
      : '';
  }
}

interface LeaseDbRow {
  epoch: number | string;
  expires: number | string;
  status: BatchStatus;
  seq: number | string;
  control: string | null;
}

function toAcquired(row: LeaseDbRow, owner: string): S.AcquiredLease {
  // PostgreSQL returns bigint columns as strings.
  return {
    owner,
    epoch: Number(row.epoch),
    expiresAt: Number(row.expires),
    status: row.status,
    journalSeq: Number(row.seq),
    control: row.control ? (parseLoose(row.control) as S.BatchControl) : undefined,
  };
}

function toScheduleRow(r: ScheduleDbRow): S.ScheduleRow {
  // PostgreSQL returns bigint columns as strings.
  return {
    name: r.name,
    definition: parseLoose(r.definition),
    createdAt: Number(r.created_at),
    lastFireAt: r.last_fire_at === null ? undefined : Number(r.last_fire_at),
    lastBatchId: r.last_batch_id ?? undefined,
  };
}
