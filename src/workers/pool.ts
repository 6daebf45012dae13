import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  BroadcastChannel,
  type MessagePort,
  type ResourceLimits,
  receiveMessageOnPort,
} from 'node:worker_threads';
import { Piscina } from 'piscina';
import { z } from 'zod';
import { CancelledError, WorkerCrashedError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import { loadTimedOutAnswer } from './answers.js';
import { PROGRESS_INTERVAL_MS } from './progress-throttle.js';
import type {
  GroupResult,
  ProgressMessage,
  RunnerData,
  RunResult,
  RunTask,
  StaleAnswer,
} from './protocol.js';

/**
 * How long a worker thread may take to import a job's module when the job has no `timeoutMs` (a job
 * with one has it cover import and run together, so its import is bounded by `timeoutMs`). A module
 * that does not load in time (a top-level await that never settles, a loop at import) fails the
 * attempt with WORKER_LOAD, and its thread is terminated and replaced: a hung import never holds a
 * thread of the shared pool for good.
 */
export const DEFAULT_LOAD_TIMEOUT_MS = 60_000;

export interface PoolOptions {
  /** Worker threads at most. Default: Piscina's default (cores × 1.5). */
  maxThreads?: number | undefined;
  minThreads?: number | undefined;
  idleTimeout?: number | undefined;
  /** Per-thread limits; a thread that exceeds them fails only its partition. */
  resourceLimits?: ResourceLimits | undefined;
  /**
   * Longest import of a job's worker module, for jobs without `timeoutMs` (those have their import
   * bounded by `timeoutMs`). Default {@link DEFAULT_LOAD_TIMEOUT_MS}.
   */
  loadTimeoutMs?: number | undefined;
}

let poolSeq = 0;

/**
 * The runner's file. Built code finds it beside this file; when the engine runs from TypeScript
 * sources (partita's own tests), the compiled runner in dist/ is used, since a worker thread cannot
 * load TypeScript.
 */
function runnerFile(): string {
  const sibling = fileURLToPath(new URL('./runner-entry.cjs', import.meta.url));
  if (existsSync(sibling)) return sibling;
  const built = fileURLToPath(new URL('../../dist/workers/runner-entry.cjs', import.meta.url));
  if (existsSync(built)) return built;
  throw new Error(`partita worker runner not found at ${sibling}; run \`npm run build\``);
}

/** Zod parts JSON Schema leaves out without a word: they are checked only where zod runs them. */
const UNREPRESENTED_TYPES = new Set(['pipe', 'transform', 'custom']);

/**
 * A job's result schema as JSON Schema, when zod can represent all of it; otherwise (a refinement,
 * a transform: `toJSONSchema` drops those silently) it is checked with zod on the main thread.
 */
export function resultJsonSchema(schema: z.ZodType | undefined): object | undefined {
  if (!schema) return undefined;
  let whole = true;
  try {
    const json = z.toJSONSchema(schema, {
      io: 'input',
      unrepresentable: 'throw',
      override: (ctx) => {
        const def = (ctx.zodSchema as { _zod: { def: ZodDefLike } })._zod.def;
        if (UNREPRESENTED_TYPES.has(def.type) || def.checks?.some((c) => c._zod.def.check === 'custom'))
          whole = false;
      },
    });
    return whole ? json : undefined;
  } catch {
    return undefined;
  }
}

interface ZodDefLike {
  type: string;
  checks?: { _zod: { def: { check: string } } }[];
}

/**
 * One Piscina pool per engine, shared by every batch. Fairness between batches comes from the
 * batches themselves: a batch never has more tasks in the pool's queue than its lanes (its job's
 * `concurrency`, at most LANES_PER_THREAD per thread: src/runtime/work.ts), so a batch submitted
 * later interleaves with a large one instead of waiting behind it.
 */
export class WorkerPool {
  private readonly piscina: Piscina;
  private readonly channel: BroadcastChannel;
  /**
   * Tasks not answered yet, by task id: each hears its thread's reports, or the error it fails
   * with while it waits for a thread that cannot start (see {@link threadDiedIdle}).
   */
  private readonly progress = new Map<number, (msg: ProgressMessage | WorkerCrashedError) => void>();
  private destroyed = false;
  /** Job name → its module and how long its import may take. */
  private readonly modules = new Map<string, { module: string; loadTimeoutMs: number }>();
  private nextTaskId = 1;

  constructor(jobs: readonly AnyJobDefinition[], options: PoolOptions = {}) {
    const name = `partita-progress-${process.pid}-${++poolSeq}`;
    const data: RunnerData = { jobs: {}, progressChannel: name, progressIntervalMs: PROGRESS_INTERVAL_MS };
    for (const job of jobs) {
      if (job.workerUrl) {
        data.jobs[job.name] = {
          module: job.workerUrl,
          resultSchema: resultJsonSchema(job.result as z.ZodType | undefined),
          reportStart: job.timeoutMs !== undefined,
        };
        this.modules.set(job.name, {
          module: job.workerUrl,
          loadTimeoutMs: job.timeoutMs ?? options.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS,
        });
      }
    }
    // Piscina spreads its options over its defaults: a key present with `undefined` would erase the
    // default (no threads at all), so only defined options are passed.
    const defined = <T extends object>(o: T) =>
      Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
    this.piscina = new Piscina({
      filename: runnerFile(),
      workerData: data,
      idleTimeout: options.idleTimeout ?? 30_000,
      concurrentTasksPerWorker: 1,
      ...defined({
        maxThreads: options.maxThreads,
        minThreads: options.minThreads ?? options.maxThreads,
        resourceLimits: options.resourceLimits,
      }),
    });
    // A thread that crashes running a task is reported through the task's rejection; Piscina emits
    // 'error' for one that died holding none (without a listener, the event would be thrown).
    this.piscina.on('error', (err: unknown) => setImmediate(() => this.threadDiedIdle(err)));
    this.channel = new BroadcastChannel(name);
    this.channel.onmessage = (event) => this.deliver((event as unknown as { data: ProgressMessage }).data);
    this.channel.unref();
  }

  /**
   * A thread died holding no task: most often one that could not even start (`resourceLimits` too
   * small for the runner to load). Piscina then starts no other for the tasks waiting in its queue,
   * and a thread it starts for a new task dies the same way before it takes it: those tasks would
   * wait for ever, their batch stuck in PROCESSING with no error (an outside probe: 1 to 4 MB of
   * `maxOldGenerationSizeMb`). When no thread is left, each waiting task fails as a crash: its
   * partition is retried (a thread is started for the retry) and fails with the cause once its
   * attempts are spent. A pool that still has a thread leaves them to it.
   */
  private threadDiedIdle(err: unknown): void {
    if (this.destroyed || this.piscina.threads.length > 0 || this.progress.size === 0) return;
    const error = new WorkerCrashedError(`no worker thread could start: ${describe(err)}`, err);
    for (const fail of [...this.progress.values()]) fail(error);
  }

  private deliver(msg: ProgressMessage): void {
    this.progress.get(msg.taskId)?.(msg);
  }

  /**
   * Deliver now the reports the threads have posted that the event loop has not yet: a stop, about
   * to abort the work in flight, learns first which groups a thread began. Else a group begun just
   * before the stop, its report still queued, ran again at the same attempt (an outside probe).
   */
  deliverPending(): void {
    // Node takes a BroadcastChannel here (its docs say so); @types/node types only MessagePort.
    const port = this.channel as unknown as MessagePort;
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port))
      this.deliver(m.message as ProgressMessage);
  }

  get threads(): number {
    return this.piscina.threads.length;
  }

  /** The most threads the pool runs at once. */
  get maxThreads(): number {
    return this.piscina.options.maxThreads;
  }

  get utilization(): number {
    return this.piscina.utilization;
  }

  /** Allocate a task id (ties progress messages to an attempt). */
  taskId(): number {
    return this.nextTaskId++;
  }

  /**
   * Run one attempt. Resolves with the handler's answer (including handler errors, and WORKER_LOAD
   * when the job's module failed to load or did not load in time); rejects with WorkerCrashedError
   * when the thread died, or CancelledError when `signal` aborted it. `onProgress` gets progress
   * reports and (jobs with `timeoutMs`, and every group) the `started` report.
   */
  run<T extends RunResult | GroupResult | StaleAnswer = RunResult | StaleAnswer>(
    task: RunTask,
    signal: AbortSignal,
    onProgress?: (msg: ProgressMessage) => void,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const taskSignal = new TaskSignal(signal);
      let loadTimer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        clearTimeout(loadTimer);
        this.progress.delete(task.taskId);
      };
      this.progress.set(task.taskId, (msg) => {
        if (msg instanceof WorkerCrashedError) {
          cleanup();
          reject(msg);
          taskSignal.abort(); // out of Piscina's queue
          return;
        }
        if (msg.loading) {
          const spec = this.modules.get(task.job);
          const ms = spec?.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS;
          // Armed before `onProgress` hears `started` (and the engine arms `timeoutMs`): with the same
          // duration this timer fires first, and its answer reaches the engine (which then clears its
          // timer) before the engine's timer runs, so a module that did not load is WORKER_LOAD.
          loadTimer = setTimeout(() => {
            cleanup();
            resolve(loadTimedOutAnswer(spec?.module ?? task.job, ms) as T);
            taskSignal.abort(); // Piscina terminates the thread and starts another
          }, ms);
        } else if (msg.loaded) {
          clearTimeout(loadTimer);
          return;
        }
        if (onProgress && (msg.started || msg.done !== undefined)) onProgress(msg);
      });
      // After a load timeout, the task's rejection (aborted) finds the promise settled: a no-op.
      this.piscina.run(task, { signal: taskSignal }).then(
        (res) => {
          cleanup();
          resolve(res as T);
        },
        (err) => {
          cleanup();
          reject(signal.aborted ? new CancelledError('aborted') : new WorkerCrashedError(describe(err), err));
        },
      );
    });
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    this.channel.close();
    await this.piscina.destroy();
  }
}

