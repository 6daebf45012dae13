import type { SnapshotFrom } from 'xstate';
import { ConflictError, NotFoundError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import { BATCH_MACHINE_VERSION, type BatchMachine, batchMachine, nextRunContext } from '../machines/batch.js';
import type { BatchRecord, BatchState, Store } from '../store/store.js';
import type { BatchStatus, BatchSummary } from '../summary.js';
import { parseRecord, parseState } from './records.js';
import { summaryOf } from './summary-of.js';

/**
 * engine.retryFailed's store side: checks the batch can be redriven and writes its next run
 * (one store transaction); the engine then queues it. Coded errors: NOT_FOUND, CONFLICT.
 */
export async function redrive(
  store: Store,
  jobs: ReadonlyMap<string, AnyJobDefinition>,
  id: string,
): Promise<{ record: BatchRecord; summary: BatchSummary }> {
  const row = await store.loadBatch(id);
  if (!row) throw new NotFoundError(id);
  const record = parseRecord(row);
  const ended = parseState(row);
  const counts = await store.countOutcomes(id);
  checkRedrivable(record, row.status, counts);
  if (!ended || !jobs.has(record.job))
    throw new ConflictError(id, `batch "${id}" cannot be retried here (its job "${record.job}" is unknown)`);
  const next = nextRunState(record, ended, counts.succeeded);
  if (!(await store.redrive(id, next.state, next.endedRun)))
    throw new ConflictError(id, `batch "${id}" is no longer PARTIAL or FAILED (retried elsewhere?)`);
  return { record, summary: next.summary };
}

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
 * makes their journal positions 1..succeeded in the same transaction), and the summary it shows while queued.
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
