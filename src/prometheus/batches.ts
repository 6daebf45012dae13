import type { EngineEvent } from '../engine.js';
import { type BatchStatus, isFinalStatus } from '../summary.js';

/** Label value for batches whose job is not known (see {@link BatchTracker.counts}). */
export const UNKNOWN_JOB = '(unknown)';

/**
 * The batches an engine holds now, by job and status, for the `partita_batches` gauge.
 * `engine.metrics().batches` counts them by status only, so the job comes from the `batch` events
 * of `engine.observe`: the latest status of each batch id, forgotten once final (a final batch is
 * no longer held; finished batches are counted by `partita_batch_duration_seconds_count`).
 *
 * The engine's own counts stay the truth: a batch dropped without a final event (its lease lost to
 * another engine) is pruned, and a batch heard of before this tracker existed (resumed by a start()
 * that ran before registerMetrics) is counted under job `(unknown)` until its next status change.
 */
export class BatchTracker {
  private readonly latest = new Map<string, { job: string; status: BatchStatus }>();

  hear(event: EngineEvent): void {
    if (event.type !== 'batch') return;
    // Delete first: the map's order is then the order of the latest changes (pruning drops the stalest).
    this.latest.delete(event.batchId);
    if (!isFinalStatus(event.status))
      this.latest.set(event.batchId, { job: event.job, status: event.status });
  }

  /** Counts by job and status, reconciled with the engine's counts by status. */
  counts(
    held: Partial<Record<BatchStatus, number>>,
  ): Array<{ job: string; status: BatchStatus; count: number }> {
    const byStatus = new Map<BatchStatus, Array<[string, { job: string }]>>();
    for (const entry of this.latest) {
      const status = entry[1].status;
      const list = byStatus.get(status);
      if (list) list.push(entry);
      else byStatus.set(status, [entry]);
    }
    const out = new Map<string, { job: string; status: BatchStatus; count: number }>();
    const add = (job: string, status: BatchStatus, n: number) => {
      const key = `${job}\u0000${status}`;
      const row = out.get(key) ?? { job, status, count: 0 };
      row.count += n;
      out.set(key, row);
    };
    const statuses = new Set<BatchStatus>([...byStatus.keys(), ...(Object.keys(held) as BatchStatus[])]);
    for (const status of statuses) {
      const truth = held[status] ?? 0;
      const known = byStatus.get(status) ?? [];
      // More heard of than held: the stalest were dropped without a final event.
      for (const [id] of known.slice(0, Math.max(0, known.length - truth))) this.latest.delete(id);
      for (const [, { job }] of known.slice(Math.max(0, known.length - truth))) add(job, status, 1);
      if (truth > known.length) add(UNKNOWN_JOB, status, truth - known.length);
    }
    return [...out.values()];
  }
}
