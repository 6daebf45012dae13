import type { SnapshotFrom } from 'xstate';
import { type BatchMachine, statusOf } from '../machines/batch.js';
import type { BatchRecord } from '../store/store.js';
import { type BatchStatus, type BatchSummary, describeFailures, isFinalStatus } from '../summary.js';

/**
 * The public summary of a batch actor's snapshot. `finalDurable` is false between the machine
 * reaching its final state and that state being stored: until then the batch reports FINALIZING,
 * so no caller ever sees a final status whose outcomes are not durable.
 */
export function summaryOf(
  record: BatchRecord,
  snapshot: SnapshotFrom<BatchMachine>,
  finalDurable: boolean,
  finishedAt: string | undefined,
): BatchSummary {
  const c = snapshot.context;
  const total = c.config.total;
  let status: BatchStatus = statusOf(snapshot.value);
  const final = isFinalStatus(status);
  if (final && !finalDurable) status = 'FINALIZING';
  const settled = c.succeeded + c.failed;
  const summary: BatchSummary = {
    id: record.id,
    job: record.job,
    status,
    total,
    succeeded: c.succeeded,
    failed: c.failed,
    running: c.running,
    pending: total - settled - c.running,
    progress: total === 0 ? (final ? 1 : 0) : settled / total,
    failures: frozenFailures(c.failures),
    priority: record.priority,
    createdAt: record.createdAt,
  };
  // Frozen (a record read back from the store is parsed anew, and submission freezes its copy).
  if (record.meta) summary.meta = Object.isFrozen(record.meta) ? record.meta : Object.freeze(record.meta);
  if (c.config.run) summary.run = c.config.run;
  const errorSummary = describeFailures({ total, succeeded: c.succeeded, failed: c.failed });
  if (errorSummary) summary.errorSummary = errorSummary;
  if (c.startedAt) summary.startedAt = c.startedAt;
  if (final && finalDurable) {
    if (c.output !== undefined) summary.output = c.output;
    if (c.error) summary.error = c.error;
    if (finishedAt) summary.finishedAt = finishedAt;
  }
  return summary;
}

/**
 * The failure sample is the batch actor's own (its context, and so its stored state), shared by
 * every summary made from it: frozen, so that a listener or a caller that sorts or trims the list
 * it was given (found by an outside probe) cannot change what the batch stores. Each array is
 * frozen once; `finalize` gets a copy it may change (finalization.ts).
 */
function frozenFailures(failures: BatchSummary['failures']): BatchSummary['failures'] {
  if (Object.isFrozen(failures)) return failures;
  for (const f of failures) {
    if (Object.isFrozen(f)) continue;
    Object.freeze(f.error);
    Object.freeze(f);
  }
  return Object.freeze(failures) as BatchSummary['failures'];
}
