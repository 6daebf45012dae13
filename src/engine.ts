import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { type Logger, pino } from 'pino';
import {
  type EngineOptions,
  engineOptionsSchema,
  type SubmitOptions,
  submitOptionsSchema,
} from './engine-options.js';
import {
  EngineStateError,
  NotFoundError,
  PartitaError,
  serializeError,
  TimeoutError,
  toError,
  UnknownJobError,
  ValidationError,
} from './errors.js';
import type { JobWithInput, Partition } from './job.js';
import { byAdmissionOrder, parentVerdict } from './runtime/admission.js';
import { BatchRuntime } from './runtime/batch-runtime.js';
import { parseRecord, parseState } from './runtime/records.js';
import { type AnyJob, WorkRunner } from './runtime/work.js';
import { Yielder } from './runtime/yielder.js';
import {
  type BatchFilter,
  type BatchRecord,
  type BatchRow,
  type BatchState,
  type Lease,
  type PartitionFilter,
  type PartitionInput,
  type PartitionView,
  SCHEMA_VERSION,
  type Store,
} from './store/store.js';
import { type BatchStatus, type BatchSummary, isFinalStatus } from './summary.js';
import { parseOrThrow } from './validation.js';
import { resultJsonSchema, WorkerPool } from './workers/pool.js';

export type { EngineOptions, SubmitOptions } from './engine-options.js';

/** Filter for `engine.list`. */
export interface ListFilter {
  status?: BatchStatus | BatchStatus[];
  job?: string;
  limit?: number;
}

/** A snapshot of the engine's load, from `engine.metrics()`. */
export interface EngineMetrics {
  batches: Partial<Record<BatchStatus, number>>;
  queued: number;
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
  wait(id: string, options?: { timeoutMs?: number }): Promise<BatchSummary>;
  list(filter?: ListFilter): Promise<BatchSummary[]>;
  /** Cancel: in-flight work is aborted; resolves with the CANCELLED (or already final) summary. */
  cancel(id: string, reason?: string): Promise<BatchSummary>;
  /** Every partition with its result or error, in index order. */
  partitions(id: string, filter?: PartitionFilter): AsyncIterable<PartitionView>;
  /** Called with the summary at every change, progress included. Returns the unsubscribe function. */
  subscribe(id: string, listener: (summary: BatchSummary) => void): () => void;
  /** The counts recomputed from the stored outcomes. After recovery they equal the summary's. */
  recount(id: string): Promise<{ total: number; succeeded: number; failed: number }>;
  metrics(): EngineMetrics;
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
  const jobs = new Map<string, AnyJob>();
  for (const job of o.jobs as AnyJob[]) {
    if (jobs.has(job.name))
      throw new ValidationError(`Invalid engine options: two jobs are named "${job.name}"`, [
        { path: 'jobs', message: 'duplicate name' },
      ]);
    jobs.set(job.name, job);
  }
  return new PartitaEngine(o as EngineOptions, jobs);
}

type EngineState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

class PartitaEngine implements Engine {
  private state: EngineState = 'new';
  private store: Store | undefined;
  private pool: WorkerPool | undefined;
  private readonly runners = new Map<string, WorkRunner>();
  private readonly runtimes = new Map<string, BatchRuntime>();
  /** Batches whose stored record or state could not be loaded: reported, left untouched. */
  private readonly broken = new Map<string, { row: BatchRow; error: PartitaError }>();
  /** Final statuses of batches that dependents wait on. */
  private readonly finals = new Map<string, BatchStatus>();
  private readonly listeners = new Map<string, Set<(s: BatchSummary) => void>>();
  private readonly leases = new Map<string, Lease>();
  private readonly log: Logger;
  private readonly ownerId: string;
  private heartbeat: NodeJS.Timeout | undefined;
  private submitSeq = 0;
  private storeErrors = 0;
  private settledTotal = 0;
  private readonly startedAt = Date.now();
  /** Dispatching yields to the host's event loop every few milliseconds (see yielder.ts). */
  private readonly yielder: Yielder;

