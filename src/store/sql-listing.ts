import { checkLimit } from './inputs.js';
import { BATCH_COLS } from './sql-rows.js';
import { type BatchFilter, UNFINISHED_STATUS_LIST } from './store.js';

/** How one SQL store names its tables and its parameters. */
export interface SqlDialect {
  /** The batches table, qualified where needed. */
  batches: string;
  /** The partitions table, qualified where needed. */
  partitions: string;
  /** The schedules table, qualified where needed. */
  schedules: string;
  /** The lease history table, qualified where needed. */
  leaseHistory: string;
  /** The ranges table (`distribute`), qualified where needed. */
  ranges: string;
  /** The staged answers of ranges, qualified where needed. */
  rangeAnswers: string;
  /** Ends the SELECT that picks ranges to claim (alias `r`): PostgreSQL's `FOR UPDATE OF r SKIP LOCKED`. */
  skipLocked: string;
  /** A condition on the batches table that every batch a reader may see meets (SQLite: not being created). */
  visible?: string;
  /** A column of batches that follows insertion, so batches created in the same millisecond keep their order. */
  insertionOrder: string;
  /** The placeholder of parameter `n` (1-based): `?` or `$n`. */
  placeholder: (n: number) => string;
  /** Milliseconds since the epoch on the clock that leases use, as SQL (a parameter, or an expression). */
  now: (params: Params) => string;
}

/** The parameters of one statement, in order: `add` returns the placeholder to write in the SQL. */
export class Params {
  readonly values: unknown[] = [];
  constructor(private readonly dialect: SqlDialect) {}

  add(value: unknown): string {
    return this.dialect.placeholder(this.values.push(value));
  }

  list(values: readonly unknown[]): string {
    return values.map((v) => this.add(v)).join(', ');
  }
}

/**
 * listBatches as one SELECT, for both SQL stores: newest first, or oldest first for `unfinished`,
 * ties broken by insertion order as in memoryStore. Undefined when the filter matches nothing (an
 * empty status list). A bad `limit` is refused (VALIDATION) before any SQL runs.
 */
export function listingQuery(
  filter: BatchFilter,
  dialect: SqlDialect,
): { sql: string; params: unknown[] } | undefined {
  const limit = checkLimit(filter.limit);
  const where = dialect.visible ? [dialect.visible] : [];
  const params = new Params(dialect);
  if (filter.unfinished) where.push(`status IN (${params.list(UNFINISHED_STATUS_LIST)})`);
  if (filter.status !== undefined) {
    const statuses = typeof filter.status === 'string' ? [filter.status] : [...filter.status];
    if (statuses.length === 0) return undefined;
    where.push(`status IN (${params.list(statuses)})`);
  }
  if (filter.job !== undefined) where.push(`job = ${params.add(filter.job)}`);
  const dir = filter.unfinished ? 'ASC' : 'DESC';
  let sql = `SELECT ${BATCH_COLS} FROM ${dialect.batches}`;
  if (where.length) sql += ` WHERE ${where.join(' AND ')}`;
  sql += ` ORDER BY created_at ${dir}, ${dialect.insertionOrder} ${dir}`;
  if (limit !== undefined) sql += ` LIMIT ${params.add(limit)}`;
  return { sql, params: params.values };
}
