import { PartitaError, StoreError, toError } from '../errors.js';
import type { BatchStatus } from '../summary.js';
import type { BatchRow, OutcomeRecord, PartitionRow, PartitionStatus, PartitionView } from './store.js';
import { UnreadablePayload } from './unreadable-payload.js';

/**
 * Rows as the SQL stores (SQLite, PostgreSQL) read them, and their conversion to the Store
 * contract's types. Shared so that both stores answer alike, down to their error messages.
 */

export interface BatchDbRow {
  id: string;
  job: string;
  status: BatchStatus;
  priority: number;
  created_at: string;
  record: string;
  state: string | null;
}

export interface PartDbRow {
  idx: number;
  key: string;
  payload?: string | null;
  status: PartitionStatus;
  result: string | null;
  error: string | null;
  attempts: number;
  duration_ms: number | null;
  seq: number | null;
  finished_at: string | null;
  history?: string | null;
}

export const BATCH_COLS = 'id, job, status, priority, created_at, record, state';
export const OUTCOME_COLS =
  'idx, key, status, result, error, attempts, duration_ms, seq, finished_at, history';

export function toBatchRow(r: BatchDbRow): BatchRow {
  return {
    id: r.id,
    job: r.job,
    status: r.status,
    priority: r.priority,
    createdAt: r.created_at,
    record: parseLoose(r.record),
    state: r.state === null ? undefined : parseLoose(r.state),
  };
}

/** A row of readPartitions (idx, key, payload, status). */
export function toPartitionRow(r: PartDbRow, batchId: string): PartitionRow {
  return {
    index: r.idx,
    key: r.key,
    payload: payloadCell(r.payload ?? null, batchId, r.idx),
    status: r.status,
  };
}

/** countOutcomes from `SELECT status, count(*) AS n ... GROUP BY status`. */
export function toCounts(rows: readonly { status: PartitionStatus; n: number }[]): {
  succeeded: number;
  failed: number;
} {
  const out = { succeeded: 0, failed: 0 };
  for (const r of rows) if (r.status === 'succeeded' || r.status === 'failed') out[r.status] = r.n;
  return out;
}

export function toView(r: PartDbRow, batchId: string): PartitionView {
  const view: PartitionView = { index: r.idx, key: r.key, status: r.status, attempts: r.attempts };
  if (r.result !== null) view.result = parseCell(r.result, batchId, r.idx);
  if (r.error !== null) view.error = parseCell(r.error, batchId, r.idx) as PartitionView['error'];
  if (r.duration_ms !== null) view.durationMs = r.duration_ms;
  if (r.finished_at !== null) view.finishedAt = r.finished_at;
  if (r.history) view.history = parseCell(r.history, batchId, r.idx) as PartitionView['history'];
  return view;
}

export function toOutcome(r: PartDbRow, batchId: string): OutcomeRecord {
  const v = toView(r, batchId);
  return {
    ...v,
    status: r.status as OutcomeRecord['status'],
    durationMs: v.durationMs ?? 0,
    seq: r.seq!,
    finishedAt: v.finishedAt ?? '',
  };
}

/**
 * What an outcome writes to its partition row, then the row it writes to: status, result, error,
 * attempts, duration_ms, seq, finished_at, idx, key. Once per outcome: one array of its final length.
 */
export function outcomeValues(o: OutcomeRecord): unknown[] {
  return [
    o.status,
    toJson(o.result),
    toJson(o.error),
    o.attempts,
    o.durationMs,
    o.seq,
    o.finishedAt,
    o.index,
    o.key,
  ];
}

/** SQL NULL stands for `undefined`; JSON `null` is stored as the text 'null'. */
function toJson(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/** A record or state that does not parse comes back as its raw text, so the engine can report it. */
export function parseLoose(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function parseCell(text: string | null, batchId: string, index: number): unknown {
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new StoreError(`partition ${index} of batch "${batchId}" holds invalid JSON`, err, {
      corrupt: true,
    });
  }
}

/** A pending partition's payload from its stored JSON text: the value, or an {@link UnreadablePayload}. */
export function payloadCell(text: string | null, batchId: string, index: number): unknown {
  try {
    return parseCell(text, batchId, index);
  } catch (err) {
    if (err instanceof StoreError) return new UnreadablePayload(err);
    throw err;
  }
}

export function noop(): void {}

/** Every failure of a SQL store reaches the engine as a PartitaError (STORE unless it is one already). */
export function toStoreError(kind: string, err: unknown, what: string): PartitaError {
  if (err instanceof PartitaError) return err;
  return new StoreError(`${kind} store: ${what}: ${toError(err).message}`, err);
}
