import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import { CancelledError, serializeError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { LaneEvent } from '../machines/partition.js';
import { returnedAnswer, thrownAnswer } from '../workers/answers.js';
import type { WorkerPool } from '../workers/pool.js';
import type { RunResult } from '../workers/protocol.js';

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

  /**
   * Start the attempt; `report` receives exactly one WORK.DONE or WORK.FAILED unless `signal` aborts.
   * `started` is called when the attempt actually runs (at once inline; on a worker thread, when the
   * thread takes the task, before it imports the job's module), for jobs with a timeout: time spent
   * waiting for a thread does not count, importing the module does. A module that does not finish
   * loading within `timeoutMs` (jobs without one: the pool's `loadTimeoutMs`) fails the attempt with
   * WORKER_LOAD, shortly before the timeout would fire, and its thread is replaced.
   */
  start(a: Attempt, signal: AbortSignal, report: (event: LaneEvent) => void, started?: () => void): void {
    const t0 = performance.now();
    const answer = (res: RunResult) => {
      if (signal.aborted) return;
      const durationMs = performance.now() - t0;
      // Results a worker could not check (schemas JSON Schema cannot express) are checked here.
      const checked =
        res.ok && this.mainThreadSchema ? returnedAnswer(res.result, this.mainThreadSchema) : res;
      if (checked.ok) {
        report({ type: 'WORK.DONE', index: a.index, attempt: a.attempt, result: checked.result, durationMs });
      } else {
        report({
          type: 'WORK.FAILED',
          index: a.index,
          attempt: a.attempt,
          error: checked.error,
          retryable: checked.retryable,
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
      // Storability is checked here (as the runner does on a worker thread); the schema (if any) in
      // `answer`, as for worker results.
      return returnedAnswer(result, undefined);
    } catch (err) {
      return thrownAnswer(err);
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
      else if (msg.done !== undefined)
        report({
          type: 'WORK.PROGRESS',
          index: a.index,
          attempt: a.attempt,
          done: msg.done,
          total: msg.total,
        });
    });
  }
}
