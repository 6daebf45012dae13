import type { Logger } from 'pino';
import { backoffDelay } from '../backoff.js';
import { type PartitaError, toError, UnknownJobError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { BatchRecord, BatchRow, BatchState, Store } from '../store/store.js';
import { isFinalStatus } from '../summary.js';
import { parseRecord, parseState } from './records.js';
import { readWithRetry } from './store-retry.js';
import { asPartitaError } from './views.js';

export interface RecoveryDeps {
  store: Store;
  jobs: ReadonlyMap<string, AnyJobDefinition>;
  log: Logger;
  /** Queue the batch, or run it here again; false when another live engine owns it. Throws when it cannot be resumed now. */
  resume: (record: BatchRecord, state: BatchState | undefined) => Promise<boolean>;
  /** A store error (also given to the user's `onError`). */
  storeError: (err: Error, batchId: string | undefined) => void;
}

/** First retry of a batch that could not be resumed; doubles up to {@link MAX_RETRY_MS}. */
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

/**
 * Resumes every unfinished batch of the store when the engine starts (docs/recovery.md). A row that
 * cannot be read (corrupt, from a newer partita, of an unknown job) is reported and left untouched;
 * a batch that cannot be resumed now (a store read failed after its retries) is given up for the
 * moment, holding no slot, reported, and tried again later with backoff.
 */
export class Recovery {
  /** Rows that cannot be read: reported by get() and list(), never touched. */
  readonly broken = new Map<string, PartitaError>();
  private readonly retries = new Map<string, { timer: NodeJS.Timeout; attempt: number }>();
  private stopped = false;

  constructor(private readonly deps: RecoveryDeps) {}

  async resumeAll(): Promise<void> {
    const rows = await readWithRetry(
      (err) => this.deps.storeError(err, undefined),
      () => this.deps.store.listBatches({ unfinished: true }),
    );
    for (const row of rows) {
      if (this.stopped) return;
      const parsed = this.parse(row);
      if (parsed) await this.resume(parsed.record, parsed.state, 1);
    }
  }

  /** Is this batch waiting for another try at being resumed? */
  isRetrying(id: string): boolean {
    return this.retries.has(id);
  }

  stop(): void {
    this.stopped = true;
    for (const { timer } of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
  }

  private parse(row: BatchRow): { record: BatchRecord; state: BatchState | undefined } | undefined {
    try {
      const record = parseRecord(row);
      const state = parseState(row);
      if (!this.deps.jobs.has(record.job)) throw new UnknownJobError(record.job, [...this.deps.jobs.keys()]);
      return { record, state };
    } catch (err) {
      const error = asPartitaError(err);
      this.broken.set(row.id, error);
      this.deps.log.error(
        { batchId: row.id, code: error.code, err: error },
        'batch cannot be resumed; left untouched',
      );
      return undefined;
    }
  }

  private async resume(record: BatchRecord, state: BatchState | undefined, attempt: number): Promise<void> {
    try {
      const attached = await this.deps.resume(record, state);
      this.retries.delete(record.id);
      if (!attached) this.deps.log.info({ batchId: record.id }, 'batch is owned by another engine');
    } catch (err) {
      if (this.stopped) return;
      const delay = backoffDelay(attempt, FIRST_RETRY_MS, MAX_RETRY_MS);
      this.deps.log.error(
        { batchId: record.id, err: toError(err), retryInMs: delay },
        'batch could not be resumed; trying again later',
      );
      this.deps.storeError(toError(err), record.id);
      // Kept in `retries` until a try succeeds, so wait() knows the batch is still to come.
      const timer = setTimeout(() => void this.retry(record.id, attempt + 1), delay);
      this.retries.set(record.id, { timer, attempt });
      return;
    }
  }

  /** Read the row again (it may have been finished or taken by another engine meanwhile) and resume it. */
  private async retry(id: string, attempt: number): Promise<void> {
    if (this.stopped) return;
    let row: BatchRow | undefined;
    try {
      row = await this.deps.store.loadBatch(id);
    } catch (err) {
      this.deps.storeError(toError(err), id);
      if (this.stopped) return;
      const timer = setTimeout(
        () => void this.retry(id, attempt + 1),
        backoffDelay(attempt, FIRST_RETRY_MS, MAX_RETRY_MS),
      );
      this.retries.set(id, { timer, attempt });
      return;
    }
    const parsed = this.stopped || !row || isFinalStatus(row.status) ? undefined : this.parse(row);
    if (parsed) await this.resume(parsed.record, parsed.state, attempt);
    else this.retries.delete(id);
  }
}
