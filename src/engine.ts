import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { pino } from 'pino';
import {
  type EngineOptions,
  engineOptionsSchema,
  type ListFilter,
  listFilterSchema,
  type SubmitOptions,
  type WaitOptions,
  waitOptionsSchema,
} from './engine-options.js';
import { EngineStateError, LeaseLostError, NotFoundError, ValidationError } from './errors.js';
import type { AnyJobDefinition, JobWithInput } from './job.js';
import { processScopedId } from './liveness.js';
import { defaultLogger } from './logger.js';
import { Admission } from './runtime/admission.js';
import { BatchRuntime, type RuntimeEvent } from './runtime/batch-runtime.js';
import { guarded, guardedInspector } from './runtime/callbacks.js';
import { Leases } from './runtime/leases.js';
import { ParentWatch } from './runtime/parent-watch.js';
import { parseRecord } from './runtime/records.js';
import { Recovery } from './runtime/recovery.js';
import { type EngineEvent, EngineStats } from './runtime/stats.js';
import { submitBatch } from './runtime/submission.js';
import { listedSummary, summaryFromRow } from './runtime/views.js';
import { Watchers } from './runtime/watchers.js';
import { WorkRunner } from './runtime/work.js';
import { Yielder } from './runtime/yielder.js';
import type { BatchRecord, BatchState, PartitionFilter, PartitionView, Store } from './store/store.js';
import { type BatchStatus, type BatchSummary, isFinalStatus } from './summary.js';
import { parseOrThrow } from './validation.js';
import { resultJsonSchema, WorkerPool } from './workers/pool.js';

export type { EngineOptions, ListFilter, SubmitOptions, WaitOptions } from './engine-options.js';
export type { EngineEvent } from './runtime/stats.js';

/** A snapshot of the engine's load, from `engine.metrics()`. */
export interface EngineMetrics {
  /** Batches run by this engine now, by status. */
  batches: Partial<Record<BatchStatus, number>>;
  queued: number;
  /** Partitions settled per second over the last 10 seconds. */
  partitionsPerSecond: number;
  poolThreads: number;
  poolUtilization: number;
  storeErrors: number;
}

/** The engine: owns the pool, the store and every batch actor of this process. */
export interface Engine {
  /** Open the store (migrations), resume every unfinished batch, start admitting. */
  start(): Promise<void>;
  /** Graceful stop: work in flight is aborted and runs again on the next start; nothing is lost. */
  stop(): Promise<void>;
  /** Validate, partition and store a batch, then queue it. Rejected input stores nothing. */
  submit<I>(job: string | JobWithInput<I>, input: I, options?: SubmitOptions): Promise<BatchSummary>;
  get(id: string): Promise<BatchSummary>;
  /** Resolves with the final summary once the final state is durable. */
  wait(id: string, options?: WaitOptions): Promise<BatchSummary>;
  list(filter?: ListFilter): Promise<BatchSummary[]>;
  /** Cancel: in-flight work is aborted; resolves with the CANCELLED (or already final) summary. */
  cancel(id: string, reason?: string): Promise<BatchSummary>;
  /** Every partition with its result or error, in index order. `R`: the job's result type. */
  partitions<R = unknown>(id: string, filter?: PartitionFilter): AsyncIterable<PartitionView<R>>;
  /** Called with the summary at every change, progress included. Returns the unsubscribe function. */
  subscribe(id: string, listener: (summary: BatchSummary) => void): () => void;
  /** The counts recomputed from the stored outcomes. After recovery they equal the summary's. */
  recount(id: string): Promise<{ total: number; succeeded: number; failed: number }>;
  metrics(): EngineMetrics;
  /** Hear every settled partition and every batch status change of this engine (metrics exporters). */
  observe(listener: (event: EngineEvent) => void): () => void;
}

const DEFAULT_DB = './.partita/partita.db';

