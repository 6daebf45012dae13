/**
 * Types for job handlers: `import type { PartitionContext } from 'partita/worker'`.
 * This entry has no runtime code, so a worker module can import it without loading the engine.
 */

/** What a partition's handler receives besides its payload. */
export interface PartitionContext {
  /** The batch this partition belongs to. */
  batchId: string;
  /** The partition's key, unique within the batch. */
  key: string;
  /** 1 for the first attempt; retries and redeliveries after a restart count up. */
  attempt: number;
  /**
   * True when the engine knows this partition was in flight when it stopped or crashed (its last
   * saved state says so). A partition dispatched in the last few milliseconds before a crash can
   * run again with `redelivered: false`: make side effects idempotent with `idempotencyKey` either way.
   */
  redelivered: boolean;
  /** `${batchId}:${key}`: the same for every attempt; use it to make side effects idempotent. */
  idempotencyKey: string;
  /** Aborted on cancel and timeout (inline handlers). A worker thread is terminated instead. */
  signal: AbortSignal;
  /**
   * Report progress within this partition (numbers only; at most one report per 100 ms reaches the
   * engine, the last one, `done === total`, always): `done / total` of it
   * counts in its batch's `progress` while it runs.
   */
  progress(done: number, total?: number): void;
}

/**
 * The default export of a worker module.
 *
 * @example
 * ```js
 * // salary.worker.js
 * export default async function recalc({ user, day }, ctx) {
 *   const rows = await recalculate(user, day, { idempotencyKey: ctx.idempotencyKey });
 *   return { rows };
 * }
 * ```
 */
export type PartitionHandler<P = unknown, R = unknown> = (
  payload: P,
  ctx: PartitionContext,
) => R | Promise<R>;
