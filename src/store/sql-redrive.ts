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
 * 1. The batch row: QUEUED with the new state, its journal position back to the outcomes that stay
 *    (`state.journalSeq`, the n succeeded ones), its lease free for whichever engine admits it.
 * 2. The journal made 1..n again with as few writes as there are failed outcomes among 1..n: each
 *    succeeded outcome past n takes the position of a failed one at or before n, the k-th past n the
 *    k-th such gap. Journal positions of a final batch are 1..m, each once, so this leaves the
 *    succeeded ones at 1..n (their order among themselves does not matter: recovery replays only
 *    what comes after `journalSeq`). Renumbering every succeeded outcome, as before, rewrote each
 *    of a 100,000-partition batch's rows and took 0.6 s on SQLite, 2 s on PostgreSQL.
 * 3. Each failed partition: its outcome appended to `history` (with the run it belonged to), then
 *    pending again.
 * 4. The batch's ranges (`distribute`) and their staged answers deleted. An owner withdraws them at
 *    the end, but one that died between its final state and that withdraw left them, unclaimable
 *    while the batch was final; QUEUED again under the same lease epoch, they could be claimed and
 *    their members, which had their outcomes, run again.
 * 5. Should a succeeded outcome still sit past n (positions that were not 1..m, which no build
 *    writes), every succeeded one renumbered 1..n in its old order, as before. Otherwise a
 *    condition evaluated once makes this statement touch nothing.
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
  const n = state.journalSeq;
  const fill = new Params(dialect);
  // The k-th succeeded past n and the k-th failed at or before n meet in one group of k (a join of
  // the two numbered lists ran as a nested loop on SQLite: 2 s for 9,000 pairs).
  const fillSql = `UPDATE ${partitions} AS p SET seq = m.gap
    FROM (SELECT max(idx) AS idx, max(gap) AS gap
          FROM (SELECT idx, NULL AS gap, row_number() OVER (ORDER BY seq) AS k FROM ${partitions}
                WHERE batch_id = ${fill.add(batchId)} AND seq > ${fill.add(n)} AND status = 'succeeded'
                UNION ALL
                SELECT NULL, seq, row_number() OVER (ORDER BY seq) FROM ${partitions}
                WHERE batch_id = ${fill.add(batchId)} AND seq <= ${fill.add(n)} AND status = 'failed') AS pair
          GROUP BY k HAVING count(*) = 2) AS m
    WHERE p.batch_id = ${fill.add(batchId)} AND p.idx = m.idx`;
  const renumber = new Params(dialect);
  const renumberSql = `UPDATE ${partitions} AS p SET seq = r.n
    FROM (SELECT idx, row_number() OVER (ORDER BY seq, idx) AS n FROM ${partitions}
          WHERE batch_id = ${renumber.add(batchId)} AND status = 'succeeded') AS r
    WHERE p.batch_id = ${renumber.add(batchId)} AND p.idx = r.idx
      AND EXISTS (SELECT 1 FROM ${partitions} WHERE batch_id = ${renumber.add(batchId)}
                  AND seq > ${renumber.add(n)} AND status = 'succeeded')`;
  const answers = new Params(dialect);
  const answersSql = `DELETE FROM ${dialect.rangeAnswers}
    WHERE range_id IN (SELECT id FROM ${dialect.ranges} WHERE batch_id = ${answers.add(batchId)})`;
  const ranges = new Params(dialect);
  const rangesSql = `DELETE FROM ${dialect.ranges} WHERE batch_id = ${ranges.add(batchId)}`;
  return [
    { sql: batchSql, params: batch.values },
    { sql: fillSql, params: fill.values },
    { sql: failedSql, params: failed.values },
    { sql: answersSql, params: answers.values },
    { sql: rangesSql, params: ranges.values },
    { sql: renumberSql, params: renumber.values },
  ];
}
