import { type SerializedError, ValidationError } from './errors.js';

/** The states a batch passes through; the last four are final. */
export type BatchStatus =
  | 'QUEUED'
  | 'PROCESSING'
  | 'PAUSED'
  | 'FINALIZING'
  | 'COMPLETED'
  | 'PARTIAL'
  | 'FAILED'
  | 'CANCELLED';

/** Every status, in the order a batch can pass through them. */
export const BATCH_STATUSES: readonly BatchStatus[] = [
  'QUEUED',
  'PROCESSING',
  'PAUSED',
  'FINALIZING',
  'COMPLETED',
  'PARTIAL',
  'FAILED',
  'CANCELLED',
];

/** The final statuses: the one definition (stores, admission and views use it). */
export const FINAL_STATUSES: readonly BatchStatus[] = ['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED'];

const finals: ReadonlySet<BatchStatus> = new Set(FINAL_STATUSES);

export function isFinalStatus(status: BatchStatus): boolean {
  return finals.has(status);
}

/** One failed partition, as listed in {@link BatchSummary.failures}. */
export interface PartitionFailure {
  key: string;
  error: SerializedError;
  attempts: number;
}

/**
 * What `engine.get`, `engine.wait` and `engine.subscribe` report about a batch.
 * `succeeded + failed + running + pending === total` at every moment.
 */
export interface BatchSummary {
  id: string;
  job: string;
  status: BatchStatus;
  total: number;
  succeeded: number;
  failed: number;
  running: number;
  pending: number;
  /**
   * (succeeded + failed) / total, 1 for an empty batch that has finished; while it runs, plus the
   * fraction each running partition reported with `ctx.progress(done, total)` (on the engine that
   * runs it; not stored). Never decreases while the batch runs.
   */
  progress: number;
  /** The first 100 failed partitions. The full list: `engine.partitions(id, { status: 'failed' })`. */
  failures: PartitionFailure[];
  /** "3 of 10 partitions failed", when any failed. */
  errorSummary?: string;
  /** What the job's `finalize` returned. */
  output?: unknown;
  /** Why the batch FAILED or was CANCELLED, when the reason is not partition failures alone. */
  error?: SerializedError;
  priority: number;
  /** Which run this is, after `engine.retryFailed`: 2 for the first redrive (absent before any). */
  run?: number;
  /** The batches its job's `triggers` submitted when it ended (or why one could not be). */
  triggered?: Array<{ job: string; id: string; error?: SerializedError }>;
  /** The labels given at submit (`meta`). */
  meta?: Record<string, string>;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
}

/** Limits beyond which a batch with some failures is FAILED rather than PARTIAL. */
export interface FailurePolicy {
  /** More failed partitions than this fails the batch. */
  maxFailures?: number | undefined;
  /** A larger failed/total ratio than this fails the batch (0..1). */
  maxFailureRatio?: number | undefined;
}

export interface OutcomeCounts {
  total: number;
  succeeded: number;
  failed: number;
}

/**
 * The final status of a batch as a pure function of its counts and the job's failure policy
 * (docs/guarantees.md). An empty batch is COMPLETED; a batch where every partition failed is FAILED.
 *
 * @example
 * ```ts
 * decideOutcome({ total: 10, succeeded: 7, failed: 3 }) // 'PARTIAL'
 * decideOutcome({ total: 10, succeeded: 7, failed: 3 }, { maxFailures: 2 }) // 'FAILED'
 * ```
 */
export function decideOutcome(
  counts: OutcomeCounts,
  policy: FailurePolicy = {},
): 'COMPLETED' | 'PARTIAL' | 'FAILED' {
  checkOutcomeArguments(counts, policy);
  return uncheckedOutcome(counts, policy);
}

/**
 * decideOutcome without its checks, for the batch machine's guards: counts the machine keeps are
 * whole numbers, and a guard that threw (counts over the total, from a bug or a stored state) would
 * stop the batch's actor rather than end the batch.
 */
export function uncheckedOutcome(
  counts: OutcomeCounts,
  policy: FailurePolicy = {},
): 'COMPLETED' | 'PARTIAL' | 'FAILED' {
  const { total, succeeded, failed } = counts;
  if (failed === 0) return 'COMPLETED';
  if (succeeded === 0 && total > 0) return 'FAILED';
  if (policy.maxFailures !== undefined && failed > policy.maxFailures) return 'FAILED';
  if (policy.maxFailureRatio !== undefined && total > 0 && failed / total > policy.maxFailureRatio)
    return 'FAILED';
  return 'PARTIAL';
}

/** A VALIDATION error for what is not counts and a failure policy (a public function: no TypeError). */
function checkOutcomeArguments(counts: unknown, policy: unknown): void {
  const count = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  const c = counts as Partial<OutcomeCounts> | null | undefined;
  const issues: { path: string; message: string }[] = [];
  if (typeof c !== 'object' || c === null)
    issues.push({ path: 'counts', message: 'expected { total, succeeded, failed }' });
  else
    for (const k of ['total', 'succeeded', 'failed'] as const)
      if (!count(c[k])) issues.push({ path: `counts.${k}`, message: 'expected a whole number >= 0' });
  if (issues.length === 0 && c!.succeeded! + c!.failed! > c!.total!)
    issues.push({ path: 'counts', message: 'succeeded + failed is more than total' });
  const p = policy as Partial<FailurePolicy> | null;
  if (typeof p !== 'object' || p === null)
    issues.push({ path: 'policy', message: 'expected { maxFailures?, maxFailureRatio? }' });
  else {
    if (p.maxFailures !== undefined && !count(p.maxFailures))
      issues.push({ path: 'policy.maxFailures', message: 'expected a whole number >= 0' });
    const r = p.maxFailureRatio;
    if (r !== undefined && !(typeof r === 'number' && r >= 0 && r <= 1))
      issues.push({ path: 'policy.maxFailureRatio', message: 'expected a number from 0 to 1' });
  }
  if (issues.length > 0)
    throw new ValidationError(
      `decideOutcome: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    );
}

/** "3 of 10 partitions failed", or undefined when none failed. */
export function describeFailures(counts: OutcomeCounts): string | undefined {
  if (counts.failed === 0) return undefined;
  const noun = counts.total === 1 ? 'partition' : 'partitions';
  return `${counts.failed} of ${counts.total} ${noun} failed`;
}
