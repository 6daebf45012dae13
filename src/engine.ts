import { randomUUID } from 'node:crypto';
import { type Logger, pino } from 'pino';
import type { Engine, EngineMetrics } from './engine-api.js';
import {
  type EngineOptions,
  engineOptionsSchema,
  type ListFilter,
  listFilterSchema,
  type PruneOptions,
  type PruneResult,
  partitionFilterSchema,
  pruneOptionsSchema,
  type SubmitOptions,
  type WaitOptions,
  waitOptionsSchema,
} from './engine-options.js';
import {
  ConflictError,
  EngineStateError,
  LeaseLostError,
  NotFoundError,
  type PartitaError,
  toError,
  ValidationError,
} from './errors.js';
import type { AnyJobDefinition, JobWithInput } from './job.js';
import { processScopedId } from './liveness.js';
import { defaultLogger } from './logger.js';
import type { BatchRuntime } from './runtime/batch-runtime.js';
import { guarded, guardedInspector } from './runtime/callbacks.js';
import { CLAIM_SWEEP_MS } from './runtime/claims.js';
import { realClock } from './runtime/clock.js';
import type { Elsewhere } from './runtime/elsewhere.js';
import type { Seed } from './runtime/feeder.js';
import { DEFAULT_HELP_CONCURRENCY, Helping } from './runtime/helping.js';
import { Leases } from './runtime/leases.js';
import { ParentWatch } from './runtime/parent-watch.js';
import { pruneBatches } from './runtime/prune.js';
import { BatchQueue } from './runtime/queue.js';
import { RangeOffers } from './runtime/range-offers.js';
import { RateLimiter } from './runtime/rate-limiter.js';
import { parseRecord, parseState } from './runtime/records.js';
import { Recovery } from './runtime/recovery.js';
import { redrive } from './runtime/redrive.js';
import { RemoteFollow } from './runtime/remote-follow.js';
import { RunningBatches } from './runtime/running.js';
import { SCHEDULE_RESCAN_SWEEPS, Scheduler } from './runtime/scheduler.js';
import { SharedStore } from './runtime/shared-store.js';
import { type EngineEvent, EngineStats } from './runtime/stats.js';
import { holdStore, releaseStore } from './runtime/store-holds.js';
import { STOPPED_WHILE_STORING, submitBatch } from './runtime/submission.js';
import { checkTriggers, fireTriggers } from './runtime/triggers.js';
import { freshest, listByStatus, listedSummary, storedSummary, summaryFromRow } from './runtime/views.js';
import { Watchers } from './runtime/watchers.js';
import { WorkRunner } from './runtime/work.js';
import { Yielder } from './runtime/yielder.js';
import { checkSchedule, type ScheduleInfo, type ScheduleOptions } from './schedule-options.js';
import type {
  BatchRecord,
  BatchRow,
  BatchState,
  PartitionFilter,
  PartitionView,
  Store,
} from './store/store.js';
import { type BatchStatus, type BatchSummary, FINAL_STATUSES, isFinalStatus } from './summary.js';
import { parseOptions, parseOrThrow, requireBatchId, requireReason } from './validation.js';
import { resultJsonSchema, WorkerPool } from './workers/pool.js';

export type { Engine, EngineMetrics } from './engine-api.js';
export type {
  EngineOptions,
  ListFilter,
  PruneOptions,
  PruneResult,
  SubmitOptions,
  WaitOptions,
} from './engine-options.js';
export type { Clock } from './runtime/clock.js';
export type { EngineEvent } from './runtime/stats.js';
export type {
  ScheduleCatchUp,
  ScheduleInfo,
  ScheduleOptions,
  ScheduleOverlap,
} from './schedule-options.js';

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
  checkTriggers(jobs);
  return new PartitaEngine(o as EngineOptions, jobs);
}

type EngineState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

/** Longest a submit that found its id taken reads again for a batch still being created elsewhere. */
const EXISTING_BATCH_WAIT_MS = 30_000;

/**
 * The façade (docs/architecture.md): lifecycle and the public methods. Each concern lives in its own
 * module under runtime/: submission, the queue and admission, leases, recovery, watchers (wait and
 * subscribe), views (stored summaries), and one BatchRuntime per batch running here.
 */
