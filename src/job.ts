import { statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { MAX_TIMER_MS } from './engine-options.js';
import { ValidationError } from './errors.js';
import { markJob } from './job-mark.js';
import type { BatchSummary, FailurePolicy } from './summary.js';
import { parseOrThrow } from './validation.js';
import { MAX_JOB_NAME_LENGTH } from './values.js';
import type { PartitionContext } from './worker.js';

/** One unit of work produced by a job's `partition` function. */
export interface Partition<P = unknown> {
  /** Unique within the batch; names the partition in outcomes, logs and `engine.partitions()`. */
  key: string;
  /** Passed to the worker or handler. Must be structured-clonable and JSON-serializable (it is stored). */
  payload: P;
}

export interface RetryOptions {
  /** Attempts in total, including the first. Default 1 (no retry). */
  attempts?: number;
  /** Delay before the second attempt; doubles each time. Default 100. */
  backoffMs?: number;
  /** Upper bound of the delay. Default 30,000. */
  maxBackoffMs?: number;
}

/** Context passed to a job's `finalize` hook. */
export interface FinalizeContext {
  batchId: string;
  signal: AbortSignal;
}

/**
 * What `defineJob` takes. Give exactly one of `worker` (a module run on a worker thread) or `handler` (inline).
 * `I` is what `partition` receives: the `input` schema's output. `In` is what `submit` takes: the
 * schema's input, which differs with `.default()`, `z.coerce` or `.transform()` (without a schema,
 * both are `partition`'s parameter).
 */
export interface JobOptions<I = unknown, P = unknown, R = unknown, O = unknown, In = I> {
  /** Unique name, /^[a-z0-9][a-z0-9._-]*$/. */
  name: string;
  /** Validates the input given to `submit` (and parses it: `partition` gets what it outputs). Rejected input stores nothing. */
  input?: z.ZodType<I, In>;
  /**
   * Splits the input into partitions. May return an Iterable (an array), an AsyncIterable (an
   * `async function*`), or a promise of an Iterable (an `async function` returning its array).
   */
  partition: (
    input: I,
  ) => Iterable<Partition<P>> | AsyncIterable<Partition<P>> | PromiseLike<Iterable<Partition<P>>>;
  /** File URL (or absolute path) of an ES module whose default export is `async (payload, ctx) => result`. */
  worker?: URL | string;
  /** Inline handler on the main thread, for I/O-bound work. Same contract as a worker module. */
  handler?: (payload: P, ctx: PartitionContext) => R | Promise<R>;
  /** Validates each partition's result (inside the worker when the schema is JSON-schema representable). */
  result?: z.ZodType<R>;
  retry?: RetryOptions;
  /** A partition running longer than this fails with TIMEOUT (and is retried if attempts remain). */
  timeoutMs?: number;
  /**
   * Tasks of one batch in flight at once, its lanes (1 to 1,024): a partition each, or a group of
   * partitions each with item batching (`batching`). Default 16. A worker job's batch gets at most
   * four lanes per pool thread (`workers.maxThreads`): more would only wait in the pool's queue.
   */
  concurrency?: number;
  failurePolicy?: FailurePolicy;
  /** Runs once when all partitions have settled; its return value becomes `summary.output`. */
  finalize?: (summary: BatchSummary, ctx: FinalizeContext) => O | Promise<O>;
  /**
   * Longest time one call of `finalize` may take, or one trigger's `input`. A `finalize` call that
   * takes longer fails with TIMEOUT (its `ctx.signal` aborts) and is retried if attempts remain; a
   * trigger input that takes longer is recorded on the parent with TIMEOUT. Default: none (never).
   */
  finalizeTimeoutMs?: number;
  /**
   * At most `max` partitions of this job start in any `perMs` window (a sliding window, shared by
   * every batch of the job on this engine), for partitions that call rate-limited APIs.
   */
  rateLimit?: RateLimit;
  /**
   * Item batching: run several consecutive partitions as one task (one pool task, or one inline
   * call loop) and count their outcomes as one event, each member still with its own outcome,
   * attempts, retries, timeout and idempotency key (docs/guide.md, "Item batching").
   * `'auto'` (the default) sizes groups from the measured work time: short partitions are grouped by
   * dozens, a worker partition of 10 ms or more (inline: 2 ms) is never grouped. `{ maxItems }` always
   * groups up to that many; `false` runs one partition per task. A job with a `rateLimit` is not
   * grouped under `'auto'`.
   */
  batching?: BatchingOption;
  /**
   * One batch on many hosts (docs/scaling.md, "One batch on many hosts"): on a store that engines
   * share (PostgreSQL, or one SQLite file), the batch's partitions are offered in ranges of
   * `rangeSize` (default 100) that every engine with this job and `help: true` claims and runs on its
   * own pool; the batch's owner still counts every outcome exactly once. `concurrency` is then the
   * number of ranges out at once. Without a shared store (memoryStore) the batch runs where it is.
   * Not with a `rateLimit` (a limit per engine).
   */
  distribute?: DistributeOption;
  /**
   * Batches to submit when a batch of this job ends (seed 004's chains): each child gets the id
   * `${parentId}>${job}`, so it is submitted exactly once, also across a crash.
   */
  triggers?: readonly Trigger[];
}

/** A batch of `job` submitted when a batch of the declaring job ends as `when` says. */
export interface Trigger {
  job: string;
  /** 'succeeded': COMPLETED; 'failed': PARTIAL or FAILED; 'settled': any of the three (never CANCELLED). */
  when: 'succeeded' | 'failed' | 'settled';
  /**
   * The child's input, from the parent's final summary (or a promise of it: awaited). A throw or a
   * rejection is recorded on the parent.
   */
  input: (parent: BatchSummary) => unknown;
}

/** A job's `distribute` option. */
export type DistributeOption = boolean | { rangeSize?: number };

/** Partitions in a range when `distribute: true` does not say. */
export const DEFAULT_RANGE_SIZE = 100;

/** A job's `batching` option. */
export type BatchingOption = 'auto' | { maxItems: number } | false;

/** The most partitions `'auto'` puts in one group. */
export const AUTO_MAX_ITEMS = 64;

/** A job's rate limit: `max` partition starts per `perMs` milliseconds, per engine. */
export interface RateLimit {
  max: number;
  perMs: number;
}

/** A validated job definition, as `createEngine({ jobs })` takes it. Its types as {@link JobOptions}'. */
export interface JobDefinition<I = unknown, P = unknown, R = unknown, O = unknown, In = I> {
  readonly name: string;
  readonly input: z.ZodType<I, In> | undefined;
  readonly partition: (
    input: I,
  ) => Iterable<Partition<P>> | AsyncIterable<Partition<P>> | PromiseLike<Iterable<Partition<P>>>;
  /** The worker module's file URL (href), fixed here and never taken from batch input. */
  readonly workerUrl: string | undefined;
  readonly handler: ((payload: P, ctx: PartitionContext) => R | Promise<R>) | undefined;
  readonly result: z.ZodType<R> | undefined;
  readonly retry: Required<RetryOptions>;
  readonly timeoutMs: number | undefined;
  readonly concurrency: number;
  readonly failurePolicy: FailurePolicy;
  readonly finalize: ((summary: BatchSummary, ctx: FinalizeContext) => O | Promise<O>) | undefined;
  /** Longest call of `finalize` (each retry its own), or of a trigger's `input`. */
  readonly finalizeTimeoutMs: number | undefined;
  readonly rateLimit: RateLimit | undefined;
  readonly triggers: readonly Trigger[];
  /** Item batching, resolved: absent when partitions run one per task. */
  readonly batching: { maxItems: number; auto: boolean } | undefined;
  /** `distribute`, resolved: absent when the job's batches run on their owner only. */
  readonly distribute: { rangeSize: number } | undefined;
}

const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', {
  message: 'expected a function',
});
const zodSchema = z.custom<z.ZodType>(
  (v) => v instanceof Object && typeof (v as z.ZodType).safeParse === 'function',
  {
    message: 'expected a zod schema',
  },
);