/**
 * Create an engine. Nothing runs until `start()`.
 *
 * @example
 * ```ts
 * const engine = createEngine({ jobs: [salaryRecalc], store: memoryStore(), logger: false });
 * await engine.start();
 * const batch = await engine.submit('salary-recalc', { users: ['u1', 'u2'], days: ['2026-11-01'] });
 * const summary = await engine.wait(batch.id);
 * console.log(summary.status, summary.errorSummary);
 * await engine.stop();
 * ```
 */
export function createEngine(options: EngineOptions): Engine {
  const o = parseOrThrow(engineOptionsSchema, options, 'engine options');
  const jobs = new Map<string, AnyJobDefinition>();
  for (const job of o.jobs as AnyJobDefinition[]) {
    if (jobs.has(job.name))
      throw new ValidationError(`Invalid engine options: two jobs are named "${job.name}"`, [
        { path: 'jobs', message: 'duplicate name' },
      ]);
    jobs.set(job.name, job);
  }
  return new PartitaEngine(o as EngineOptions, jobs);
}

type EngineState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * The façade (docs/architecture.md): lifecycle and the public methods. Each concern lives in its own
 * module under runtime/: submission, admission, leases, recovery, watchers (wait and subscribe),
 * views (stored summaries), and one BatchRuntime per batch run here.
 */
class PartitaEngine implements Engine {
  private state: EngineState = 'new';
  private booting: Promise<void> | undefined;
  private store: Store | undefined;
  private pool: WorkerPool | undefined;
  private readonly runners = new Map<string, WorkRunner>();
  private readonly runtimes = new Map<string, BatchRuntime>();
  /** Final statuses of batches that dependents wait on. */
  private readonly finals = new Map<string, BatchStatus>();
  private readonly log: Logger;
  private readonly onError: (err: Error, batchId: string | undefined) => void;
  private readonly inspect: ReturnType<typeof guardedInspector>;
  private readonly watchers: Watchers;
  private readonly admission: Admission;
  private readonly yielder: Yielder;
  private leases: Leases | undefined;
  private recovery: Recovery | undefined;
  private parentWatch: ParentWatch | undefined;
  private seq = 0;
  private readonly stats: EngineStats;

  constructor(
    private readonly options: EngineOptions,
    private readonly jobs: Map<string, AnyJobDefinition>,
  ) {
    this.log = options.logger === false ? pino({ level: 'silent' }) : (options.logger ?? defaultLogger());
    this.onError = guarded(this.log, 'onError', options.onError);
    this.inspect = guardedInspector(this.log, options.inspect);
    this.watchers = new Watchers(this.log);
    this.stats = new EngineStats(this.log);
    this.yielder = new Yielder(options.yieldAfterMs ?? 5);
    this.admission = new Admission(options.maxConcurrentBatches ?? 4, {
      statusOf: (id) => this.statusOf(id),
      admit: (id) => this.runtimes.get(id)?.admit(),
      cancel: (id, reason) => this.runtimes.get(id)?.cancel(reason),
    });
  }

  start(): Promise<void> {
    if (this.state !== 'new')
      return Promise.reject(new EngineStateError(`start() called on an engine that is ${this.state}`));
    this.state = 'starting';
    this.booting = this.boot();
    return this.booting;
  }