  constructor(
    private readonly options: EngineOptions,
    private readonly jobs: Map<string, AnyJob>,
  ) {
    this.log =
      options.logger === false ? pino({ level: 'silent' }) : (options.logger ?? pino({ name: 'partita' }));
    this.ownerId = options.ownerId ?? `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
    this.yielder = new Yielder(options.yieldAfterMs ?? 5);
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new EngineStateError(`start() called on an engine that is ${this.state}`);
    this.state = 'starting';
    liveOwners.add(this.ownerId);
    try {
      this.store = this.options.store ?? (await defaultStore());
      await this.store.open();
      const workerJobs = [...this.jobs.values()].filter((j) => j.workerUrl);
      if (workerJobs.length > 0) this.pool = new WorkerPool(workerJobs, this.options.workers);
      for (const job of this.jobs.values()) {
        const inWorker = Boolean(job.workerUrl) && resultJsonSchema(job.result as never) !== undefined;
        this.runners.set(job.name, new WorkRunner(job, this.pool, inWorker));
      }
      await this.recover();
      const ttl = this.leaseTtl;
      this.heartbeat = setInterval(() => void this.renewLeases(ttl), Math.max(50, Math.floor(ttl / 3)));
      this.heartbeat.unref();
      this.state = 'running';
      this.admit();
    } catch (err) {
      this.state = 'stopped';
      liveOwners.delete(this.ownerId);
      await this.pool?.destroy().catch(() => {});
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'new') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    if (this.heartbeat) clearInterval(this.heartbeat);
    const store = this.store!;
    await Promise.all(
      [...this.runtimes.values()].map(async (rt) => {
        try {
          await rt.stop();
        } catch (err) {
          this.log.error(
            { err: toError(err), batchId: rt.id },
            'could not save batch state on stop; it resumes from its last durable state',
          );
        }
        const lease = this.leases.get(rt.id);
        if (lease) await store.releaseLease(rt.id, lease).catch(() => {});
      }),
    );
    this.runtimes.clear();
    this.leases.clear();
    await this.pool?.destroy();
    await store.close();
    liveOwners.delete(this.ownerId);
    this.state = 'stopped';
  }

  async submit<I>(
    jobRef: string | JobWithInput<I>,
    input: I,
    options: SubmitOptions = {},
  ): Promise<BatchSummary> {
    this.requireRunning('submit');
    const name = typeof jobRef === 'string' ? jobRef : jobRef?.name;
    const job = this.jobs.get(name);
    if (!job) throw new UnknownJobError(String(name), [...this.jobs.keys()]);
    const opts = parseOrThrow(submitOptionsSchema, options, 'submit options');
    const parsedInput = job.input
      ? parseOrThrow(job.input as never, input, `input for job "${job.name}"`)
      : input;
    const store = this.store!;
    const id = opts.id ?? randomUUID();
    if (opts.id) {
      const existing = this.runtimes.get(id)
        ? this.runtimes.get(id)!.summary()
        : await this.storedSummary(id);
      if (existing) return existing;
    }
    const after = [...new Set(opts.after ?? [])];
    if (after.includes(id))
      throw new ValidationError(`Invalid submit options: batch "${id}" cannot run after itself`, [
        { path: 'after', message: 'cycle' },
      ]);
    for (const parent of after) {
      if (!this.runtimes.has(parent) && !(await store.loadBatch(parent))) {
        throw new ValidationError(`Invalid submit options: unknown parent batch "${parent}"`, [
          { path: 'after', message: `unknown batch "${parent}"` },
        ]);
      }
    }
    const record: BatchRecord = {
      schemaVersion: SCHEMA_VERSION,
      id,
      job: job.name,
      total: 0,
      priority: opts.priority ?? 0,
      after,
      when: opts.when ?? 'succeeded',
      createdAt: new Date().toISOString(),
      ...(opts.meta ? { meta: opts.meta } : {}),
    };
    let source: Iterable<Partition> | AsyncIterable<Partition>;
    try {
      source = job.partition(parsedInput as never) as Iterable<Partition>;
    } catch (err) {
      throw new ValidationError(`job "${job.name}": partition() threw: ${toError(err).message}`, [], err);
    }
    const counter = { total: 0 };
    const { created } = await store.createBatch(record, checkedPartitions(source, counter));
    if (!created) return (await this.storedSummary(id)) ?? this.get(id);
    record.total = counter.total;
    for (const parent of after) await this.rememberFinal(parent);
    const rt = await this.attach(record, undefined);
    if (!rt) throw new EngineStateError(`batch "${id}" was created but another engine holds its lease`);
    await rt.journal.flush();
    this.log.info(
      { batchId: id, job: job.name, total: record.total, priority: record.priority },
      'batch submitted',
    );
    this.admit();
    return rt.summary();
  }

  async get(id: string): Promise<BatchSummary> {
    const rt = this.runtimes.get(id);
    if (rt) return rt.summary();
    this.requireStore('get');
    const broken = this.broken.get(id);
    if (broken) throw broken.error;
    const summary = await this.storedSummary(id);
    if (!summary) throw new NotFoundError(id);
    return summary;
  }

  async wait(id: string, options: { timeoutMs?: number } = {}): Promise<BatchSummary> {
    const rt = this.runtimes.get(id);
    if (!rt) {
      const summary = await this.get(id);
      if (isFinalStatus(summary.status)) return summary;
      throw new EngineStateError(
        `batch "${id}" is ${summary.status} but not run by this engine (is the engine started?)`,
      );
    }
    const final = rt.whenFinal();
    if (options.timeoutMs === undefined) return final;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TimeoutError(options.timeoutMs!, `wait("${id}")`)),
        options.timeoutMs,
      );
    });
    try {
      return await Promise.race([final, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async list(filter: ListFilter = {}): Promise<BatchSummary[]> {
    this.requireStore('list');
    const rows = await this.store!.listBatches(filter as BatchFilter);
    return rows.map((row) => {
      const rt = this.runtimes.get(row.id);
      if (rt) return rt.summary();
      const broken = this.broken.get(row.id);
      if (broken)
        return {
          ...brokenSummary(row, broken.error),
          ...safeSummary(row),
          error: serializeError(broken.error),
        };
      try {
        return summaryFromRow(row);
      } catch (err) {
        return brokenSummary(row, err);
      }
    });
  }

  async cancel(id: string, reason = 'cancelled by request'): Promise<BatchSummary> {
    const rt = this.runtimes.get(id);
    if (!rt) return this.get(id);
    if (rt.isFinal) return rt.summary();
    // A batch whose final state is being stored cannot be cancelled any more: wait for it.
    if (!rt.cancelRequested && rt.actor.getSnapshot().status !== 'done') rt.cancel(reason);
    return rt.whenFinal();
  }

  async *partitions(id: string, filter: PartitionFilter = {}): AsyncIterable<PartitionView> {
    this.requireStore('partitions');
    const rt = this.runtimes.get(id);
    if (rt && !rt.isFinal) await rt.journal.flush();
    else if (!rt && !(await this.store!.loadBatch(id))) throw new NotFoundError(id);
    yield* this.store!.partitions(id, filter);
  }

  subscribe(id: string, listener: (summary: BatchSummary) => void): () => void {
    let set = this.listeners.get(id);
    if (!set) {
      set = new Set();
      this.listeners.set(id, set);
    }
    set.add(listener);
    // The current summary first, so a change between submit and subscribe is never missed.
    const rt = this.runtimes.get(id);
    if (rt) listener(rt.summary());
    else if (this.store)
      this.get(id).then(
        (s) => set.has(listener) && listener(s),
        () => {},
      );
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(id);
    };
  }

  async recount(id: string): Promise<{ total: number; succeeded: number; failed: number }> {
    this.requireStore('recount');
    const rt = this.runtimes.get(id);
    if (rt && !rt.isFinal) await rt.journal.flush();
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
    const seconds = Math.max(0.001, (Date.now() - this.startedAt) / 1000);
    return {
      batches,
      queued: batches.QUEUED ?? 0,
      partitionsPerSecond: this.settledTotal / seconds,
      poolThreads: this.pool?.threads ?? 0,
      poolUtilization: this.pool?.utilization ?? 0,
      storeErrors: this.storeErrors,
    };
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
    if (!this.store || this.state === 'stopped')
      throw new EngineStateError(`${what}() needs a started engine; call engine.start() first`);
  }

  /** Take the lease and create the runtime. Undefined when another live engine owns the batch. */
  private async attach(
    record: BatchRecord,
    state: BatchState | undefined,
  ): Promise<BatchRuntime | undefined> {
    const store = this.store!;
    let lease = await store.acquireLease(record.id, this.ownerId, this.leaseTtl);
    if (!lease) {
      const holder = await store.leaseOf(record.id);
      if (holder && ownerIsDead(holder.owner))
        lease = await store.acquireLease(record.id, this.ownerId, this.leaseTtl, holder.owner);
    }
    if (!lease) return undefined;
    this.leases.set(record.id, lease);
    const job = this.jobs.get(record.job)!;
    const rt = new BatchRuntime(
      {
        store,
        job,
        runner: this.runners.get(job.name)!,
        record,
        fence: { owner: lease.owner, epoch: lease.epoch },
        logger: this.log,
        inspect: this.options.inspect,
        flushDelayMs: this.options.flushDelayMs ?? 5,
        yielder: this.yielder,
        onChange: (r) => this.notify(r),
        onFinal: (r) => this.finished(r),
        onStoreError: (r, err) => this.storeError(err, r.id),
      },
      state,
    );
    rt.seq = ++this.submitSeq;
    this.runtimes.set(record.id, rt);
    await rt.start(state);
    return rt;
  }

  /** Resume every unfinished batch in the store (DESIGN.md section 6). */
  private async recover(): Promise<void> {
    const rows = await this.store!.listBatches({ unfinished: true });
    for (const row of rows) {
      let record: BatchRecord;
      let state: BatchState | undefined;
      try {
        record = parseRecord(row);
        state = parseState(row);
        if (!this.jobs.has(record.job)) throw new UnknownJobError(record.job, [...this.jobs.keys()]);
      } catch (err) {
        const error =
          err instanceof PartitaError ? err : new PartitaError('STORE', toError(err).message, { cause: err });
        this.broken.set(row.id, { row, error });
        this.log.error(
          { batchId: row.id, code: error.code, err: error },
          'batch cannot be resumed; left untouched',
        );
        continue;
      }
      try {
        for (const parent of record.after) await this.rememberFinal(parent);
        const rt = await this.attach(record, state);
        if (!rt) this.log.info({ batchId: row.id }, 'batch is owned by another engine');
      } catch (err) {
        this.log.error({ batchId: row.id, err: toError(err) }, 'batch could not be resumed');
      }
    }
  }

  private async rememberFinal(id: string): Promise<void> {
    if (this.runtimes.has(id) || this.finals.has(id)) return;
    const summary = await this.storedSummary(id).catch(() => undefined);
    if (summary && isFinalStatus(summary.status)) this.finals.set(id, summary.status);
  }

  private statusOf = (id: string): BatchStatus | undefined => {
    const rt = this.runtimes.get(id);
    if (rt) return rt.isFinal ? rt.status : 'PROCESSING';
    return this.finals.get(id);
  };

  /** Event-driven admission: on submit and whenever a batch ends. Never polls. */
  private admit(): void {
    if (this.state !== 'running') return;
    const max = this.options.maxConcurrentBatches ?? 4;
    let active = 0;
    const waiting: BatchRuntime[] = [];
    for (const rt of this.runtimes.values()) {
      const status = rt.actor.getSnapshot().value;
      if (status === 'queued') waiting.push(rt);
      else if (!rt.isFinal) active++;
    }
    const candidates = waiting
      .map((rt) => ({
        rt,
        id: rt.id,
        priority: rt.record.priority,
        createdAt: rt.record.createdAt,
        seq: rt.seq,
        after: rt.record.after,
        when: rt.record.when,
      }))
      .sort(byAdmissionOrder);
    for (const c of candidates) {
      const verdict = parentVerdict(c, this.statusOf);
      if (typeof verdict === 'object') {
        c.rt.cancel(verdict.cancel);
        continue;
      }
      if (verdict === 'wait' || active >= max) continue;
      active++;
      c.rt.admit();
    }
  }

  private notify(rt: BatchRuntime): void {
    const set = this.listeners.get(rt.id);
    if (!set || set.size === 0) return;
    const summary = rt.summary();
    for (const listener of set) {
      try {
        listener(summary);
      } catch (err) {
        this.log.error({ err: toError(err), batchId: rt.id }, 'subscriber threw');
      }
    }
  }

  private finished(rt: BatchRuntime): void {
    const summary = rt.summary();
    this.settledTotal += summary.succeeded + summary.failed;
    this.finals.set(rt.id, summary.status);
    this.runtimes.delete(rt.id);
    // The final summary was the last change: nothing more will reach these listeners.
    this.listeners.delete(rt.id);
    const lease = this.leases.get(rt.id);
    this.leases.delete(rt.id);
    if (lease) this.store?.releaseLease(rt.id, lease).catch(() => {});
    rt.actor.stop();
    this.admit();
  }

  private storeError(err: Error, batchId: string | undefined): void {
    this.storeErrors++;
    this.log.error({ err, batchId }, 'store error; data kept in memory and retried');
    this.options.onError?.(err, batchId);
  }

  private async renewLeases(ttl: number): Promise<void> {
    for (const [id, lease] of this.leases) {
      const ok = await this.store!.renewLease(id, lease, ttl).catch(() => true);
      if (!ok && this.runtimes.has(id)) {
        this.log.error({ batchId: id }, 'lease lost; this engine stops working on the batch');
        const rt = this.runtimes.get(id)!;
        this.runtimes.delete(id);
        this.leases.delete(id);
        await rt.stop().catch(() => {});
      }
    }
  }

  private async storedSummary(id: string): Promise<BatchSummary | undefined> {
    const row = await this.store!.loadBatch(id);
    return row ? summaryFromRow(row) : undefined;
  }
}

/** An error thrown by a job's partition() (or its iterator) is the submitter's input problem. */
function partitionError(err: unknown): ValidationError {
  if (err instanceof ValidationError) return err;
  return new ValidationError(`partition() threw: ${toError(err).message}`, [], err);
}

async function* toAsync<T>(source: Iterable<T>): AsyncGenerator<T> {
  yield* source;
}

/** Validate each partition as it streams into the store; count them. */
async function* checkedPartitions(
  source: Iterable<Partition> | AsyncIterable<Partition>,
  counter: { total: number },
): AsyncIterable<PartitionInput> {
  let iterator: AsyncIterator<Partition>;
  try {
    iterator =
      (source as AsyncIterable<Partition>)[Symbol.asyncIterator]?.() ??
      toAsync(source as Iterable<Partition>);
  } catch (err) {
    throw partitionError(err);
  }
  for (;;) {
    let step: IteratorResult<Partition>;
    try {
      step = await iterator.next();
    } catch (err) {
      throw partitionError(err);
    }
    if (step.done) return;
    const p = step.value;
    if (typeof p !== 'object' || p === null || typeof p.key !== 'string' || p.key.length === 0) {
      throw new ValidationError(
        `Invalid partition #${counter.total}: expected { key: non-empty string, payload }`,
        [{ path: `partitions.${counter.total}.key`, message: 'expected a non-empty string' }],
      );
    }
    counter.total++;
    yield { key: p.key, payload: p.payload };
  }
}

