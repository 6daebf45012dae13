/**
 * The worker-thread entry (Piscina `filename`). It imports the job's module, fixed by `defineJob`
 * and passed in `workerData`, never a path from batch input, and calls its default export.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import { BroadcastChannel, workerData } from 'node:worker_threads';
import { z } from 'zod';
import { WorkerLoadError } from '../errors.js';
import { loadFailedAnswer, returnedAnswer, thrownAnswer } from './answers.js';
import { throttledProgress } from './progress-throttle.js';
import type {
  GroupResult,
  ProgressMessage,
  RunnerData,
  RunResult,
  RunTask,
  StaleAnswer,
} from './protocol.js';

type Handler = (payload: unknown, ctx: unknown) => unknown;

const data = workerData as RunnerData;
/** Imports under way or failed, by job. A failure is kept, as the module loader keeps it. */
const imports = new Map<string, Promise<Handler>>();
/** The handlers this thread has loaded, by job. */
const loaded = new Map<string, Handler>();
const schemas = new Map<string, z.ZodType | undefined>();
let channel: BroadcastChannel | undefined;

function loadHandler(job: string): Promise<Handler> {
  let handler = imports.get(job);
  if (!handler) {
    const spec = data.jobs[job];
    if (!spec) return Promise.reject(new WorkerLoadError(`job "${job}" has no worker module`));
    handler = import(spec.module).then((mod: { default?: unknown }) => {
      const fn = defaultExport(mod);
      if (!fn) throw new WorkerLoadError(`worker module ${spec.module} has no default export function`);
      loaded.set(job, fn);
      return fn;
    });
    imports.set(job, handler);
  }
  return handler;
}

/**
 * A module's default export function. A CommonJS module compiled from `export default` (TypeScript,
 * Babel) sets `exports.default` and `__esModule`: imported, its `default` is that exports object.
 */
function defaultExport(mod: { default?: unknown }): Handler | undefined {
  if (typeof mod.default === 'function') return mod.default as Handler;
  const compiled = mod.default as { __esModule?: unknown; default?: unknown } | null | undefined;
  if (compiled?.__esModule === true && typeof compiled.default === 'function')
    return compiled.default as Handler;
  return undefined;
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
  return throttledProgress((done, total) => post({ taskId, done, total }), data.progressIntervalMs);
}

function post(msg: ProgressMessage): void {
  channel ??= new BroadcastChannel(data.progressChannel);
  channel.postMessage(msg);
}

// In a worker thread the handler's signal never aborts: cancel and timeout terminate the thread.
const neverAborted = new AbortController().signal;

const STALE: StaleAnswer = { stale: true };

/** The task this thread runs now (one at a time). */
let current: RunTask | undefined;
/** The task whose code created a promise (Node runs `unhandledRejection` in the promise's context). */
const owner = new AsyncLocalStorage<RunTask>();

/**
 * A rejection no code handled. One that the running task's code created is that task's: the thread
 * dies with it, as Node's default has it, and the partition fails WORKER_CRASHED (docs/guide.md,
 * "When a partition goes wrong"). One that an earlier task left behind (a promise started and never
 * awaited, rejecting after its handler answered; Piscina's threads run no event loop between tasks,
 * so it surfaces during the next) is not the running task's: letting the thread die would fail a
 * partition that did nothing (an outside probe). That one is warned of, naming the partition that
 * left it, and nothing fails.
 */
process.on('unhandledRejection', (reason) => {
  const from = owner.getStore();
  if (from !== undefined && from === current) throw reason;
  const after = from
    ? ` left by partition "${from.members ? `${from.members[0]!.key}" (a group of ${from.members.length})` : `${from.key}"`} of batch "${from.batchId}" (job "${from.job}") after it answered`
    : '';
  process.emitWarning(
    `a promise rejected with nobody to handle it${after}; no partition fails for it: ${describeReason(reason)}`,
    { type: 'PartitaWarning', code: 'PARTITA_UNHANDLED_REJECTION' },
  );
});

function describeReason(reason: unknown): string {
  if (reason instanceof Error) return reason.stack ?? `${reason.name}: ${reason.message}`;
  try {
    return typeof reason === 'string' ? reason : (JSON.stringify(reason) ?? String(reason));
  } catch {
    return String(reason);
  }
}

export default function run(task: RunTask): Promise<RunResult | GroupResult | StaleAnswer> {
  return owner.run(task, async () => {
    current = task;
    try {
      return await runTask(task);
    } finally {
      if (current === task) current = undefined;
    }
  });
}

async function runTask(task: RunTask): Promise<RunResult | GroupResult | StaleAnswer> {
  // Taken from the pool's queue after the batch's lease could have expired: nothing runs.
  if (task.freshUntil !== undefined && Date.now() >= task.freshUntil) return STALE;
  // For jobs with a timeout: the clock starts when the task runs, not while it waits for a thread, and
  // it covers importing the module. The main thread bounds an import between `loading` and `loaded`
  // (pool.ts); nothing is posted for that once this thread has the module.
  // A group's start is reported whatever its job: one message for several partitions, and without
  // it a group waiting for a thread at a stop or a crash would count as begun (lanes.ts).
  const reportStart = data.jobs[task.job]?.reportStart === true || task.members !== undefined;
  let handler = loaded.get(task.job);
  if (handler) {
    if (reportStart) post({ taskId: task.taskId, started: true });
  } else {
    post(
      reportStart
        ? { taskId: task.taskId, started: true, loading: true }
        : { taskId: task.taskId, loading: true },
    );
    try {
      handler = await loadHandler(task.job);
    } catch (err) {
      return loadFailedAnswer(data.jobs[task.job]?.module ?? task.job, err);
    }
    post({ taskId: task.taskId, loaded: true });
  }
  if (task.members) {
    // A group: each member in turn, each its own answer. A member that hangs or kills the thread
    // takes the group's task with it; the engine then runs every member again alone.
    const group: (RunResult & { ms: number })[] = [];
    for (const m of task.members) group.push(await runOne(handler, task, m.key, m.payload, true));
    return { ok: true, group };
  }
  return runOne(handler, task, task.key, task.payload);
}

async function runOne(
  handler: Handler,
  task: RunTask,
  key: string,
  payload: unknown,
  /** A group's member: its result is copied when it returns (it crosses with the whole group's answer). */
  member = false,
): Promise<RunResult & { ms: number }> {
  const t0 = performance.now();
  let answer: RunResult;
  try {
    const result = await handler(payload, {
      batchId: task.batchId,
      key,
      attempt: task.attempt,
      redelivered: task.redelivered,
      idempotencyKey: `${task.batchId}:${key}`,
      signal: neverAborted,
      progress: progressReporter(task.taskId),
    });
    answer = returnedAnswer(result, resultSchema(task.job), true, member);
  } catch (err) {
    answer = thrownAnswer(err);
  }
  answer.ms = performance.now() - t0;
  return answer as RunResult & { ms: number };
}