  private async boot(): Promise<void> {
    try {
      const store = this.options.store ?? (await defaultStore());
      this.store = store;
      await store.open();
      const workerJobs = [...this.jobs.values()].filter((j) => j.workerUrl);
      if (workerJobs.length > 0) this.pool = new WorkerPool(workerJobs, this.options.workers);
      for (const job of this.jobs.values()) {
        const inWorker = Boolean(job.workerUrl) && resultJsonSchema(job.result as never) !== undefined;
        this.runners.set(job.name, new WorkRunner(job, this.pool, inWorker));
      }
      this.leases = new Leases(
        store,
        this.options.ownerId ?? processScopedId(randomUUID().slice(0, 8)),
        this.leaseTtl,
        {
          lost: (id) => this.runtimes.get(id)?.abandon(),
          error: (err, id) => this.storeError(err, id),
        },
      );
      this.leases.start();
      this.stats.start();
      this.recovery = new Recovery({
        store,
        jobs: this.jobs,
        log: this.log,
        attach: (record, state) => this.attach(record, state),
        storeError: (err, id) => this.storeError(err, id),
      });
      this.parentWatch = new ParentWatch({
        store,
        log: this.log,
        needed: () => this.remoteParents(),
        final: (id, status) => this.parentEnded(id, status),
      });
      await this.recovery.resumeAll();
      if (this.state !== 'starting') return; // stop() was called meanwhile; it finishes the job
      this.parentWatch.start();
      this.state = 'running';
      this.admit();
    } catch (err) {
      this.state = 'stopped';
      await this.shutdown();
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.state === 'new' || this.state === 'stopped') {
      this.state = 'stopped';
      return;
    }
    if (this.state === 'stopping') return this.booting?.then(() => {});
    const wasBooting = this.state === 'starting';
    this.state = 'stopping';
    this.recovery?.stop(); // resumes no more batches; the ones resumed so far are stopped below
    if (wasBooting) await this.booting?.catch(() => {});
    await this.shutdown();
    this.state = 'stopped';
  }

  /** Stop every batch here (each saves its state), release leases, the pool and the store. */
  private async shutdown(): Promise<void> {
    this.parentWatch?.stop();
    this.leases?.stop();
    this.stats.stop();
    const runtimes = [...this.runtimes.values()];
    this.runtimes.clear();
    await Promise.all(
      runtimes.map(async (rt) => {
        try {
          await rt.stop();
        } catch (err) {
          this.log.error(
            { err, batchId: rt.id },
            'could not save batch state on stop; it resumes from its last durable state',
          );
        }
        await this.leases?.release(rt.id);
      }),
    );
    await this.pool?.destroy().catch((err) => this.log.error({ err }, 'worker pool did not stop cleanly'));
    await this.store?.close().catch((err) => this.log.error({ err }, 'store did not close cleanly'));
  }

  async submit<I>(
    job: string | JobWithInput<I>,
    input: I,
    options: SubmitOptions = {},
  ): Promise<BatchSummary> {
    this.requireRunning('submit');
    const store = this.store!;
    const submission = await submitBatch(
      {
        store,
        jobs: this.jobs,
        exists: async (id) => this.runtimes.has(id) || (await store.loadBatch(id)) !== undefined,
      },
      job,
      input,
      options,
    );
    if (!submission.created) return this.get(submission.id);
    const { record } = submission;
    await this.rememberParents(record.after);
    if (!(await this.attach(record, undefined)))
      throw new EngineStateError(`batch "${record.id}" was created but another engine holds its lease`);
    const rt = this.runtimes.get(record.id)!;
    await rt.flush();
    this.log.info(
      { batchId: record.id, job: record.job, total: record.total, priority: record.priority },
      'batch submitted',
    );
    this.admit();
    return rt.summary();
  }

  async get(id: string): Promise<BatchSummary> {
    const rt = this.runtimes.get(id);
    if (rt) return rt.summary();
    this.requireStore('get');
    const broken = this.recovery?.broken.get(id);
    if (broken) throw broken;
    const row = await this.store!.loadBatch(id);
    if (!row) throw new NotFoundError(id);
    return summaryFromRow(row);
  }

  async wait(id: string, options: WaitOptions = {}): Promise<BatchSummary> {
    const { timeoutMs } = parseOrThrow(waitOptionsSchema, options, 'wait options');
    const rt = this.runtimes.get(id);
    if (rt) return rt.isFinal ? rt.summary() : this.watchers.wait(id, timeoutMs);
    if (this.recovery?.isRetrying(id)) return this.watchers.wait(id, timeoutMs);
    const summary = await this.get(id);
    if (isFinalStatus(summary.status)) return summary;
    throw new EngineStateError(
      `batch "${id}" is ${summary.status} but not run by this engine (is the engine started?)`,
    );
  }