function summaryFromRow(row: BatchRow): BatchSummary {
  const record = parseRecord(row);
  const state = parseState(row);
  if (state?.summary && typeof state.summary === 'object') return state.summary as BatchSummary;
  return {
    id: record.id,
    job: record.job,
    status: 'QUEUED',
    total: record.total,
    succeeded: 0,
    failed: 0,
    running: 0,
    pending: record.total,
    progress: 0,
    failures: [],
    priority: record.priority,
    ...(record.meta ? { meta: record.meta } : {}),
    createdAt: record.createdAt,
  };
}

/** The stored summary when it parses (a batch of an unknown job still has one), else nothing. */
function safeSummary(row: BatchRow): Partial<BatchSummary> {
  try {
    return summaryFromRow(row);
  } catch {
    return {};
  }
}

function brokenSummary(row: BatchRow, err: unknown): BatchSummary {
  return {
    id: row.id,
    job: row.job,
    status: row.status,
    total: 0,
    succeeded: 0,
    failed: 0,
    running: 0,
    pending: 0,
    progress: 0,
    failures: [],
    priority: row.priority,
    createdAt: row.createdAt,
    error: serializeError(err),
  };
}

/** Owner ids of the engines of this process that are started and not yet stopped. */
const liveOwners = new Set<string>();

/** An owner on this host whose process is gone: its leases can be taken over at once. */
function ownerIsDead(owner: string): boolean {
  const [host, pid] = owner.split('/');
  if (host !== hostname() || !pid || !/^\d+$/.test(pid)) return false;
  // An engine of this process that has stopped (a restart within one process) is dead too.
  if (Number(pid) === process.pid) return !liveOwners.has(owner);
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function defaultStore(): Promise<Store> {
  const { sqliteStore } = await import('./store/sqlite.js');
  return sqliteStore({ path: DEFAULT_DB });
}
