import type { SnapshotFrom } from 'xstate';
import { ConflictError } from '../errors.js';
import { BATCH_MACHINE_VERSION, type BatchMachine, batchMachine, nextRunContext } from '../machines/batch.js';
import type { BatchRecord, BatchState } from '../store/store.js';
import type { BatchStatus, BatchSummary } from '../summary.js';
import { summaryOf } from './summary-of.js';

/** The statuses `engine.retryFailed` accepts: a final batch with failures to re-run. */
const REDRIVABLE: readonly BatchStatus[] = ['PARTIAL', 'FAILED'];

/**
 * Refuses (CONFLICT) a batch that is not final PARTIAL or FAILED, or has nothing left to re-run. A
 * FAILED batch whose partitions all succeeded failed in its finalizer: its next run only finalizes.
 */
export function checkRedrivable(
  record: BatchRecord,
  status: BatchStatus,
  counts: { succeeded: number },
): void {
  const id = record.id;
  if (!REDRIVABLE.includes(status))
    throw new ConflictError(id, `batch "${id}" is ${status}: only a PARTIAL or FAILED batch can be retried`);
  if (counts.succeeded >= record.total && status !== 'FAILED')
    throw new ConflictError(id, `batch "${id}" has no failed partition to retry`);
}

/**
 * The stored state of a batch's next run (engine.retryFailed): the machine back in QUEUED with
 * {@link nextRunContext}, its journal position at the `succeeded` outcomes that stay (the store
 * renumbers them 1..succeeded in the same transaction), and the summary it shows while queued.
 */
export function nextRunState(
  record: BatchRecord,
  ended: BatchState,
  succeeded: number,
): { state: BatchState; summary: BatchSummary; endedRun: number } {
  const previous = (ended.snapshot as SnapshotFrom<BatchMachine>).context;
  const context = nextRunContext(previous, succeeded);
  const snapshot = batchMachine.resolveState({ value: 'queued', context });
  const summary = summaryOf(record, snapshot, false, undefined);
  // The failure sample is in the snapshot's context (empty now): stored once, as durability.ts does.
  const { failures: _inSnapshot, ...stored } = summary;
  const state: BatchState = {
    schemaVersion: ended.schemaVersion,
    machineVersion: BATCH_MACHINE_VERSION,
    status: 'QUEUED',
    journalSeq: succeeded,
    snapshot: batchMachine.getPersistedSnapshot(snapshot),
    summary: stored,
  };
  return { state, summary, endedRun: previous.config.run ?? 1 };
}
