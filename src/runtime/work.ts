import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import { CancelledError, serializeError, toError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { LaneEvent } from '../machines/partition.js';
import type { WorkerPool } from '../workers/pool.js';
import type { RunResult } from '../workers/protocol.js';
import { notStorable } from '../workers/storable.js';

/** One attempt of one partition, as the lane's `startWork` action describes it. */
export interface Attempt {
  batchId: string;
  index: number;
  key: string;
  attempt: number;
  redelivered: boolean;
  payload: unknown;
}

export type AnyJob = AnyJobDefinition;

/**
 * Runs attempts for one job: on the worker pool, or inline for `handler` jobs, and turns every
 * answer into the lane event that reports it. Handler errors, timeouts, crashes and cancels all
 * become events; nothing here throws into the actor.
 */
export class WorkRunner {
  /** Check results on the main thread (inline handlers, schemas JSON Schema cannot express). */
  private readonly mainThreadSchema: z.ZodType | undefined;

  constructor(
    private readonly job: AnyJob,
    private readonly pool: WorkerPool | undefined,
    workerValidatesResult: boolean,
  ) {
    this.mainThreadSchema = workerValidatesResult ? undefined : (job.result as z.ZodType | undefined);
  }

  /** Start the attempt; `report` receives exactly one WORK.DONE or WORK.FAILED unless `signal` aborts. */
  /**
   * `started` is called when the attempt actually runs (at once inline; on a worker thread, when the
   * thread takes the task), for jobs with a timeout: time spent waiting for a thread does not count.
   */
  start(a: Attempt, signal: AbortSignal, report: (event: LaneEvent) => void, started?: () => void): void {
    const t0 = performance.now();
    const answer = (res: RunResult) => {
      if (signal.aborted) return;
      const durationMs = performance.now() - t0;
      if (res.ok) {
        const invalid = this.checkResult(res.result);
        if (invalid)
          report({
            type: 'WORK.FAILED',
            index: a.index,
            attempt: a.attempt,
            error: invalid,
            retryable: false,
            durationMs,
          });
        else
          report({ type: 'WORK.DONE', index: a.index, attempt: a.attempt, result: res.result, durationMs });
      } else {
        report({
          type: 'WORK.FAILED',
          index: a.index,
          attempt: a.attempt,
          error: res.error,
          retryable: res.retryable,
          durationMs,
        });
      }
    };
    const crashed = (err: unknown) => {
      if (signal.aborted) return;
      const durationMs = performance.now() - t0;
      report({
        type: 'WORK.FAILED',
        index: a.index,
        attempt: a.attempt,
        error: serializeError(err),
        retryable: true,
        durationMs,
      });
    };
    if (this.job.handler) {
      started?.();
      this.runInline(a, signal, report).then(answer, crashed);
    } else this.runOnPool(a, signal, report, started).then(answer, crashed);
  }

  private async runInline(
    a: Attempt,
    signal: AbortSignal,
    report: (event: LaneEvent) => void,
  ): Promise<RunResult> {
    try {
      const result = await this.job.handler!(a.payload as never, {
        batchId: a.batchId,
        key: a.key,
        attempt: a.attempt,
        redelivered: a.redelivered,
        idempotencyKey: `${a.batchId}:${a.key}`,
        signal,
        progress: (done, total) =>
          report({ type: 'WORK.PROGRESS', index: a.index, attempt: a.attempt, done, total }),
      });
      if (signal.aborted) throw new CancelledError('aborted');
      const unstorable = notStorable(result);
      if (unstorable) return { ok: false, error: unstorable, retryable: false };
      return { ok: true, result };
    } catch (err) {
      return {
        ok: false,
        error: serializeError(err),
        retryable: (toError(err) as { retryable?: unknown }).retryable !== false,
      };
    }
  }

  private runOnPool(
    a: Attempt,
    signal: AbortSignal,
    report: (event: LaneEvent) => void,
    started: (() => void) | undefined,
  ): Promise<RunResult> {
    const pool = this.pool!;
    const task = {
      taskId: pool.taskId(),
      job: this.job.name,
      batchId: a.batchId,
      key: a.key,
      attempt: a.attempt,
      redelivered: a.redelivered,
      payload: a.payload,
    };
    return pool.run(task, signal, (msg) => {
      if (msg.started) started?.();
      else
        report({
          type: 'WORK.PROGRESS',
          index: a.index,
          attempt: a.attempt,
          done: msg.done ?? 0,
          total: msg.total,
        });
    });
  }

  private checkResult(result: unknown) {
    if (!this.mainThreadSchema) return undefined;
    const parsed = this.mainThreadSchema.safeParse(result);
    if (parsed.success) return undefined;
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    return {
      name: 'ResultValidationError',
      message: `Result does not match the job's result schema: ${issues}`,
      code: 'RESULT_INVALID',
    };
  }
}