/**
 * The signal Piscina gets for one task: it aborts with the attempt's `signal` (cancel, timeout, stop),
 * or when the pool gives up on a module that does not load. Piscina takes any object with this shape;
 * a plain object is cheaper per task than an AbortController (the hot path).
 */
class TaskSignal {
  private listener: (() => void) | undefined;
  private killed = false;

  constructor(private readonly outer: AbortSignal) {}

  get aborted(): boolean {
    return this.killed || this.outer.aborted;
  }

  get reason(): unknown {
    return this.killed ? 'worker module did not load in time' : this.outer.reason;
  }

  addEventListener(_name: 'abort', listener: () => void): void {
    this.listener = listener;
    this.outer.addEventListener('abort', listener, { once: true });
  }

  removeEventListener(_name: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = undefined;
    this.outer.removeEventListener('abort', listener);
  }

  abort(): void {
    if (this.aborted) return;
    this.killed = true;
    const listener = this.listener;
    if (listener) this.removeEventListener('abort', listener);
    listener?.();
  }
}

/** A readable message for whatever a dead thread or a failed clone rejected with. */
function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'object' && err !== null) {
    const { name, message } = err as { name?: unknown; message?: unknown };
    if (typeof message === 'string' && message)
      return typeof name === 'string' ? `${name}: ${message}` : message;
  }
  return String(err);
}
