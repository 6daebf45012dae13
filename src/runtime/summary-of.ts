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
    failures: sampleOf(c.failures),
    priority: record.priority,
    createdAt: record.createdAt,
  };
  // A copy: the record's own is the batch's (and what it stores).
  if (record.meta) summary.meta = { ...record.meta };
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
 * The failure sample is the batch actor's own (its context, and so its stored state): each summary
 * gets an array of its own, which a listener or a caller may sort or trim (found by an outside
 * probe: that changed what the batch stores), of entries frozen once (changing one throws).
 * `finalize` gets a deep copy (finalization.ts).
 */
function sampleOf(failures: BatchSummary['failures']): BatchSummary['failures'] {
  if (failures.length === 0) return [];
  if (!Object.isFrozen(failures[failures.length - 1])) for (const f of failures) frozen(f);
  return failures.slice();
}

function frozen(f: BatchSummary['failures'][number]): void {
  if (Object.isFrozen(f)) return;
  Object.freeze(f.error);
  Object.freeze(f);
}

/**
 * A summary of its own for one reader (a listener, a waiter): the same summary goes to every
 * listener of a batch and to its waiters, so one that sorts or trims its `failures`, or changes its
 * `meta`, would change it for the others.
 */
export function detached(summary: BatchSummary): BatchSummary {
  const copy = { ...summary, failures: summary.failures.slice() };
  if (summary.meta) copy.meta = { ...summary.meta };
  return copy;
}

/** What makes a summary news for a listener: the same key twice in a row is one change. */
export function changeKey(summary: BatchSummary): string {
  return `${summary.status}/${summary.succeeded}/${summary.failed}/${summary.running}/${summary.run ?? 1}/${summary.error?.code ?? ''}/${summary.progress}`;
}
