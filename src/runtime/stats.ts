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
 * them). Counting a partition is one increment (it is on the hot path); the recent rate comes from
 * the settled total sampled once a second by an unreferenced timer, while the engine runs.
 */
export class EngineStats {
  private readonly observers = new Set<(event: EngineEvent) => void>();
  /** Partitions settled since the engine was created. */
  private settled = 0;
  /** (time, settled) once a second, the oldest first; at most RATE_WINDOW_S + 1 of them. */
  private readonly samples: Array<[number, number]> = [];
  private sampler: NodeJS.Timeout | undefined;
  storeErrors = 0;

  constructor(private readonly log: Logger) {}

  start(): void {
    this.sample();
    this.sampler = setInterval(() => this.sample(), 1000);
    this.sampler.unref();
  }

  stop(): void {
    clearInterval(this.sampler);
  }

  /** Anyone listening? (Building an event is skipped when not.) */
  get observed(): boolean {
    return this.observers.size > 0;
  }

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
    this.settled++;
    if (this.observers.size > 0) this.emit({ type: 'partition', batchId, job, status, durationMs, attempts });
  }

  batch(batchId: string, job: string, status: BatchStatus, durationMs?: number): void {
    if (this.observers.size > 0) this.emit({ type: 'batch', batchId, job, status, durationMs });
  }

  /** Partitions settled per second, over the last {@link RATE_WINDOW_S} seconds (less just after start). */
  rate(): number {
    const oldest = this.samples[0];
    if (!oldest) return 0;
    const seconds = (Date.now() - oldest[0]) / 1000;
    return seconds > 0 ? (this.settled - oldest[1]) / seconds : 0;
  }

  private sample(): void {
    this.samples.push([Date.now(), this.settled]);
    if (this.samples.length > RATE_WINDOW_S + 1) this.samples.shift();
  }

  private emit(event: EngineEvent): void {
    for (const observer of this.observers) observer(event);
  }
}
