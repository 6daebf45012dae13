import { Params, type SqlDialect } from './sql-listing.js';
import type { Statement } from './sql-redrive.js';
import { FINAL_STATUS_LIST, type PruneFilter, UNFINISHED_STATUS_LIST } from './store.js';

/** How each SQL store reads JSON for engine.prune: what the shared SQL below cannot say alike. */
export interface PruneDialect {
  /** The time a batch row (alias `b`) ended, as ISO text, from its stored state; NULL when it has none. */
  endedAt: string;
  /** A FROM item listing the parents named by batch row `d`'s record (`after`), as column `value`. */
  parentsOf: string;
  /** A subquery listing the ids given as one JSON array parameter, as column `value`. */
  idList: (params: Params, ids: readonly string[]) => string;
}

/**
 * The ids of the unfinished batches' parents: kept by engine.prune, whatever their age (a batch
 * waiting for its parent learns how it ended from its row). One read per prune, not per page.
 */
export function neededParentsQuery(d: SqlDialect & PruneDialect): { sql: string; params: unknown[] } {
  const params = new Params(d);
  const sql = `SELECT DISTINCT value FROM ${d.batches} AS d, ${d.parentsOf}
    WHERE d.status IN (${params.list(UNFINISHED_STATUS_LIST)})`;
  return { sql, params: params.values };
}

/**
 * One page of ended batches that `filter` selects, oldest first (creation time, then id), after
 * `from` (the last row of the page before). A batch created at or after `endedBefore` cannot have
 * ended before it: the creation time narrows the rows through its index before any state is read.
 */
export function prunePageQuery(
  d: SqlDialect & PruneDialect,
  filter: PruneFilter,
  from: { createdAt: string; id: string } | undefined,
  limit: number,
): { sql: string; params: unknown[] } {
  // A placeholder per use, added in the order they appear: SQLite's `?` are positional.
  const params = new Params(d);
  const final = filter.status.filter((s) => FINAL_STATUS_LIST.includes(s));
  const where = [`b.status IN (${params.list(final.length > 0 ? final : ['none'])})`];
  where.push(`b.created_at < ${params.add(filter.endedBefore)}`);
  where.push(`coalesce(${d.endedAt}, b.created_at) < ${params.add(filter.endedBefore)}`);
  if (d.visible) where.push(`b.${d.visible}`);
  if (filter.job !== undefined) where.push(`b.job = ${params.add(filter.job)}`);
  if (from) {
    const after = `b.created_at > ${params.add(from.createdAt)}`;
    where.push(
      `(${after} OR (b.created_at = ${params.add(from.createdAt)} AND b.id > ${params.add(from.id)}))`,
    );
  }
  const sql = `SELECT b.id AS id, b.created_at AS created_at FROM ${d.batches} AS b
    WHERE ${where.join(' AND ')} ORDER BY b.created_at, b.id LIMIT ${params.add(limit)}`;
  return { sql, params: params.values };
}

/**
 * Store.deleteBatches as statements to run in one transaction, in this order: what belongs to each
 * batch first (its ranges' staged answers, its ranges, its lease history, its partitions), then the
 * batch rows. Each statement deletes only for batches still in a final status at that moment, which
 * within the transaction is the same set for every statement: a batch that a redrive put back to
 * QUEUED meanwhile keeps everything. The last statement's count is the number of batches deleted.
 */
export function deleteBatchesStatements(d: SqlDialect & PruneDialect, ids: readonly string[]): Statement[] {
  const ended = (params: Params) =>
    `SELECT id FROM ${d.batches} WHERE id IN (${d.idList(params, ids)}) AND status IN (${params.list(FINAL_STATUS_LIST)})`;
  const statement = (sql: (params: Params) => string): Statement => {
    const params = new Params(d);
    return { sql: sql(params), params: params.values };
  };
  return [
    statement(
      (p) =>
        `DELETE FROM ${d.rangeAnswers} WHERE range_id IN (SELECT id FROM ${d.ranges} WHERE batch_id IN (${ended(p)}))`,
    ),
    statement((p) => `DELETE FROM ${d.ranges} WHERE batch_id IN (${ended(p)})`),
    statement((p) => `DELETE FROM ${d.leaseHistory} WHERE batch_id IN (${ended(p)})`),
    statement((p) => `DELETE FROM ${d.partitions} WHERE batch_id IN (${ended(p)})`),
    statement((p) => `DELETE FROM ${d.batches} WHERE id IN (${ended(p)})`),
  ];
}
