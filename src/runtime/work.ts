import { performance } from 'node:perf_hooks';
import type { z } from 'zod';
import { CancelledError, type SerializedError, serializeError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { LaneEvent, MemberAnswer } from '../machines/partition.js';
import { UnreadablePayload } from '../store/unreadable-payload.js';
import { isThenable } from '../values.js';
import { returnedAnswer, thrownAnswer } from '../workers/answers.js';
import type { WorkerPool } from '../workers/pool.js';
import { throttledProgress } from '../workers/progress-throttle.js';
import type { GroupResult, RunResult, StaleAnswer } from '../workers/protocol.js';
import { currentTurn, turnPassed } from './turns.js';

/** One attempt of one partition, as the lane's `startWork` action describes it. */
export interface Attempt {
  batchId: string;
  index: number;
  key: string;
  attempt: number;
  redelivered: boolean;
  payload: unknown;
  /** On the pool: a thread that takes the task at this `Date.now()` or later runs nothing (protocol.ts). */
  freshUntil?: number | undefined;
}

/** One attempt of a group of partitions (item batching): `index` is its first member's. */
export interface GroupAttempt {
  batchId: string;
  index: number;
  attempt: number;
  redelivered: boolean;
  members: { key: string; payload: unknown }[];
  /** The members' partition indexes, in member order (a range offered to other engines names them). */
  indexes?: number[] | undefined;
  /** As {@link Attempt.freshUntil}. */
  freshUntil?: number | undefined;
}

/**
 * Told to the lane driver, not to the lane: the attempt did not run, because a thread took it from
 * the pool's queue after its batch's lease could have expired (protocol.ts, `StaleAnswer`). The
 * driver renews the lease and starts it again, or the batch is given up.
 */
export interface WorkStale {
  type: 'WORK.STALE';
}

/** What a runner reports: the lane's events, and {@link WorkStale}. */
export type RunnerEvent = LaneEvent | WorkStale;

const WORK_STALE: WorkStale = { type: 'WORK.STALE' };

export type AnyJob = AnyJobDefinition;

/**
 * Lanes per pool thread for a worker job's batch: one task running on the thread and three waiting,
 * so that a thread finds its next task queued while the engine's thread handles the last answer.
 * Measured (docs/benchmarks.md, "A worker job's lanes"): 1,000,000 no-op partitions on 2 threads
 * peaked at 365–387 MB RSS with 256 lanes and 267 MB with 8, and ran no slower with 8.
 */
export const LANES_PER_THREAD = 4;

/**
 * What runs a lane's attempts: {@link WorkRunner} here (the pool, or inline), or a RemoteRunner
 * (remote-work.ts) that offers them as ranges to the engines sharing the store (`distribute`).
 */
export interface Runner {
  readonly parallelism: number | undefined;
  /** The most lanes a batch of this job gets (its job's `concurrency` above it would only queue); undefined: no limit. */
  readonly maxLanes: number | undefined;
  /** Runs its attempts elsewhere: groups name their members' indexes. */
  readonly remote?: boolean;
  start(a: Attempt, signal: AbortSignal, report: (event: RunnerEvent) => void, started?: () => void): void;
  startGroup(
    g: GroupAttempt,
    signal: AbortSignal,
    report: (event: RunnerEvent) => void,
    started?: () => void,
  ): void;
}

/**
 * Runs attempts for one job: on the worker pool, or inline for `handler` jobs, and turns every
 * answer into the lane event that reports it. Handler errors, timeouts, crashes and cancels all
 * become events; nothing here throws into the actor.
 */
export class WorkRunner implements Runner {
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
   * A worker job's batch gets at most {@link LANES_PER_THREAD} lanes per pool thread: a thread runs
   * one task at a time, so a task beyond that only waits in the pool's queue, and what it holds
   * (its members, its lane's state) lives long enough to be promoted to the old generation. An
   * inline handler's lanes may each wait for I/O: its `concurrency` is the limit.
   */
  get maxLanes(): number | undefined {
    if (this.job.handler || !this.pool) return undefined;
    return Math.floor(this.pool.maxThreads * LANES_PER_THREAD);
  }

  /**
   * How many groups of this job can run at the same time at most: the pool's threads for a worker
   * job. For an inline handler grouped by `'auto'`, one: `'auto'` groups only members that wait for
   * nothing, which all run on the one main thread. Otherwise (fixed groups of an inline handler,
   * which may wait for I/O) none is given, and the lanes are the limit.
   */
  get parallelism(): number | undefined {
    if (!this.job.handler) return this.pool?.maxThreads;
    return this.job.batching?.auto ? 1 : undefined;
  }

  /**
   * Start the attempt; `report` receives exactly one WORK.DONE or WORK.FAILED unless `signal` aborts.
   * `started` is called when the attempt actually runs (at once inline; on a worker thread, when the
   * thread takes the task, before it imports the job's module), for jobs with a timeout: time spent
   * waiting for a thread does not count, importing the module does. A module that does not finish
   * loading within `timeoutMs` (jobs without one: the pool's `loadTimeoutMs`) fails the attempt with
   * WORKER_LOAD, shortly before the timeout would fire, and its thread is replaced.
   */
  start(a: Attempt, signal: AbortSignal, report: (event: RunnerEvent) => void, started?: () => void): void {
    const t0 = performance.now();
    const answer = (res: RunResult | StaleAnswer) => {
      if (signal.aborted) return;
      if ('stale' in res) return report(WORK_STALE);
      const durationMs = performance.now() - t0;
      // Results a worker could not check (schemas JSON Schema cannot express) are checked here.
      const checked =
        res.ok && this.mainThreadSchema ? returnedAnswer(res.result, this.mainThreadSchema) : res;
      const workMs = res.ms ?? durationMs;
      if (checked.ok) {
        report({
          type: 'WORK.DONE',
          index: a.index,
          attempt: a.attempt,
          result: checked.result,
          durationMs,
          workMs,
        });
      } else {
        report({
          type: 'WORK.FAILED',
          index: a.index,
          attempt: a.attempt,
          error: checked.error,
          retryable: checked.retryable,
          durationMs,
          workMs,
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

  /**
   * Start a group's attempt: its members one after the other, in one pool task (or one inline
   * loop). `report` receives one WORK.ANSWERED (an answer per member) or, when the task failed as a
   * whole (its thread died, its module did not load), one WORK.FAILED, unless `signal` aborts.
   * `started` as for {@link start}: the group's timeout bounds the whole group.
   */
  startGroup(
    g: GroupAttempt,
    signal: AbortSignal,
    report: (event: RunnerEvent) => void,
    started?: () => void,
  ): void {
    const t0 = performance.now();
    const answered = (answers: MemberAnswer[]) => {
      if (signal.aborted) return;
      let workMs = 0;
      for (let i = 0; i < answers.length; i++) {
        const a = answers[i]!;
        workMs += a.ms;
        if (a.ok && this.mainThreadSchema) {
          const checked = returnedAnswer(a.result, this.mainThreadSchema);
          if (!checked.ok) answers[i] = { ...checked, ms: a.ms };
        }
      }
      report({ type: 'WORK.ANSWERED', index: g.index, attempt: g.attempt, answers, workMs });
    };
    const failed = (res: { error: SerializedError; retryable: boolean }) => {
      if (signal.aborted) return;
      const durationMs = performance.now() - t0;
      report({ type: 'WORK.FAILED', index: g.index, attempt: g.attempt, ...res, durationMs });
    };
    const crashed = (err: unknown) => failed({ error: serializeError(err), retryable: true });
    if (this.job.handler) {
      started?.();
      this.runInlineGroup(g, signal, report).then(answered, crashed);
      return;
    }
    // Members whose payload is unreadable are answered here; the thread runs the others.
    const members = g.members.some((m) => m.payload instanceof UnreadablePayload)
      ? g.members.filter((m) => !(m.payload instanceof UnreadablePayload))
      : g.members;
    if (members.length === 0) {
      started?.();
      void Promise.resolve(withUnreadable(g.members, [])).then(answered);
      return;
    }
    const pool = this.pool!;
    const task = {
      taskId: pool.taskId(),
      job: this.job.name,
      batchId: g.batchId,
      key: '',
      attempt: g.attempt,
      redelivered: g.redelivered,
      payload: undefined,
      members,
      freshUntil: g.freshUntil,
    };
    pool
      .run<GroupResult | StaleAnswer>(task, signal, (msg) => {
        if (msg.started) started?.();
        else if (msg.done !== undefined)
          report({
            type: 'WORK.PROGRESS',
            index: g.index,
            attempt: g.attempt,
            done: msg.done,
            total: msg.total,
          });
      })
      .then((res) => {
        if (signal.aborted) return;
        if ('stale' in res) report(WORK_STALE);
        else if ('group' in res)
          answered(members === g.members ? res.group : withUnreadable(g.members, res.group));
        else if (!res.ok) failed({ error: res.error, retryable: res.retryable });
        else crashed(new Error('the worker answered a group with one result'));
      }, crashed);
  }

  private async runInlineGroup(
    g: GroupAttempt,
    signal: AbortSignal,
    report: (event: RunnerEvent) => void,
  ): Promise<MemberAnswer[]> {
    const answers: MemberAnswer[] = [];
    for (const m of g.members) {
      const res = await this.runInline(
        {
          batchId: g.batchId,
          index: g.index,
          key: m.key,
          attempt: g.attempt,
          redelivered: g.redelivered,
          payload: m.payload,
        },
        signal,
        report,
      );
      if (signal.aborted) throw new CancelledError('aborted');
      answers.push(res as MemberAnswer);
    }
    return answers;
  }

  private async runInline(
    a: Attempt,
    signal: AbortSignal,
    report: (event: RunnerEvent) => void,
  ): Promise<RunResult> {
    if (a.payload instanceof UnreadablePayload) return unreadable(a.payload);
    const turn = currentTurn();
    const t0 = performance.now();
    let callMs = 0;
    // How long the work took (`ms`, the batch sizes its groups from it): the call itself when the
    // promise settled in the same turn (it awaited no I/O, see turns.ts), else the whole wait.
    const took = () => (turnPassed(turn) || callMs === 0 ? performance.now() - t0 : callMs);
    let progress: ((done: number, total?: number) => void) | undefined;
    try {
      const pending = this.job.handler!(a.payload as never, {
        batchId: a.batchId,
        key: a.key,
        attempt: a.attempt,
        redelivered: a.redelivered,
        idempotencyKey: `${a.batchId}:${a.key}`,
        signal,
        // The throttle is built at the first report: most handlers never make one.
        progress: (done, total) => {
          progress ??= throttledProgress((d, t) =>
            report({ type: 'WORK.PROGRESS', index: a.index, attempt: a.attempt, done: d, total: t }),
          );
          progress(done, total);
        },
      });
      callMs = performance.now() - t0 || Number.MIN_VALUE;
      // A result returned as it is (no promise) is copied now: the handlers of other lanes started
      // in this same turn run before the await below ends, and may refill an object it shares.
      const now = isThenable(pending) ? undefined : returnedAnswer(pending, undefined, false, true);
      const result = await pending;
      if (signal.aborted) throw new CancelledError('aborted');
      // Storability is checked here (as the runner does on a worker thread); the schema (if any) in
      // `answer`, as for worker results.
      const answer = now ?? returnedAnswer(result, undefined, false, true);
      answer.ms = took();
      return answer;
    } catch (err) {
      const answer = thrownAnswer(err);
      answer.ms = took();
      return answer;
    }
  }

  private runOnPool(
    a: Attempt,
    signal: AbortSignal,
    report: (event: RunnerEvent) => void,
    started: (() => void) | undefined,
  ): Promise<RunResult | StaleAnswer> {
    if (a.payload instanceof UnreadablePayload) return Promise.resolve(unreadable(a.payload));
    const pool = this.pool!;
    const task = {
      taskId: pool.taskId(),
      job: this.job.name,
      batchId: a.batchId,
      key: a.key,
      attempt: a.attempt,
      redelivered: a.redelivered,
      payload: a.payload,
      freshUntil: a.freshUntil,
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

/** A member or partition whose stored payload does not parse: failed with that error, not retried. */
function unreadable(p: UnreadablePayload): RunResult & { ms: number } {
  return { ok: false, error: serializeError(p.error), retryable: false, ms: 0 };
}

/** A group's answers in member order: the thread's for the readable members, failures for the others. */
function withUnreadable(all: readonly { payload: unknown }[], ran: readonly MemberAnswer[]): MemberAnswer[] {
  let next = 0;
  return all.map((m) => (m.payload instanceof UnreadablePayload ? unreadable(m.payload) : ran[next++]!));
}
