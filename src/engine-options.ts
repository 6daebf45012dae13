import type { Logger } from 'pino';
import type { InspectionEvent, Observer } from 'xstate';
import { z } from 'zod';
import type { AnyJobDefinition, JobDefinition } from './job.js';
import { isDefinedJob } from './job-mark.js';
import type { Clock } from './runtime/clock.js';
import type { Store } from './store/store.js';
import { BATCH_STATUSES, type BatchStatus, FINAL_STATUSES } from './summary.js';
import type { PoolOptions } from './workers/pool.js';

/** What `createEngine` takes. */
export interface EngineOptions {
  /** The jobs this engine can run (from `defineJob`). */
  jobs: readonly AnyJobDefinition[];
  /** Where batches are kept. Default: `sqliteStore({ path: './.partita/partita.db' })`. */
  store?: Store;
  /** The worker-thread pool shared by every batch. */
  workers?: PoolOptions;
  /** Batches PROCESSING at once; the rest wait QUEUED. Default 4. */
  maxConcurrentBatches?: number;
  /**
   * Batches PROCESSING at once across every engine sharing the store (docs/scaling.md), besides
   * each engine's `maxConcurrentBatches`. Give every engine the same value. Default: no cap.
   */
  clusterMaxConcurrentBatches?: number;
  /** A pino logger (child loggers per batch and partition), or false for silence. Default: pino at info. */
  logger?: Logger | false;
  /** Stately inspector (`inspector.inspect`) or any inspection callback or observer, passed to every actor. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** Longest time an outcome waits for its group commit. Default 5 ms. */
  flushDelayMs?: number;
  /**
   * Longest stretch of dispatching before the host's event loop gets a turn (timers, I/O of the
   * host service). Default 5 ms; 0 lets the loop turn before every partition starts.
   */
  yieldAfterMs?: number;
  /** How long this engine's lease on a batch lasts without renewal. Default 30,000 ms. */
  leaseTtlMs?: number;
  /**
   * How often the engine looks for batches that no engine holds: QUEUED ones submitted on another
   * engine sharing the store, and ones whose owner stopped renewing its lease (taken over then, so
   * within `leaseTtlMs` + this). Default 1,000 ms; PostgreSQL also notifies new batches at once.
   * Not used with memoryStore (no other engine can share it).
   */
  claimIntervalMs?: number;
  /**
   * Run ranges of other engines' batches of jobs with `distribute` (docs/scaling.md, "One batch on
   * many hosts"): `true`, or `{ concurrency }`, the partitions this engine runs at once for
   * distributed batches, its own and others' (default 16). Without it, an engine runs only the
   * ranges of its own distributed batches. Not used with memoryStore.
   */
  help?: boolean | { concurrency?: number };
  /** Identifies this engine in leases. Default: `${hostname}/${pid}/${random}`. */
  ownerId?: string;
  /** Told about store errors (besides the log). The engine keeps the data and retries. */
  onError?: (err: Error, batchId: string | undefined) => void;
  /** The time source of schedules (and of nothing else), for tests. Default: the host's clock. */
  clock?: Clock;
}

/** What `engine.wait` takes. */
export interface WaitOptions {
  /** Reject with TIMEOUT after this many milliseconds (0 to 2,147,483,647); the batch goes on. */
  timeoutMs?: number;
}

/** Filter for `engine.list`. */
export interface ListFilter {
  status?: BatchStatus | BatchStatus[];
  job?: string;
  /** At most this many batches, newest first (0 to 100,000). */
  limit?: number;
}

/** What `engine.prune` takes: which ended batches to delete. */
export interface PruneOptions {
  /** Batches that ended before this moment: a Date, or milliseconds since the epoch. Required. */
  before: Date | number;
  /** Only batches that ended so. Default: every final status (COMPLETED, PARTIAL, FAILED, CANCELLED). */
  status?: BatchStatus | BatchStatus[];
  /** Only batches of this job. */
  job?: string;
  /** Delete at most this many (1 to 1,000,000,000). Default: every batch selected. */
  limit?: number;
}

/** What `engine.prune` resolves with. */
export interface PruneResult {
  /** How many batches were deleted, each with its partitions, outcomes and history. */
  deleted: number;
}

/** The longest delay a Node.js timer takes; anything longer would fire after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647;

/** What `engine.submit` takes besides the job and input. */
export interface SubmitOptions {
  /** The batch id. Submitting an id that exists returns that batch instead of creating another. */
  id?: string;
  /** Higher runs first. Default 0. */
  priority?: number;
  /** Batch ids that must be final before this one runs. */
  after?: string[];
  /** 'succeeded' (default): parents must be COMPLETED, or this batch is cancelled. 'settled': any final state. */
  when?: 'succeeded' | 'settled';
  /** Labels stored with the batch (never secrets). */
  meta?: Record<string, string>;
}

const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', {
  message: 'expected a function',
});