class PartitaEngine implements Engine {
  private state: EngineState = 'new';
  private booting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private store: Store | undefined;
  private pool: WorkerPool | undefined;
  private readonly runners = new Map<string, WorkRunner>();
  /** Per job with a `rateLimit`: shared by all its batches here. */
  private readonly limiters = new Map<string, RateLimiter>();
  /** Batches running here (admitted, resumed, or being cancelled): each an actor. */
  private running: RunningBatches | undefined;
  private readonly log: Logger;
  private readonly onError: (err: Error, batchId: string | undefined) => void;
  private readonly inspect: ReturnType<typeof guardedInspector>;
  private readonly watchers: Watchers;
  private readonly stats: EngineStats;
  private readonly yielder: Yielder;
  private queue: BatchQueue | undefined;
  private leases: Leases | undefined;
  private recovery: Recovery | undefined;
  private parentWatch: ParentWatch | undefined;
  private shared: SharedStore | undefined;
  private elsewhere: Elsewhere | undefined;
  private follow: RemoteFollow | undefined;
  private scheduler: Scheduler | undefined;
  /** `distribute`: the ranges this engine's batches offer, and the ranges it runs. */
  private offers: RangeOffers | undefined;
  private helping: Helping | undefined;
  /** The store reads of subscribe() calls made before start() finished resuming (`subscribe`). */
  private afterStart: Array<() => void> = [];

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
      if (this.options.clusterMaxConcurrentBatches !== undefined && !store.acquireLeaseWithin)
        throw new ValidationError(
          `Invalid engine options: clusterMaxConcurrentBatches needs a store with acquireLeaseWithin (this ${store.kind} store has none)`,
          [{ path: 'clusterMaxConcurrentBatches', message: 'not supported by the store' }],
        );
      await holdStore(store);
      this.store = store;
      this.startPool();
      const ownerId = this.options.ownerId ?? processScopedId(randomUUID().slice(0, 8));
      this.leases = new Leases(
        store,
        ownerId,
        this.options.leaseTtlMs ?? 30_000,
        {
          lost: (id) => this.running?.get(id)?.abandon(),
          error: (err, id) => this.storeError(err, id),
        },
        [...this.jobs.keys()],
      );
      this.leases.start();
      this.stats.start();
      this.distribute(store, this.leases.ownerId);
      this.running = new RunningBatches({
        store,
        jobs: this.jobs,
        runners: this.runners,
        limiters: this.limiters,
        offers: this.offers,
        leases: this.leases,
        log: this.log,
        inspect: this.inspect,
        flushDelayMs: this.options.flushDelayMs ?? 5,
        yielder: this.yielder,
        watchers: this.watchers,
        stats: this.stats,
        queue: () => this.queue!,
        stored: (id) => this.get(id).catch(() => undefined),
        storeError: (err, id) => this.storeError(err, id),
        admit: () => this.admit(),
        follow: (id) => this.follow?.follow(id),
        clusterCap: this.options.clusterMaxConcurrentBatches,
        triggers: (job, final, signal, out) =>
          fireTriggers(
            job,
            final,
            (name, input, id) => this.submitHere(name, input, { id }),
            this.log,
            signal,
            out,
          ),
      });
      this.queue = new BatchQueue({
        store,
        log: this.log,
        maxConcurrentBatches: this.options.maxConcurrentBatches ?? 4,
        runningStatus: (id) => this.running!.status(id),
        materialize: (record, state, seed, admitted) => this.running!.attach(record, state, seed, admitted),
        cancel: (id, reason) => this.cancelDependent(id, reason),
        storeError: (err, id) => this.storeError(err, id),
        leftForElsewhere: () => this.parentWatch?.poke(),
      });
      this.recovery = new Recovery({
        store,
        jobs: this.jobs,
        log: this.log,
        resume: (record, state) => this.resumeStored(record, state),
        storeError: (err, id) => this.storeError(err, id),
      });
      this.parentWatch = new ParentWatch({
        store,
        log: this.log,
        needed: () => this.queue!.remoteParents(),
        final: (id, status) => {
          this.queue!.parentEnded(id, status);
          this.admit();
        },
        gone: (id) => {
          this.queue!.parentGone(id);
          this.admit();
        },
      });
      this.follow = new RemoteFollow({
        store,
        watchers: this.watchers,
        log: this.log,
        runsHere: (id) =>
          (this.running?.has(id) ?? false) ||
          this.queue?.starting(id) !== undefined ||
          (this.recovery?.isRetrying(id) ?? false),
        queuedHere: (id) => this.queue?.has(id) ?? false,
        claimedElsewhere: (id) => this.queue?.drop(id),
      });
      this.scheduler = new Scheduler({
        store,
        clock: this.options.clock ?? realClock,
        log: this.log,
        jobs: this.jobs,
        submit: (job, input, opts) => this.submitHere(job, input, opts),
        rescanMs: this.options.clock
          ? undefined
          : SCHEDULE_RESCAN_SWEEPS * (this.options.claimIntervalMs ?? CLAIM_SWEEP_MS),
        // A batch this engine cannot resume (its job is not among `jobs`, a newer partita wrote it)
        // still has a status: the stored one. get() rejects for it, and that stopped every
        // schedule from firing, and schedules() and schedule() from answering (outside probe).
        status: (id) =>
          this.get(id).then(
            (s) => s.status,
            async (err: unknown) => {
              if (err instanceof NotFoundError) return undefined;
              const row = await store.loadBatch(id);
              if (!row) throw err;
              return row.status;
            },
          ),
        error: (err) => this.onError(err, undefined),
      });
      await this.recovery.resumeAll();
      if (this.state !== 'starting') return; // stop() was called meanwhile; it finishes the job
      this.parentWatch.start();
      this.follow.start();
      this.shareWork(store);
      this.state = 'running';
      this.admit();
      for (const read of this.afterStart.splice(0)) read();
      await this.scheduler.start(); // fires missed while down are submitted before start() resolves
    } catch (err) {
      this.state = 'stopped';
      await this.shutdown();
      throw err;
    }
  }

  private startPool(): void {
    const workerJobs = [...this.jobs.values()].filter((j) => j.workerUrl);
    if (workerJobs.length > 0) this.pool = new WorkerPool(workerJobs, this.options.workers);
    for (const job of this.jobs.values()) {
      const inWorker = Boolean(job.workerUrl) && resultJsonSchema(job.result as never) !== undefined;
      this.runners.set(job.name, new WorkRunner(job, this.pool, inWorker));
      if (job.rateLimit) this.limiters.set(job.name, new RateLimiter(job.rateLimit));
    }
  }

  stop(): Promise<void> {
    if (this.state === 'new' || this.state === 'stopped') {
      this.state = 'stopped';
      return Promise.resolve();
    }
    // A second stop() meanwhile resolves when the first has stopped everything, not before.
    this.stopping ??= this.halt();
    return this.stopping;
  }

  private async halt(): Promise<void> {
    const wasBooting = this.state === 'starting';
    this.state = 'stopping';
    this.afterStart = []; // a start that will not finish: nothing to read for them
    this.recovery?.stop(); // resumes no more batches; the ones resumed so far are stopped below
    if (wasBooting) await this.booting?.catch(() => {});
    await this.shutdown();
    this.state = 'stopped';
  }

  /** Stop every batch here (each saves its state), release leases, the pool and the store. */
  private async shutdown(): Promise<void> {
    this.elsewhere?.stop(); // requests left for other engines: answered ENGINE_STATE, checks end
    await this.scheduler?.stop(); // first: a fire in flight ends before the queue and the store do
    await this.helping?.stop(); // answers staged and holds given back while the store is open
    this.parentWatch?.stop();
    this.follow?.stop();
    await this.shared?.stop();
    await this.queue?.stop();
    this.leases?.stop();
    this.stats.stop();
    for (const limiter of this.limiters.values()) limiter.clear();
    // The threads' reports of groups begun, before the batches abort them and save who began what.
    this.pool?.deliverPending();
    await this.running?.stopAll();
    // Batches that did not end here: whoever waits for one is told, not left waiting forever.
    this.watchers.failAll(
      (id) =>
        new EngineStateError(
          `the engine stopped while waiting for batch "${id}" to end (the batch is not lost: an engine on its store carries it on)`,
        ),
    );
    this.offers?.stop();
    await this.pool?.destroy().catch((err) => this.log.error({ err }, 'worker pool did not stop cleanly'));
    const store = this.store;
    this.store = undefined; // let go once, however often shutdown runs
    if (store)
      await releaseStore(store).catch((err) => this.log.error({ err }, 'store did not close cleanly'));
  }

  async submit<I>(
    job: string | JobWithInput<I>,
    input: I,
    options: SubmitOptions = {},
  ): Promise<BatchSummary> {
    this.requireRunning('submit');
    return this.submitHere(job, input, options);
  }

  /** submit() without the state check: triggers also fire while start() resumes batches. */
  private async submitHere<I>(
    job: string | JobWithInput<I>,
    input: I,
    options: SubmitOptions,
  ): Promise<BatchSummary> {
    if (this.state !== 'running' && this.state !== 'starting')
      throw new EngineStateError(`submit() needs a started engine (it is ${this.state})`);
    const store = this.store!;
    const exists = async (id: string) => this.isHere(id) || (await store.loadBatch(id)) !== undefined;
    const deps = { store, jobs: this.jobs, exists, stopping: () => this.stopBegun() };
    const submission = await submitBatch(deps, job, input, options).catch((err: unknown) => {
      // stop() closed the store under a submit still writing: the store's "not open" is not the
      // caller's to handle. What was half-written stays hidden and goes at the next start.
      if (this.stopBegun() && (err as { code?: unknown } | null | undefined)?.code === 'STORE')
        throw new EngineStateError(STOPPED_WHILE_STORING, { cause: err });
      throw err;
    });
    if (!submission.created)
      return this.existing(submission.id, () => this.submitHere(job, input, options)).catch(
        (err: unknown) => {
          if (!this.stopBegun() || !(err instanceof EngineStateError)) throw err;
          throw new EngineStateError(
            `submit(): the engine stopped while it read batch "${submission.id}", which exists already`,
            { cause: err },
          );
        },
      );
    const { record } = submission;
    try {
      await this.enqueue(record, false, undefined, submission.seed);
      this.log.info(
        { batchId: record.id, job: record.job, total: record.total, priority: record.priority },
        'batch submitted',
      );
      this.admit();
      // Admitted at once: answer when it has started, as PROCESSING.
      await this.queue!.starting(record.id);
      return this.running?.get(record.id)?.summary() ?? this.queue!.summary(record.id) ?? this.get(record.id);
    } catch (err) {
      if (!this.stopBegun()) throw err;
      // Stored, then stop() came: the batch is there for the next engine on the store to run.
      throw new EngineStateError(
        `submit(): the engine stopped just after batch "${record.id}" was stored; it runs when an engine starts on this store (submit the same id again to read it)`,
        { cause: err },
      );
    }
  }

  /** Has stop() begun (read anew each time: it may have run since a check of `state` above)? */
  private stopBegun(): boolean {
    return this.state === 'stopping' || this.state === 'stopped';
  }

  /**
   * The batch a submit found under its id. Another process may still be creating it (on SQLite its
   * row stays unreadable until its last partition is in): read again for a while rather than answer
   * NOT_FOUND for a batch that exists (outside probe: the same id submitted from several processes).
   * When that creation is gone instead (it failed, was stopped, or its process was killed), the id is
   * free: `again` submits once more (it waited 30 s, then answered NOT_FOUND: an outside probe).
   */
  private async existing(id: string, again: () => Promise<BatchSummary>): Promise<BatchSummary> {
    const store = this.store!;
    const deadline = Date.now() + EXISTING_BATCH_WAIT_MS;
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      try {
        return await this.get(id);
      } catch (err) {
        const notYet = (err as { code?: unknown } | null)?.code === 'NOT_FOUND';
        if (!notYet || Date.now() >= deadline || this.state !== 'running') throw err;
      }
      if (store.beingCreated && !(await store.beingCreated(id))) return again();
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async get(id: string): Promise<BatchSummary> {
    requireBatchId(id, 'get');
    const rt = this.running?.get(id);
    if (rt) {
      if (rt.endingUnheard) {
        // The store may be ahead of this engine (another engine sharing it may have read the final
        // state there and said so): what the store holds is never older than what was heard here.
        // A store that cannot answer now, or not within STORE_GLANCE_MS (a lock, an outage: its
        // statement timeout is 30 s), leaves the answer to this engine, as before.
        const row = await glance(this.store!.loadBatch(id));
        if (row && isFinalStatus(row.status)) return summaryFromRow(row);
      }
      return rt.summary();
    }
    const queued = this.queue?.summary(id);
    // Queued here, but another engine sharing the store may have claimed it: the store says.
    if (queued && !this.elsewhere) return queued;
    this.requireStore('get');
    const broken = this.recovery?.broken.get(id);
    // A batch of a job this engine does not have is not broken: another engine sharing the store
    // may run it (an engine started to look on, with other jobs). Its stored summary, marked.
    if (broken && broken.code !== 'UNKNOWN_JOB') throw broken;
    const row = await this.store!.loadBatch(id);
    if (queued && (row?.status ?? 'QUEUED') === 'QUEUED') return this.queue?.summary(id) ?? queued;
    if (!row) throw new NotFoundError(id);
    if (broken) return listedSummary(row, this.brokenRow(row));
    if (queued) this.queue!.drop(id);
    return summaryFromRow(row);
  }

  async wait(id: string, options: WaitOptions = {}): Promise<BatchSummary> {
    requireBatchId(id, 'wait');
    const { timeoutMs } = parseOptions(waitOptionsSchema, options, 'wait options');
    this.requireStore('wait');
    const rt = this.running?.get(id);
    if (rt?.isFinal) return rt.summary();
    if (rt || this.recovery?.isRetrying(id)) return this.watchers.wait(id, timeoutMs);
    if (this.queue?.has(id)) {
      const final = this.watchers.wait(id, timeoutMs);
      this.follow?.follow(id); // another engine sharing the store may claim it
      return final;
    }
    const summary = await this.get(id);
    if (isFinalStatus(summary.status)) return summary;
    // Run by another engine sharing the store: followed through the store until it ends.
    const final = this.watchers.wait(id, timeoutMs);
    this.follow!.follow(id);
    return final;
  }

  async list(filter: ListFilter = {}): Promise<BatchSummary[]> {
    this.requireStore('list');
    const f = parseOrThrow(listFilterSchema, filter, 'list filter');
    const rows = await this.store!.listBatches(f);
    if (f.status !== undefined)
      return listByStatus(rows, f, this.running?.values() ?? [], (row) =>
        listedSummary(row, this.brokenRow(row)),
      );
    return rows.map((row) =>
      freshest(row, this.running?.get(row.id), (r) => listedSummary(r, this.brokenRow(r))),
    );
  }

  async cancel(id: string, reason = 'cancelled by request'): Promise<BatchSummary> {
    requireBatchId(id, 'cancel');
    requireReason(reason);
    this.requireStore('cancel');
    const rt = this.running?.get(id) ?? (await this.queue?.take(id)) ?? (await this.claimToCancel(id));
    if (!rt) {
      const summary = await this.get(id);
      if (isFinalStatus(summary.status)) return summary;
      if (!this.elsewhere)
        // Saying nothing would let the caller think it was cancelled.
        throw new EngineStateError(
          `batch "${id}" is ${summary.status} but not run by this engine: cancel it on the engine that runs it`,
        );
      return this.elsewhere.request(id, { type: 'cancel', reason }, (s) =>
        isFinalStatus(s.status) ? 'done' : 'wait',
      );
    }
    if (rt.isFinal) return rt.summary();
    const final = this.watchers.wait(id, undefined);
    rt.cancel(reason);
    return final;
  }

  async pause(id: string): Promise<BatchSummary> {
    requireBatchId(id, 'pause');
    const rt = await this.runningHere(id, 'pause');
    if (!rt)
      return this.elsewhere!.request(id, { type: 'pause' }, (s) =>
        s.status === 'PAUSED' ? 'done' : isFinalStatus(s.status) ? 'refused' : 'wait',
      );
    if (rt.status === 'PAUSED') return rt.summary();
    if (rt.status !== 'PROCESSING')
      throw new ConflictError(id, `batch "${id}" is ${rt.status}: only a PROCESSING batch can be paused`);
    await rt.pause();
    await rt.flush(); // paused is stored before pause() resolves: a restart keeps it paused
    return rt.summary();
  }

  async retryFailed(id: string): Promise<BatchSummary> {
    requireBatchId(id, 'retryFailed');
    this.requireRunning('retryFailed');
    const live = this.running!.get(id)?.summary() ?? this.queue!.summary(id);
    if (live && !isFinalStatus(live.status))
      throw new ConflictError(id, `batch "${id}" is ${live.status}: only a final batch can be retried`);
    const broken = this.recovery?.broken.get(id);
    if (broken) throw broken;
    const { record, summary } = await redrive(this.store!, this.jobs, id);
    this.log.info({ batchId: id, run: summary.run }, 'batch retried');
    await this.enqueue(record, true, summary);
    this.queue!.parentRestarted(id);
    this.admit();
    return this.running!.get(id)?.summary() ?? this.queue!.summary(id) ?? summary;
  }

  async resume(id: string): Promise<BatchSummary> {
    requireBatchId(id, 'resume');
    const rt = await this.runningHere(id, 'resume');
    if (!rt)
      return this.elsewhere!.request(id, { type: 'resume' }, (s) =>
        s.status === 'PROCESSING' || s.status === 'FINALIZING'
          ? 'done'
          : isFinalStatus(s.status)
            ? 'refused'
            : 'wait',
      );
    if (rt.status === 'PROCESSING') return rt.summary();
    if (rt.status !== 'PAUSED')
      throw new ConflictError(id, `batch "${id}" is ${rt.status}: only a PAUSED batch can be resumed`);
    rt.unpause();
    await rt.flush();
    return rt.summary();
  }

  async *partitions<R = unknown>(id: string, filter: PartitionFilter = {}): AsyncIterable<PartitionView<R>> {
    requireBatchId(id, 'partitions');
    this.requireStore('partitions');
    parseOrThrow(partitionFilterSchema, filter, 'partitions filter');
    const rt = this.running?.get(id);
    if (rt) await rt.flush();
    else if (!this.queue?.has(id) && !(await this.store!.loadBatch(id))) throw new NotFoundError(id);
    yield* this.store!.partitions(id, filter) as AsyncIterable<PartitionView<R>>;
  }

  subscribe(id: string, listener: (summary: BatchSummary) => void): () => void {
    requireBatchId(id, 'subscribe');
    if (typeof listener !== 'function')
      throw new ValidationError('subscribe(id, listener): listener must be a function', [
        { path: 'listener', message: 'expected a function' },
      ]);
    const running = this.running?.get(id)?.summary();
    if (running) return this.watchers.subscribe(id, listener, running);
    const queued = this.queue?.summary(id);
    if (queued) {
      const off = this.watchers.subscribe(id, listener, queued);
      this.follow?.follow(id); // another engine sharing the store may claim it
      return off;
    }
    // Before start() has resumed what the store holds, the store is read once it has: a batch it
    // resumes here is heard live (that read is then older news), and one that is final, which
    // nothing resumes, is still heard once.
    const early = this.state === 'new' || this.state === 'starting';
    if (!this.store && !early)
      return this.watchers.subscribe(id, listener, Promise.reject(new NotFoundError(id)));
    const current = early
      ? new Promise<BatchSummary>((resolve, reject) =>
          this.afterStart.push(() => this.get(id).then(resolve, reject)),
        )
      : this.get(id);
    const off = this.watchers.subscribe(id, listener, current);
    // Run by another engine: its changes are read from the store. A final batch has none to come.
    current.then(
      (s) => isFinalStatus(s.status) || this.follow?.follow(id),
      () => this.follow?.follow(id), // not stored yet: it may be submitted elsewhere
    );
    return off;
  }

  async prune(options: PruneOptions): Promise<PruneResult> {
    const o = parseOrThrow(pruneOptionsSchema, options, 'prune options');
    this.requireStore('prune');
    const status =
      o.status === undefined ? FINAL_STATUSES : typeof o.status === 'string' ? [o.status] : o.status;
    const filter = { endedBefore: new Date(o.before).toISOString(), status, job: o.job };
    const deleted = await pruneBatches(this.store!, filter, o.limit ?? Number.POSITIVE_INFINITY, (id) =>
      Boolean(this.running?.get(id) || this.queue?.has(id)),
    );
    this.log.info({ deleted, before: filter.endedBefore }, 'ended batches pruned');
    return { deleted };
  }

  async recount(id: string): Promise<{ total: number; succeeded: number; failed: number }> {
    requireBatchId(id, 'recount');
    this.requireStore('recount');
    await this.running?.get(id)?.flush();
    const row = await this.store!.loadBatch(id);
    if (!row) throw new NotFoundError(id);
    return { total: parseRecord(row).total, ...(await this.store!.countOutcomes(id)) };
  }

  metrics(): EngineMetrics {
    const batches: Partial<Record<BatchStatus, number>> = {};
    const queued = this.queue?.size ?? 0;
    if (queued > 0) batches.QUEUED = queued;
    for (const rt of this.running?.values() ?? []) batches[rt.status] = (batches[rt.status] ?? 0) + 1;
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
    if (typeof listener !== 'function')
      throw new ValidationError('observe(listener): listener must be a function', [
        { path: 'listener', message: 'expected a function' },
      ]);
    return this.stats.observe(listener);
  }

  async schedule<I>(options: ScheduleOptions<I>): Promise<ScheduleInfo> {
    this.requireRunning('schedule');
    return this.scheduler!.schedule(checkSchedule(options, this.jobs));
  }

  async unschedule(name: string): Promise<boolean> {
    this.requireRunning('unschedule');
    if (typeof name !== 'string')
      throw new ValidationError('unschedule(name): name must be a string', [
        { path: 'name', message: `expected a string, received ${typeof name}` },
      ]);
    return this.scheduler!.unschedule(name);
  }

  async schedules(): Promise<ScheduleInfo[]> {
    this.requireStore('schedules');
    if (!this.scheduler) throw this.notRunning('schedules');
    return this.scheduler.list();
  }

  // --- internals -----------------------------------------------------------------------------

  private requireRunning(what: string): void {
    if (this.state !== 'running') throw this.notRunning(what);
  }

  private requireStore(what: string): void {
    if (!this.store || this.state === 'stopped' || this.state === 'new') throw this.notRunning(what);
  }

  /** What `what()` answers on an engine that is not running: how to get one that is. */
  private notRunning(what: string): EngineStateError {
    const how =
      this.state === 'stopped' || this.state === 'stopping'
        ? 'an engine does not start again once stopped: create a new one'
        : 'call engine.start() first';
    return new EngineStateError(`${what}() needs a started engine (it is ${this.state}); ${how}`);
  }

  /** The runtime of a batch this engine runs; undefined when another engine sharing the store runs it. */
  /**
   * Why this engine could not resume the batch of `row`. A job it does not have says nothing once
   * the batch is final: another engine ran it to its end.
   */
  private brokenRow(row: BatchRow): PartitaError | undefined {
    const broken = this.recovery?.broken.get(row.id);
    return broken?.code === 'UNKNOWN_JOB' && isFinalStatus(row.status) ? undefined : broken;
  }

  private async runningHere(id: string, what: string): Promise<BatchRuntime | undefined> {
    this.requireRunning(what);
    const rt = this.running!.get(id);
    if (rt && !rt.isFinal) return rt;
    const summary = await this.get(id);
    // A batch admitted elsewhere a moment ago may still be stored as QUEUED: its lease says it runs.
    const runsElsewhere =
      this.elsewhere !== undefined &&
      !isFinalStatus(summary.status) &&
      (summary.status !== 'QUEUED' || (await this.store!.leaseOf(id)) !== undefined);
    if (runsElsewhere) return undefined;
    if (summary.status === 'QUEUED' || isFinalStatus(summary.status))
      throw new ConflictError(id, `batch "${id}" is ${summary.status}: only a running batch can ${what}`);
    throw new EngineStateError(
      `batch "${id}" is ${summary.status} but not run by this engine: ${what} it on the engine that runs it`,
    );
  }

  /**
   * A dependent whose parent ended without the status it waited for is cancelled. Nothing awaits
   * that call: what refuses it (a stored record this version cannot read, written by a newer
   * partita or damaged; the engine stopping) is reported and the batch left as stored, never thrown
   * at the host's process (an outside probe: an unhandled SnapshotVersionError ended the process).
   */
  private cancelDependent(id: string, reason: string): void {
    this.cancel(id, reason).catch((err: unknown) => {
      if (this.state !== 'running') return; // stopping: the next start cancels it
      const error = toError(err);
      this.log.error({ err: error, batchId: id }, 'a dependent could not be cancelled; left as stored');
      this.onError(error, id);
    });
  }

  /**
   * A QUEUED batch that no engine holds, queued elsewhere: queue it here and take it, so that it is
   * cancelled through its statechart like one queued here. Undefined when another engine has taken it.
   */
  private async claimToCancel(id: string): Promise<BatchRuntime | undefined> {
    if (!this.elsewhere || this.state !== 'running') return undefined;
    const row = await this.store!.loadBatch(id);
    if (row?.status !== 'QUEUED' || !this.jobs.has(row.job)) return undefined;
    if (!(await this.resumeStored(parseRecord(row), parseState(row)))) return undefined;
    return this.queue!.take(id);
  }

  private isHere(id: string): boolean {
    return (this.running?.has(id) ?? false) || (this.queue?.has(id) ?? false);
  }

  private admit(): void {
    if (this.state !== 'running') return;
    this.queue!.run();
    this.parentWatch?.poke();
    // Nothing here can start: maybe another engine's batches can (a parent of those waiting here).
    if (this.queue!.ready === 0) this.shared?.soon();
  }

  /**
   * One batch on many hosts (docs/scaling.md): for the jobs with `distribute`, on a store with
   * ranges, this engine offers its batches' partitions in ranges and runs ranges (its own; with
   * `help`, any engine's).
   */
  private distribute(store: Store, owner: string): void {
    const ranges = store.ranges;
    const jobs = new Map([...this.jobs].filter(([, job]) => job.distribute));
    if (!ranges || store.kind === 'memory' || jobs.size === 0) return;
    const storeError = (err: Error, id: string | undefined) => this.storeError(err, id);
    this.offers = new RangeOffers({ ranges, log: this.log, storeError });
    const help = this.options.help;
    this.helping = new Helping({
      store,
      ranges,
      log: this.log,
      owner,
      jobs,
      runners: this.runners,
      helpOthers: help !== undefined && help !== false,
      concurrency: (typeof help === 'object' ? help.concurrency : undefined) ?? DEFAULT_HELP_CONCURRENCY,
      ttlMs: this.options.leaseTtlMs ?? 30_000,
      storeError,
    });
    this.offers.start();
    this.helping.start();
  }

  /**
   * Work shared with the other engines on the store (none can share a memoryStore): claiming
   * unowned batches, carrying out their requests for this engine's batches, and making requests of
   * theirs (docs/scaling.md).
   */
  private shareWork(store: Store): void {
    if (store.kind === 'memory') return;
    const max = this.options.maxConcurrentBatches ?? 4;
    this.shared = new SharedStore({
      store,
      log: this.log,
      jobs: this.jobs,
      owner: this.leases!.ownerId,
      sweepMs: this.options.claimIntervalMs ?? CLAIM_SWEEP_MS,
      watchers: this.watchers,
      follow: this.follow!,
      runsHere: (id) => {
        const rt = this.running!.get(id);
        return rt !== undefined && !rt.isFinal;
      },
      known: (id) =>
        this.isHere(id) ||
        (this.recovery?.isRetrying(id) ?? false) ||
        (this.recovery?.broken.has(id) ?? false),
      // A queued batch waiting for a parent claims no slot: counted, an engine holding a dependent
      // whose parent is unowned in the store would never take the parent (probe, bug 1).
      room: () => max - this.running!.size - this.queue!.ready,
      neededParents: () => this.queue!.remoteParents(),
      take: async (record, state) => {
        const taken = await this.resumeStored(record, state);
        this.admit();
        return taken;
      },
      cancel: (id, reason) => this.cancel(id, reason),
      pause: (id) => this.pause(id),
      resume: (id) => this.resume(id),
      get: (id) => this.get(id),
      storeError: (err, id) => this.storeError(err, id),
    });
    this.elsewhere = this.shared.elsewhere;
    this.shared.start();
  }

  /** Queue a batch; whoever subscribed to its id before it existed hears of it now. */
  private async enqueue(
    record: BatchRecord,
    hasState: boolean,
    shown?: BatchSummary,
    seed?: Seed,
  ): Promise<void> {
    // Queued once: a claim sweep that met a batch this engine was submitting (or already runs)
    // queues nothing, and says nothing (observe() heard QUEUED twice, once after PROCESSING, on
    // PostgreSQL: an outside probe).
    if (!(await this.queue!.add(record, hasState, shown, seed))) return;
    this.stats.batch(record.id, record.job, 'QUEUED');
    const summary = this.queue!.summary(record.id);
    if (summary && this.watchers.listening(record.id)) this.watchers.deliver(record.id, summary);
  }

  /** Recovery found an unfinished batch: a QUEUED one joins the queue; one past it runs here again. */
  private async resumeStored(record: BatchRecord, state: BatchState | undefined): Promise<boolean> {
    if ((state?.status ?? 'QUEUED') === 'QUEUED') {
      // Shown as stored: a redriven batch's run and counts, not a fresh batch's (storedSummary).
      await this.enqueue(record, state !== undefined, state && storedSummary(record, state));
      return true;
    }
    const rt = await this.running!.attach(record, state);
    if (rt && !rt.isFinal) this.queue!.holdSlot(record.id);
    return rt !== undefined;
  }

  private storeError(err: Error, batchId: string | undefined): void {
    // A lost lease is logged where it is found ("lease lost"): nothing of it is kept or retried here.
    if (!(err instanceof LeaseLostError)) {
      this.stats.storeErrors++;
      this.log.error({ err, batchId }, 'store error; data kept in memory and retried');
    }
    this.onError(err, batchId);
  }
}

/**
 * How long `get` of a batch running here waits for the store's view of it before it answers with
 * its own (an outside probe: `get` took 20–30 s while a lock held PostgreSQL's table).
 */
const STORE_GLANCE_MS = 1_000;

/** The value, or undefined if it fails or takes longer than {@link STORE_GLANCE_MS}. */
function glance<T>(pending: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), STORE_GLANCE_MS);
  });
  return Promise.race([pending.catch(() => undefined), late]).finally(() => clearTimeout(timer));
}

async function defaultStore(): Promise<Store> {
  const { sqliteStore } = await import('./store/sqlite.js');
  return sqliteStore({ path: DEFAULT_DB });
}
