import { PartitaError, serializeError, toError } from '../errors.js';
import type { BatchRecord, BatchRow, BatchState } from '../store/store.js';
import { type BatchStatus, type BatchSummary, isFinalStatus, type PartitionFailure } from '../summary.js';
import { parseRecord, parseState } from './records.js';

/**
 * Summaries of batches read from the store (not run by this engine): queued, finished, run by
 * another engine, or broken (a row that cannot be read is reported, never touched).
 */

/** The stored summary of a batch; throws (STORE, SNAPSHOT_VERSION) when its row cannot be read. */
export function summaryFromRow(row: BatchRow): BatchSummary {
  return storedSummary(parseRecord(row), parseState(row));
}

/**
 * The summary a stored state carries, or a fresh QUEUED one when there is no state yet. A batch
 * queued with a state (retryFailed's next run) shows its counts and run from it, not from nothing.
 */
export function storedSummary(record: BatchRecord, state: BatchState | undefined): BatchSummary {
  if (state?.summary && typeof state.summary === 'object') {
    const summary = state.summary as BatchSummary;
    // The failure sample is stored once, in the snapshot's context (docs/persistence.md).
    if (!summary.failures) return { ...summary, failures: failuresOf(state.snapshot) };
    return summary;
  }
  return queuedSummary(record);
}

/** The summary of a batch that has not started: the same whether it is read from the store or queued here. */
export function queuedSummary(record: BatchRecord): BatchSummary {
  return {
    id: record.id,
    job: record.job,
    status: 'QUEUED',
    total: record.total,
    succeeded: 0,
    failed: 0,
    running: 0,
    pending: record.total,
    progress: 0,
    failures: [],
    priority: record.priority,
    ...(record.meta ? { meta: { ...record.meta } } : {}),
    createdAt: record.createdAt,
  };
}

function failuresOf(snapshot: unknown): PartitionFailure[] {
  const failures = (snapshot as { context?: { failures?: unknown } } | undefined)?.context?.failures;
  return Array.isArray(failures) ? (failures as PartitionFailure[]) : [];
}

/** What `list()` shows for a row: its summary, or what can be said of it with the error that stops it. */
export function listedSummary(row: BatchRow, broken: PartitaError | undefined): BatchSummary {
  if (broken) return { ...brokenSummary(row, broken), ...safeSummary(row), error: serializeError(broken) };
  try {
    return summaryFromRow(row);
  } catch (err) {
    return brokenSummary(row, err);
  }
}

/** The stored summary when it parses (a batch of an unknown job still has one), else nothing. */
function safeSummary(row: BatchRow): Partial<BatchSummary> {
  try {
    return summaryFromRow(row);
  } catch {
    // Corrupt or from a newer partita: brokenSummary says what is known from the row's columns.
    return {};
  }
}

function brokenSummary(row: BatchRow, err: unknown): BatchSummary {
  // Its size when its record can still be read (only its state is broken): its counts are not known,
  // so none is shown as settled (`pending` is the rest, as the summary's sum requires).
  const total = totalOf(row);
  return {
    id: row.id,
    job: row.job,
    status: row.status,
    total,
    succeeded: 0,
    failed: 0,
    running: 0,
    pending: total,
    progress: 0,
    failures: [],
    priority: row.priority,
    createdAt: row.createdAt,
    error: serializeError(err),
  };
}

function totalOf(row: BatchRow): number {
  try {
    return parseRecord(row).total;
  } catch {
    return 0;
  }
}

/** A row that cannot be resumed, as a PartitaError (STORE unless it is coded already). */
export function asPartitaError(err: unknown): PartitaError {
  return err instanceof PartitaError ? err : new PartitaError('STORE', toError(err).message, { cause: err });
}

/** A batch running here, as listing sees it. */
export interface LiveBatch {
  id: string;
  job: string;
  /** Ended here, its final write not yet heard answered (BatchRuntime.endingUnheard). */
  endingUnheard: boolean;
  summary(): BatchSummary;
}

/**
 * A listed row's summary: the running batch's own, unless the row read from the store is newer (its
 * final state is stored, and the engine that ran it has not heard so yet).
 */
export function freshest(
  row: BatchRow,
  live: LiveBatch | undefined,
  stored: (row: BatchRow) => BatchSummary,
): BatchSummary {
  return live && !(live.endingUnheard && isFinalStatus(row.status)) ? live.summary() : stored(row);
}

/**
 * A list filtered by status, as reported: a row's stored status can lag behind the batch running
 * here (its next state write has not happened yet), so rows are filtered by their live summary,
 * and batches running here whose row still shows another status are added. Newest first.
 */
export function listByStatus(
  rows: readonly BatchRow[],
  f: {
    status?: BatchStatus | readonly BatchStatus[] | undefined;
    job?: string | undefined;
    limit?: number | undefined;
  },
  running: Iterable<LiveBatch>,
  stored: (row: BatchRow) => BatchSummary,
): BatchSummary[] {
  const wanted = new Set(typeof f.status === 'string' ? [f.status] : (f.status ?? []));
  const live = new Map<string, LiveBatch>();
  for (const rt of running) live.set(rt.id, rt);
  const seen = new Set<string>();
  const out: BatchSummary[] = [];
  for (const row of rows) {
    seen.add(row.id);
    const s = freshest(row, live.get(row.id), stored);
    if (wanted.has(s.status)) out.push(s);
  }
  // Newest first, as the rows are: batches created in the same millisecond keep that order through
  // the (stable) sort below, where the running ones came oldest first (probe: `list({ status,
  // limit })` gave the oldest of a burst).
  for (const rt of [...live.values()].reverse()) {
    if (seen.has(rt.id) || (f.job !== undefined && rt.job !== f.job)) continue;
    const s = rt.summary();
    if (wanted.has(s.status)) out.push(s);
  }
  out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
  return f.limit === undefined ? out : out.slice(0, f.limit);
}
