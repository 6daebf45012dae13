/**
 * The worker-thread entry (Piscina `filename`). It imports the job's module, fixed by `defineJob`
 * and passed in `workerData`, never a path from batch input, and calls its default export.
 */
import { BroadcastChannel, workerData } from 'node:worker_threads';
import { z } from 'zod';
import { returnedAnswer, thrownAnswer } from './answers.js';
import type { ProgressMessage, RunnerData, RunResult, RunTask } from './protocol.js';

const data = workerData as RunnerData;
const handlers = new Map<string, Promise<(payload: unknown, ctx: unknown) => unknown>>();
const schemas = new Map<string, z.ZodType | undefined>();
let channel: BroadcastChannel | undefined;

function loadHandler(job: string): Promise<(payload: unknown, ctx: unknown) => unknown> {
  let handler = handlers.get(job);
  if (!handler) {
    const spec = data.jobs[job];
    if (!spec) return Promise.reject(new Error(`job "${job}" has no worker module`));
    handler = import(spec.module).then((mod: { default?: unknown }) => {
      if (typeof mod.default !== 'function') {
        throw new TypeError(`worker module ${spec.module} has no default export function`);
      }
      return mod.default as (payload: unknown, ctx: unknown) => unknown;
    });
    handlers.set(job, handler);
  }
  return handler;
}

function resultSchema(job: string): z.ZodType | undefined {
  if (!schemas.has(job)) {
    const json = data.jobs[job]?.resultSchema;
    schemas.set(job, json ? z.fromJSONSchema(json as Parameters<typeof z.fromJSONSchema>[0]) : undefined);
  }
  return schemas.get(job);
}

/** Throttled progress: at most one message per interval per task, and always the final one. */
function progressReporter(taskId: number): (done: number, total?: number) => void {
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (now - last < data.progressIntervalMs && done !== total) return;
    last = now;
    post({ taskId, done, total });
  };
}

function post(msg: ProgressMessage): void {
  channel ??= new BroadcastChannel(data.progressChannel);
  channel.postMessage(msg);
}

// In a worker thread the handler's signal never aborts: cancel and timeout terminate the thread.
const neverAborted = new AbortController().signal;

export default async function run(task: RunTask): Promise<RunResult> {
  try {
    const handler = await loadHandler(task.job);
    // For jobs with a timeout: the clock starts when the task runs, not while it waits for a thread.
    if (data.jobs[task.job]?.reportStart) post({ taskId: task.taskId, started: true });
    const result = await handler(task.payload, {
      batchId: task.batchId,
      key: task.key,
      attempt: task.attempt,
      redelivered: task.redelivered,
      idempotencyKey: `${task.batchId}:${task.key}`,
      signal: neverAborted,
      progress: progressReporter(task.taskId),
    });
    return returnedAnswer(result, resultSchema(task.job));
  } catch (err) {
    return thrownAnswer(err);
  }
}
