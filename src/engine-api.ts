import type { ListFilter, PruneOptions, PruneResult, SubmitOptions, WaitOptions } from './engine-options.js';
import type { JobWithInput } from './job.js';
import type { EngineEvent } from './runtime/stats.js';
import type { ScheduleInfo, ScheduleOptions } from './schedule-options.js';
import type { PartitionFilter, PartitionView } from './store/store.js';
import type { BatchStatus, BatchSummary } from './summary.js';

/** A snapshot of the engine's load, from `engine.metrics()`. */
export interface EngineMetrics {
  /** Batches run by this engine now, by status. */
  batches: Partial<Record<BatchStatus, number>>;
  queued: number;
  /** Partitions settled per second over the last 10 seconds. */
  partitionsPerSecond: number;
  poolThreads: number;
  poolUtilization: number;
  storeErrors: number;
}

/** The engine: owns the pool, the store and every batch actor of this process. */
export interface Engine {
  /** Open the store (migrations), resume every unfinished batch, start admitting. */
  start(): Promise<void>;
  /** Graceful stop: work in flight is aborted and runs again on the next start; nothing is lost. */
  stop(): Promise<void>;
  /** Validate, partition and store a batch, then queue it. Rejected input stores nothing. */
  submit<I>(job: string | JobWithInput<I>, input: I, options?: SubmitOptions): Promise<BatchSummary>;
  get(id: string): Promise<BatchSummary>;
  /** Resolves with the final summary once the final state is durable. */
  wait(id: string, options?: WaitOptions): Promise<BatchSummary>;
  list(filter?: ListFilter): Promise<BatchSummary[]>;
  /** Cancel: in-flight work is aborted; resolves with the CANCELLED (or already final) summary. */
  cancel(id: string, reason?: string): Promise<BatchSummary>;
  /** PROCESSING → PAUSED: dispatches nothing more; partitions in flight finish. Stored: survives a restart. */
  pause(id: string): Promise<BatchSummary>;
  /**
   * Re-run the failed partitions of a final PARTIAL or FAILED batch, in place: same id, `run` + 1,
   * back through QUEUED, counts and final status decided again by the same policy. Each failed
   * partition's earlier outcome is kept in its `history` (engine.partitions). Refused (CONFLICT)
   * while the batch is not final, when it is COMPLETED or CANCELLED, or when nothing failed.
   * Dependents cancelled because the batch failed stay cancelled (docs/guide.md, "Redrive").
   */
  retryFailed(id: string): Promise<BatchSummary>;
  /** PAUSED → PROCESSING. A batch already PROCESSING is returned as it is. */
  resume(id: string): Promise<BatchSummary>;
  /** Every partition with its result or error, in index order. `R`: the job's result type. */
  partitions<R = unknown>(id: string, filter?: PartitionFilter): AsyncIterable<PartitionView<R>>;
  /** Called with the summary at every change, progress included. Returns the unsubscribe function. */
  subscribe(id: string, listener: (summary: BatchSummary) => void): () => void;
  /**
   * Delete ended batches (docs/guide.md, "Keeping the store small"): those that ended before
   * `before`, each with its partitions, outcomes and history, oldest first. A batch that an
   * unfinished batch waits for (`after`) is kept. Resolves with how many were deleted; a deleted
   * batch is NOT_FOUND from then on. Needs a started engine.
   */
  prune(options: PruneOptions): Promise<PruneResult>;
  /** The counts recomputed from the stored outcomes. After recovery they equal the summary's. */
  recount(id: string): Promise<{ total: number; succeeded: number; failed: number }>;
  metrics(): EngineMetrics;
  /** Hear every settled partition and every batch status change of this engine (metrics exporters). */
  observe(listener: (event: EngineEvent) => void): () => void;
  /**
   * Store a cron schedule (or update the one of that name, keeping its last fire) and fire it from
   * now on: each fire submits the batch `${name}@${fireTime ISO}`. Fires missed while no engine
   * ran it follow `catchUp`. Needs a started engine.
   */
  schedule<I>(options: ScheduleOptions<I>): Promise<ScheduleInfo>;
  /** Remove a stored schedule. False when there was none. Batches it submitted are not touched. */
  unschedule(name: string): Promise<boolean>;
  /** Every stored schedule, by name, with its next fire and its last fire's batch and status. */
  schedules(): Promise<ScheduleInfo[]>;
}
