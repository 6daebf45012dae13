/**
 * The messages between the main thread (pool.ts) and worker threads (runner.ts). This file is the
 * only thing both sides share; the worker side never imports the engine.
 */
import type { SerializedError } from '../errors.js';

/** Given to every worker thread once, as Piscina's `workerData`. */
export interface RunnerData {
  /** Job name → its worker module (file URL) and, when representable, its result JSON Schema. */
  jobs: Record<
    string,
    { module: string; resultSchema?: object | undefined; reportStart?: boolean | undefined }
  >;
  /** BroadcastChannel name for progress reports. */
  progressChannel: string;
  /** Minimum milliseconds between two progress reports of one task. */
  progressIntervalMs: number;
}

/** One partition attempt, or one attempt of a group of partitions (item batching). */
export interface RunTask {
  /** Unique per dispatch; ties progress reports to the attempt. */
  taskId: number;
  job: string;
  batchId: string;
  key: string;
  attempt: number;
  redelivered: boolean;
  payload: unknown;
  /** A group: its members, run one after the other (`key` and `payload` are then unused). */
  members?: { key: string; payload: unknown }[] | undefined;
  /**
   * `Date.now()` past which the batch's lease may have been taken over (its last renewal plus its
   * time to live, when the task was handed to the pool): a thread that takes the task later runs
   * nothing and answers {@link StaleAnswer}. Unset: no such check.
   */
  freshUntil?: number | undefined;
}

/**
 * The task was taken by a thread after its batch's lease could have expired (the process was
 * stalled, SIGSTOPped, while the task waited in the pool's queue): nothing ran. The engine renews
 * the lease and hands the task again, or gives the batch up (an outside probe saw such tasks run
 * on a host woken from SIGSTOP, after another host had stored their outcomes).
 */
export interface StaleAnswer {
  stale: true;
}

/**
 * The handler's answer. Errors thrown by the handler are answers too (`ok: false`); a rejected
 * `pool.run` therefore always means the thread died or the task was aborted. `ms`: how long the
 * handler ran on the thread (the batch sizes its groups from it).
 */
export type RunResult =
  | { ok: true; result: unknown; ms?: number | undefined }
  | { ok: false; error: SerializedError; retryable: boolean; ms?: number | undefined };

/** A group's answer: each member's, in order; or why the group could not run at all (its module). */
export type GroupResult = { ok: true; group: (RunResult & { ms: number })[] } | RunResult;

/**
 * Posted on the progress channel: progress; (jobs with a timeout, and groups) that the task started running,
 * before its module is imported, so that `timeoutMs` covers the import; and, when the thread has not
 * loaded the job's module yet, that it starts (`loading`) and finished (`loaded`) importing it. The
 * main thread bounds the import with these (pool.ts, `loadTimeoutMs`).
 */
export interface ProgressMessage {
  taskId: number;
  done?: number | undefined;
  total?: number | undefined;
  started?: true | undefined;
  loading?: true | undefined;
  loaded?: true | undefined;
}
