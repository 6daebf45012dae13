/**
 * partita: batches of partitioned work as XState statecharts on a Piscina worker pool, with exact
 * outcomes and crash recovery. This file is the public API and nothing else.
 */

export type {
  Clock,
  Engine,
  EngineMetrics,
  EngineOptions,
  ListFilter,
  PruneOptions,
  PruneResult,
  ScheduleCatchUp,
  ScheduleInfo,
  ScheduleOptions,
  ScheduleOverlap,
  SubmitOptions,
  WaitOptions,
} from './engine.js';
export { createEngine } from './engine.js';
export type { ErrorCode, SerializedError } from './errors.js';
export {
  CancelledError,
  ConflictError,
  EngineStateError,
  LeaseLostError,
  MAX_ERROR_MESSAGE,
  MAX_ERROR_STACK,
  NotFoundError,
  PartitaError,
  ResultValidationError,
  SnapshotVersionError,
  StoreError,
  TimeoutError,
  UnknownJobError,
  ValidationError,
  WorkerCrashedError,
  WorkerLoadError,
} from './errors.js';
export type {
  AnyJobDefinition,
  BatchingOption,
  DistributeOption,
  FinalizeContext,
  JobDefinition,
  JobOptions,
  Partition,
  RateLimit,
  RetryOptions,
  Trigger,
} from './job.js';
export { defineJob } from './job.js';
export { BATCH_MACHINE_VERSION, batchMachine } from './machines/batch.js';
export { partitionMachine } from './machines/partition.js';
/** What `engine.observe(listener)` hears: a batch's status change, or a partition's outcome. */
export type { EngineEvent } from './runtime/stats.js';
export { memoryStore } from './store/memory.js';
export type { PgPool, PgPoolClient, PgResult } from './store/pg-types.js';
export { type PostgresStoreOptions, postgresStore } from './store/postgres.js';
export { type SqliteStoreOptions, sqliteStore } from './store/sqlite.js';
export type {
  BatchFilter,
  BatchRecord,
  BatchRow,
  BatchState,
  ClaimedRange,
  Fence,
  Lease,
  LeaseTaken,
  OutcomeRecord,
  PartitionFilter,
  PartitionInput,
  PartitionRow,
  PartitionSource,
  PartitionStatus,
  PartitionView,
  PruneFilter,
  RangeEvent,
  RangeFilter,
  RangeHold,
  RangeOffer,
  RangeStore,
  ScheduleRow,
  StagedAnswer,
  StatusEvent,
  Store,
} from './store/store.js';
export type { BatchStatus, BatchSummary, FailurePolicy, OutcomeCounts, PartitionFailure } from './summary.js';
export { decideOutcome, describeFailures, isFinalStatus } from './summary.js';
export { MAX_ID_LENGTH, MAX_KEY_LENGTH } from './values.js';
export type { PartitionContext, PartitionHandler } from './worker.js';
