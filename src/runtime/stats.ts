import type { Logger } from 'pino';
import type { BatchStatus } from '../summary.js';
import { guarded } from './callbacks.js';

/** What `engine.observe()` listeners hear: every settled partition and every batch status change. */
export type EngineEvent =
  | {
      type: 'partition';
      batchId: string;
      job: string;
      status: 'succeeded' | 'failed';
      /** Time spent running, over all attempts. */
      durationMs: number;
      attempts: number;
    }
  | {
      type: 'batch';
      batchId: string;
      job: string;
      status: BatchStatus;
      /** For a final status: from the start of processing (or submit) to the end. */
      durationMs?: number | undefined;
    };

/** Seconds over which `partitionsPerSecond` is measured. */
export const RATE_WINDOW_S = 10;

/**
 * The engine's counters for `metrics()` and the listeners of `observe()` (partita/prometheus uses
 * them). The partition rate is recent: partitions settled in the last {@link RATE_WINDOW_S} seconds,
 * counted in one-second buckets.
 */
export class EngineStats {
  private readonly observers = new Set<(event: EngineEvent) => void>();
  private readonly counts = new Float64Array(RATE_WINDOW_S);
  private readonly seconds = new Float64Array(RATE_WINDOW_S);
  private readonly startedAt = Date.now();
  storeErrors = 0;

  constructor(private readonly log: Logger) {}

  observe(listener: (event: EngineEvent) => void): () => void {
    const safe = guarded(this.log, 'observe listener', listener);
    this.observers.add(safe);
    return () => this.observers.delete(safe);
  }

  partition(
    batchId: string,
    job: string,
    status: 'succeeded' | 'failed',
    durationMs: number,
    attempts: number,
  ): void {
    const second = Math.floor(Date.now() / 1000);
    const slot = second % RATE_WINDOW_S;
    if (this.seconds[slot] !== second) {
      this.seconds[slot] = second;
      this.counts[slot] = 0;
    }
    this.counts[slot]!++;
    if (this.observers.size > 0) this.emit({ type: 'partition', batchId, job, status, durationMs, attempts });
  }

  batch(batchId: string, job: string, status: BatchStatus, durationMs?: number): void {
    if (this.observers.size > 0) this.emit({ type: 'batch', batchId, job, status, durationMs });
  }

  /** Partitions settled per second, over the last {@link RATE_WINDOW_S} seconds (fewer just after start). */
  rate(): number {
    const now = Math.floor(Date.now() / 1000);
    let sum = 0;
    for (let i = 0; i < RATE_WINDOW_S; i++)
      if (now - this.seconds[i]! < RATE_WINDOW_S) sum += this.counts[i]!;
    const span = Math.min(RATE_WINDOW_S, Math.max(1, (Date.now() - this.startedAt) / 1000));
    return sum / span;
  }

  private emit(event: EngineEvent): void {
    for (const observer of this.observers) observer(event);
  }
}