  async list(filter: ListFilter = {}): Promise<BatchSummary[]> {
    this.requireStore('list');
    const f = parseOrThrow(listFilterSchema, filter, 'list filter');
    const rows = await this.store!.listBatches(f);
    return rows.map(
      (row) => this.runtimes.get(row.id)?.summary() ?? listedSummary(row, this.recovery?.broken.get(row.id)),
    );
  }

  async cancel(id: string, reason = 'cancelled by request'): Promise<BatchSummary> {
    const rt = this.runtimes.get(id);
    if (!rt) return this.get(id);
    if (rt.isFinal) return rt.summary();
    const final = this.watchers.wait(id, undefined);
    rt.cancel(String(reason));
    return final;
  }

  async *partitions<R = unknown>(id: string, filter: PartitionFilter = {}): AsyncIterable<PartitionView<R>> {
    this.requireStore('partitions');
    const rt = this.runtimes.get(id);
    if (rt) await rt.flush();
    else if (!(await this.store!.loadBatch(id))) throw new NotFoundError(id);
    yield* this.store!.partitions(id, filter) as AsyncIterable<PartitionView<R>>;
  }

  subscribe(id: string, listener: (summary: BatchSummary) => void): () => void {
    const rt = this.runtimes.get(id);
    if (rt) return this.watchers.subscribe(id, listener, rt.summary());
    if (!this.store) return this.watchers.subscribe(id, listener, Promise.reject(new NotFoundError(id)));
    return this.watchers.subscribe(id, listener, this.get(id));
  }

  async recount(id: string): Promise<{ total: number; succeeded: number; failed: number }> {
    this.requireStore('recount');
    await this.runtimes.get(id)?.flush();
    const row = await this.store!.loadBatch(id);
    if (!row) throw new NotFoundError(id);
    const record = parseRecord(row);
    const counts = await this.store!.countOutcomes(id);
    return { total: record.total, ...counts };
  }

  metrics(): EngineMetrics {
    const batches: Partial<Record<BatchStatus, number>> = {};
    for (const rt of this.runtimes.values()) {
      const s = rt.status;
      batches[s] = (batches[s] ?? 0) + 1;
    }
    return {
      batches,
      queued: batches.QUEUED ?? 0,
      partitionsPerSecond: this.stats.rate(),
      poolThreads: this.pool?.threads ?? 0,
      poolUtilization: this.pool?.utilization ?? 0,
      storeErrors: this.stats.storeErrors,
    };
  }

  observe(listener: (event: EngineEvent) => void): () => void {
    return this.stats.observe(listener);
  }

  // --- internals -----------------------------------------------------------------------------

  private get leaseTtl(): number {
    return this.options.leaseTtlMs ?? 30_000;
  }

  private requireRunning(what: string): void {
    if (this.state !== 'running')
      throw new EngineStateError(
        `${what}() needs a started engine (it is ${this.state}); call engine.start() first`,
      );
  }

  private requireStore(what: string): void {
    if (!this.store || this.state === 'stopped' || this.state === 'new')
      throw new EngineStateError(`${what}() needs a started engine; call engine.start() first`);
  }

  /** Take the lease and run the batch here. False when another live engine owns it; throws when it cannot start now. */
  private async attach(record: BatchRecord, state: BatchState | undefined): Promise<boolean> {
    const fence = await this.leases!.acquire(record.id);
    if (!fence) return false;
    const job = this.jobs.get(record.job)!;
    const rt = new BatchRuntime(
      {
        store: this.store!,
        job,
        runner: this.runners.get(job.name)!,
        record,
        fence,
        logger: this.log,
        inspect: this.inspect,
        flushDelayMs: this.options.flushDelayMs ?? 5,
        yielder: this.yielder,
        events: (r, event) => this.onRuntimeEvent(r, event),
      },
      state,
    );
    this.runtimes.set(record.id, rt);
    try {
      await rt.start(state);
    } catch (err) {
      this.runtimes.delete(record.id);
      await rt.stop().catch(() => {}); // nothing was started: nothing to save
      await this.leases!.release(record.id);
      throw err;
    }
    if (!this.runtimes.has(record.id)) return true; // it ended (or was lost) while starting
    const seq = ++this.seq;
    if (rt.isQueued) {
      await this.rememberParents(record.after);
      this.admission.queue({
        id: record.id,
        priority: record.priority,
        createdAt: record.createdAt,
        seq,
        after: record.after,
        when: record.when,
      });
    } else this.admission.holdSlot(record.id);
    return true;
  }

