import { Params, type SqlDialect } from './sql-listing.js';
import type { BatchState } from './store.js';

/** One statement of a transaction: its SQL and its parameters. */
export interface Statement {
  sql: string;
  params: unknown[];
}

/**
 * Store.redrive as SQL, for both SQL stores, to run in one transaction in this order. The first
 * statement must change exactly one row (the batch is PARTIAL or FAILED and visible), or the whole
 * transaction is rolled back: of two engines redriving one batch, the second finds it QUEUED.
 *
 * 1. The batch row: QUEUED with the new state, its journal position back to the outcomes that stay,
 *    its lease free for whichever engine admits it.
 * 2. Each failed partition: its outcome appended to `history` (with the run it belonged to), then
 *    pending again.
 * 3. The succeeded partitions' journal positions renumbered 1..n in their old order: the next run
 *    appends from n + 1, and recovery replays after the state's `journalSeq` = n as always.
 */
export function redriveStatements(
  dialect: SqlDialect,
  batchId: string,
  state: BatchState,
  endedRun: number,
  historyEntry: (params: Params, run: number) => string,
): Statement[] {
  const { batches, partitions, visible } = dialect;
  const batch = new Params(dialect);
  const batchSql = `UPDATE ${batches} SET state = ${batch.add(JSON.stringify(state))}, status = 'QUEUED',
      journal_seq = ${batch.add(state.journalSeq)}, lease_owner = NULL, lease_expires_at = 0, control = NULL
    WHERE id = ${batch.add(batchId)} AND status IN ('PARTIAL', 'FAILED') ${visible ? `AND ${visible}` : ''}`;
  const failed = new Params(dialect);
  const entry = historyEntry(failed, endedRun);
  const failedSql = `UPDATE ${partitions} SET history = ${entry}, status = 'pending', result = NULL,
      error = NULL, attempts = 0, duration_ms = NULL, seq = NULL, finished_at = NULL
    WHERE batch_id = ${failed.add(batchId)} AND status = 'failed'`;
  const renumber = new Params(dialect);
  const renumberSql = `UPDATE ${partitions} AS p SET seq = r.n
    FROM (SELECT idx, row_number() OVER (ORDER BY seq, idx) AS n FROM ${partitions}
          WHERE batch_id = ${renumber.add(batchId)} AND status = 'succeeded') AS r
    WHERE p.batch_id = ${renumber.add(batchId)} AND p.idx = r.idx`;
  return [
    { sql: batchSql, params: batch.values },
    { sql: failedSql, params: failed.values },
    { sql: renumberSql, params: renumber.values },
  ];
}