export const engineOptionsSchema = z
  .object({
    jobs: z.array(
      z.custom<JobDefinition>((v) => isDefinedJob(v), {
        message: 'expected a job from defineJob()',
      }),
    ),
    store: z
      .custom<Store>(
        (v) => typeof v === 'object' && v !== null && typeof (v as Store).createBatch === 'function',
        {
          message: 'expected a Store (memoryStore(), sqliteStore(), postgresStore())',
        },
      )
      .optional(),
    workers: z
      .object({
        maxThreads: z.number().int().min(1).optional(),
        minThreads: z.number().int().min(0).optional(),
        idleTimeout: z.number().int().min(0).optional(),
        // Node's ResourceLimits, strictly: a misspelt limit would silently be no limit at all.
        resourceLimits: z
          .object({
            maxOldGenerationSizeMb: z.number().positive().optional(),
            maxYoungGenerationSizeMb: z.number().positive().optional(),
            codeRangeSizeMb: z.number().positive().optional(),
            stackSizeMb: z.number().positive().optional(),
          })
          .strict()
          .optional(),
        loadTimeoutMs: z.number().int().positive().max(MAX_TIMER_MS).optional(),
      })
      .strict()
      .refine(
        (w) => w.minThreads === undefined || w.maxThreads === undefined || w.minThreads <= w.maxThreads,
        {
          message: 'minThreads must not exceed maxThreads',
          path: ['minThreads'],
        },
      )
      .optional(),
    maxConcurrentBatches: z.number().int().min(1).max(100_000).optional(),
    clusterMaxConcurrentBatches: z.number().int().min(1).max(1_000_000).optional(),
    logger: z
      .union([
        z.literal(false),
        z.custom<Logger>(
          (v) => typeof v === 'object' && v !== null && typeof (v as Logger).child === 'function',
          { message: 'expected a pino logger or false' },
        ),
      ])
      .optional(),
    inspect: z
      .custom<Observer<InspectionEvent>>(
        (v) =>
          typeof v === 'function' ||
          (typeof v === 'object' && v !== null && typeof (v as { next?: unknown }).next === 'function'),
        { message: 'expected an inspection function or observer (inspector.inspect)' },
      )
      .optional(),
    flushDelayMs: z.number().int().min(0).max(10_000).optional(),
    // Renewed every third of it; an hour at most, so a lost host is taken over in bounded time.
    leaseTtlMs: z.number().int().min(100).max(3_600_000).optional(),
    yieldAfterMs: z.number().min(0).max(1000).optional(),
    claimIntervalMs: z.number().int().min(10).max(3_600_000).optional(),
    ownerId: z.string().min(1).optional(),
    help: z
      .union(
        [z.boolean(), z.object({ concurrency: z.number().int().min(1).max(10_000).optional() }).strict()],
        {
          error: 'expected true, false or { concurrency: 1 to 10,000 }',
        },
      )
      .optional(),
    onError: fn.optional(),
    clock: z
      .custom<Clock>(
        (v) =>
          typeof v === 'object' &&
          v !== null &&
          ['now', 'setTimeout', 'clearTimeout'].every(
            (m) => typeof (v as Record<string, unknown>)[m] === 'function',
          ),
        { message: 'expected a clock { now(), setTimeout(fn, ms), clearTimeout(handle) }' },
      )
      .optional(),
  })
  .strict();

const statusSchema = z.enum(BATCH_STATUSES as [BatchStatus, ...BatchStatus[]]);

export const waitOptionsSchema = z
  .object({ timeoutMs: z.number().int().min(0).max(MAX_TIMER_MS).optional() })
  .strict();

export const listFilterSchema = z
  .object({
    status: z.union([statusSchema, z.array(statusSchema)]).optional(),
    job: z.string().optional(),
    limit: z.number().int().min(0).max(100_000).optional(),
  })
  .strict();

const finalStatusSchema = z.enum(FINAL_STATUSES as [BatchStatus, ...BatchStatus[]], {
  message: `only ended batches can be pruned: ${FINAL_STATUSES.join(', ')}`,
});

export const pruneOptionsSchema = z
  .object({
    before: z.union(
      [
        z.date().refine((d) => !Number.isNaN(d.getTime()), 'an invalid Date'),
        z.number().finite().min(0).max(8.64e15),
      ],
      { message: 'expected a Date or milliseconds since the epoch' },
    ),
    status: z.union([finalStatusSchema, z.array(finalStatusSchema).min(1)]).optional(),
    job: z.string().optional(),
    limit: z.number().int().min(1).max(1_000_000_000).optional(),
  })
  .strict();

export const partitionFilterSchema = z
  .object({ status: z.enum(['pending', 'succeeded', 'failed']).optional() })
  .strict();

export const submitOptionsSchema = z
  .object({
    id: z.string().min(1).max(200).optional(),
    priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
    after: z.array(z.string().min(1)).optional(),
    when: z.enum(['succeeded', 'settled']).optional(),
    // Labels, stored with the record and returned in every summary: bounded like one.
    meta: z
      .record(z.string().min(1).max(100), z.string().max(1000))
      .refine((m) => Object.keys(m).length <= 64, 'at most 64 labels')
      .optional(),
  })
  .strict();