  private onRuntimeEvent(rt: BatchRuntime, event: RuntimeEvent): void {
    switch (event.type) {
      case 'changed':
        if (this.watchers.listening(rt.id)) this.watchers.deliver(rt.id, rt.summary());
        return;
      case 'final':
        this.stats.batch(rt.id, rt.job, event.summary.status, durationOf(event.summary));
        this.finals.set(rt.id, event.summary.status);
        this.runtimes.delete(rt.id);
        this.admission.forget(rt.id);
        void this.leases?.release(rt.id);
        this.watchers.settle(rt.id, event.summary);
        this.admit();
        return;
      case 'settled': {
        const o = event.outcome;
        this.stats.partition(rt.id, rt.job, o.status, o.durationMs, o.attempts);
        return;
      }
      case 'status':
        this.stats.batch(rt.id, rt.job, event.status);
        return;
      case 'store-error':
        this.storeError(event.error, rt.id);
        return;
      case 'lease-lost':
        void this.lostLease(rt);
        return;
    }
  }

  /** Another engine runs the batch now: settle everyone here with what the store says. */
  private async lostLease(rt: BatchRuntime): Promise<void> {
    if (this.runtimes.get(rt.id) === rt) this.runtimes.delete(rt.id);
    this.admission.forget(rt.id);
    this.leases?.forget(rt.id);
    this.storeError(new LeaseLostError(rt.id), rt.id);
    const stored = await this.get(rt.id).catch(() => undefined);
    if (stored && isFinalStatus(stored.status)) {
      this.finals.set(rt.id, stored.status);
      this.watchers.settle(rt.id, stored);
    } else this.watchers.fail(rt.id, new LeaseLostError(rt.id), stored);
    this.admit();
  }

  private admit(): void {
    if (this.state !== 'running') return;
    this.admission.run();
    this.parentWatch?.poke();
  }

  /** Parents that waiting batches need and that run elsewhere (another engine on the same store). */
  private remoteParents(): Set<string> {
    const out = this.admission.unresolvedParents();
    for (const id of out) if (this.runtimes.has(id)) out.delete(id);
    return out;
  }

  private parentEnded(id: string, status: BatchStatus): void {
    this.finals.set(id, status);
    this.admit();
  }

  private async rememberParents(parents: readonly string[]): Promise<void> {
    for (const id of parents) {
      if (this.runtimes.has(id) || this.finals.has(id)) continue;
      const row = await this.store!.loadBatch(id).catch(() => undefined);
      if (row && isFinalStatus(row.status)) this.finals.set(id, row.status);
    }
  }

  private statusOf(id: string): BatchStatus | undefined {
    const rt = this.runtimes.get(id);
    if (rt) return rt.isFinal ? rt.status : 'PROCESSING';
    return this.finals.get(id);
  }

  private storeError(err: Error, batchId: string | undefined): void {
    this.stats.storeErrors++;
    this.log.error({ err, batchId }, 'store error; data kept in memory and retried');
    this.onError(err, batchId);
  }
}

/** How long a final batch took: from the start of processing (or its submit) to its end. */
function durationOf(summary: BatchSummary): number | undefined {
  if (!summary.finishedAt) return undefined;
  return Date.parse(summary.finishedAt) - Date.parse(summary.startedAt ?? summary.createdAt);
}

async function defaultStore(): Promise<Store> {
  const { sqliteStore } = await import('./store/sqlite.js');
  return sqliteStore({ path: DEFAULT_DB });
}
