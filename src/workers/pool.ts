import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel, type ResourceLimits } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { z } from 'zod';
import { CancelledError, WorkerCrashedError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { ProgressMessage, RunnerData, RunResult, RunTask } from './protocol.js';

export interface PoolOptions {
  /** Worker threads at most. Default: Piscina's default (cores × 1.5). */
  maxThreads?: number | undefined;
  minThreads?: number | undefined;
  idleTimeout?: number | undefined;
  /** Per-thread limits; a thread that exceeds them fails only its partition. */
  resourceLimits?: ResourceLimits | undefined;
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

/** A job's result schema as JSON Schema, when zod can represent it; otherwise it is checked on the main thread. */
export function resultJsonSchema(schema: z.ZodType | undefined): object | undefined {
  if (!schema) return undefined;
  try {
    return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'throw' });
  } catch {
    return undefined;
  }
}

/**
 * One Piscina pool per engine, shared by every batch. Fairness between batches comes from the
 * batches themselves: a batch never has more than `concurrency` tasks in the pool's queue, so a
 * batch submitted later interleaves with a large one instead of waiting behind it.
 */
export class WorkerPool {
  private readonly piscina: Piscina;
  private readonly channel: BroadcastChannel;
  private readonly progress = new Map<number, (msg: ProgressMessage) => void>();
  private nextTaskId = 1;

  constructor(jobs: readonly AnyJobDefinition[], options: PoolOptions = {}) {
    const name = `partita-progress-${process.pid}-${++poolSeq}`;
    const data: RunnerData = { jobs: {}, progressChannel: name, progressIntervalMs: 100 };
    for (const job of jobs) {
      if (job.workerUrl)
        data.jobs[job.name] = {
          module: job.workerUrl,
          resultSchema: resultJsonSchema(job.result as z.ZodType | undefined),
          reportStart: job.timeoutMs !== undefined,
        };
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
    // A crashing thread is reported through the task's rejection; without a listener the
    // pool's 'error' event would be thrown.
    this.piscina.on('error', () => {});
    this.channel = new BroadcastChannel(name);
    this.channel.onmessage = (event) => {
      const msg = (event as unknown as { data: ProgressMessage }).data;
      this.progress.get(msg.taskId)?.(msg);
    };
    this.channel.unref();
  }

  get threads(): number {
    return this.piscina.threads.length;
  }

  get utilization(): number {
    return this.piscina.utilization;
  }

  /** Allocate a task id (ties progress messages to an attempt). */
  taskId(): number {
    return this.nextTaskId++;
  }

  /**
   * Run one attempt. Resolves with the handler's answer (including handler errors); rejects with
   * WorkerCrashedError when the thread died, or CancelledError when `signal` aborted it.
   */
  async run(
    task: RunTask,
    signal: AbortSignal,
    onProgress?: (msg: ProgressMessage) => void,
  ): Promise<RunResult> {
    if (onProgress) this.progress.set(task.taskId, onProgress);
    try {
      return (await this.piscina.run(task, { signal })) as RunResult;
    } catch (err) {
      if (signal.aborted) throw new CancelledError('aborted');
      throw new WorkerCrashedError(describe(err), err);
    } finally {
      if (onProgress) this.progress.delete(task.taskId);
    }
  }

  async destroy(): Promise<void> {
    this.channel.close();
    await this.piscina.destroy();
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