const jobOptionsSchema = z
  .object({
    name: z
      .string()
      .max(MAX_JOB_NAME_LENGTH)
      .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must match /^[a-z0-9][a-z0-9._-]*$/'),
    input: zodSchema.optional(),
    partition: fn,
    worker: z
      .union([
        z.instanceof(URL).refine((u) => u.protocol === 'file:', 'must be a file: URL'),
        z
          .string()
          .refine(
            (s) => s.startsWith('file:') || s.startsWith('/'),
            'must be a file URL or an absolute path',
          ),
      ])
      .optional(),
    handler: fn.optional(),
    result: zodSchema.optional(),
    retry: z
      .object({
        attempts: z.number().int().min(1).max(100).optional(),
        backoffMs: z.number().int().min(0).max(MAX_TIMER_MS).optional(),
        maxBackoffMs: z.number().int().min(0).max(MAX_TIMER_MS).optional(),
      })
      .strict()
      .optional(),
    timeoutMs: z.number().int().positive().max(MAX_TIMER_MS).optional(),
    // At most 1,024 lanes: starting and ending a batch is O(lanes) (docs/architecture.md, "Lanes."),
    // but every lane still costs memory and a share of each context copy.
    concurrency: z.number().int().min(1).max(1024).optional(),
    triggers: z
      .array(
        z
          .object({
            job: z
              .string()
              .max(MAX_JOB_NAME_LENGTH)
              .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be a job name'),
            when: z.enum(['succeeded', 'failed', 'settled']),
            input: fn,
          })
          .strict(),
      )
      .max(100)
      .optional(),
    rateLimit: z
      .object({
        max: z.number().int().min(1).max(1_000_000),
        perMs: z.number().int().min(1).max(MAX_TIMER_MS),
      })
      .strict()
      .optional(),
    failurePolicy: z
      .object({
        maxFailures: z.number().int().min(0).optional(),
        maxFailureRatio: z.number().min(0).max(1).optional(),
      })
      .strict()
      .optional(),
    finalize: fn.optional(),
    finalizeTimeoutMs: z.number().int().positive().max(MAX_TIMER_MS).optional(),
    batching: z
      .union(
        [
          z.literal('auto'),
          z.literal(false),
          z.object({ maxItems: z.number().int().min(1).max(10_000) }).strict(),
        ],
        { error: "expected 'auto', false or { maxItems: 1 to 10,000 }" },
      )
      .optional(),
    distribute: z
      .union(
        [z.boolean(), z.object({ rangeSize: z.number().int().min(1).max(10_000).optional() }).strict()],
        {
          error: 'expected true, false or { rangeSize: 1 to 10,000 }',
        },
      )
      .optional(),
  })
  .strict()
  .refine((o) => !(o.rateLimit && o.distribute !== undefined && o.distribute !== false), {
    message: 'a job with a `rateLimit` (a limit per engine) cannot be distributed',
    path: ['distribute'],
  })
  .refine((o) => !(o.rateLimit && typeof o.batching === 'object' && o.batching.maxItems > 1), {
    message: "a job with a `rateLimit` runs one partition per task: use `batching: false` or `'auto'`",
    path: ['batching'],
  })
  .refine((o) => (o.worker === undefined) !== (o.handler === undefined), {
    message: 'give exactly one of `worker` (module URL) or `handler` (inline function)',
    path: ['worker'],
  });

/**
 * Define a job: how to validate its input, split it into partitions, and run each partition.
 * Throws a ValidationError (code VALIDATION) naming each bad option.
 *
 * @example
 * ```ts
 * export const salaryRecalc = defineJob({
 *   name: 'salary-recalc',
 *   input: z.object({ users: z.array(z.string()), days: z.array(z.string()) }),
 *   partition: ({ users, days }) => users.flatMap((u) => days.map((d) => ({ key: `${u}:${d}`, payload: { u, d } }))),
 *   worker: new URL('./salary.worker.js', import.meta.url),
 *   retry: { attempts: 3, backoffMs: 100 },
 *   timeoutMs: 30_000,
 *   concurrency: 16,
 * });
 * ```
 */
export function defineJob<I = unknown, P = unknown, R = unknown, O = unknown, In = I>(
  options: JobOptions<I, P, R, O, In>,
): JobDefinition<I, P, R, O, In> {
  const o = parseOrThrow(jobOptionsSchema, options, `job definition${nameOf(options)}`);
  const worker = o.worker === undefined ? undefined : toFileUrl(o.worker);
  // A missing module (or a directory) would otherwise fail every partition, one by one, at run time.
  const missing = worker && notAFile(fileURLToPath(worker));
  if (missing) {
    throw new ValidationError(
      `Invalid job definition "${o.name}": worker module ${missing}: ${fileURLToPath(worker)}`,
      [{ path: 'worker', message: missing }],
    );
  }
  return markJob({
    name: o.name,
    input: options.input,
    partition: options.partition,
    workerUrl: worker,
    handler: options.handler,
    result: options.result,
    retry: {
      attempts: o.retry?.attempts ?? 1,
      backoffMs: o.retry?.backoffMs ?? 100,
      maxBackoffMs: o.retry?.maxBackoffMs ?? 30_000,
    },
    timeoutMs: o.timeoutMs,
    concurrency: o.concurrency ?? 16,
    rateLimit: o.rateLimit ? { ...o.rateLimit } : undefined,
    triggers: (options.triggers ?? []).map((t) => ({ ...t })),
    failurePolicy: { ...o.failurePolicy },
    finalize: options.finalize,
    finalizeTimeoutMs: o.finalizeTimeoutMs,
    batching: resolveBatching(o.batching, o.rateLimit !== undefined),
    distribute:
      o.distribute === undefined || o.distribute === false
        ? undefined
        : { rangeSize: (o.distribute === true ? undefined : o.distribute.rangeSize) ?? DEFAULT_RANGE_SIZE },
  });
}

/** Why `path` cannot be a worker module, or undefined when it is a file. */
function notAFile(path: string): string | undefined {
  try {
    const stat = statSync(path);
    return stat.isFile() ? undefined : stat.isDirectory() ? 'is a directory' : 'is not a file';
  } catch {
    return 'not found';
  }
}

function resolveBatching(
  option: BatchingOption | undefined,
  rateLimited: boolean,
): { maxItems: number; auto: boolean } | undefined {
  if (option === false) return undefined;
  if (option === undefined || option === 'auto')
    // Members of a group start together: a rate limit counts starts, so it is not grouped.
    return rateLimited ? undefined : { maxItems: AUTO_MAX_ITEMS, auto: true };
  return option.maxItems > 1 ? { maxItems: option.maxItems, auto: false } : undefined;
}

function nameOf(options: unknown): string {
  const name = (options as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? ` "${name}"` : '';
}

function toFileUrl(worker: URL | string): string {
  if (worker instanceof URL) return worker.href;
  if (worker.startsWith('file:')) return worker;
  return pathToFileURL(worker).href;
}

/** A job of any input, payload, result and output types (what `createEngine({ jobs })` holds). */
// biome-ignore lint/suspicious/noExplicitAny: jobs of different types live in one list
export type AnyJobDefinition = JobDefinition<any, any, any, any>;

/**
 * A job that `submit` takes input `In` for (its `input` schema's input type), whatever its other
 * types (what `engine.submit` and `engine.schedule` accept).
 */
// biome-ignore lint/suspicious/noExplicitAny: only the input type matters to submit()
export type JobWithInput<In> = JobDefinition<any, any, any, any, In>;
