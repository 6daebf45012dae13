import type { Logger } from 'pino';
import { backoffDelay } from '../backoff.js';
import { toError } from '../errors.js';
import type { BatchRecord, BatchState, Store } from '../store/store.js';
import { type BatchStatus, type BatchSummary, isFinalStatus } from '../summary.js';
import { Admission, type Candidate } from './admission.js';
import type { BatchRuntime } from './batch-runtime.js';
import type { Seed } from './feeder.js';
import { RecentFinals } from './recent-finals.js';
import { parseState } from './records.js';
import { ClusterFull } from './running.js';
import { queuedSummary } from './views.js';

export interface QueueDeps {
  store: Store;
  log: Logger;
  maxConcurrentBatches: number;
  /** Status of a batch run by this engine now (undefined when none runs here). */
  runningStatus(id: string): BatchStatus | undefined;
  /**
   * Create the runtime of a queued batch: its lease, its actor in QUEUED. Undefined: another engine
   * owns it. `admitted`: it takes a slot (under the cluster-wide cap, which may refuse it with
   * ClusterFull), rather than being created to be cancelled.
   */
  materialize(
    record: BatchRecord,
    state: BatchState | undefined,
    seed: Seed | undefined,
    admitted: boolean,
  ): Promise<BatchRuntime | undefined>;
  /** Cancel a batch whose parent ended so that it can never run. */
  cancel(id: string, reason: string): void;
  storeError(err: Error, batchId: string): void;
  /**
   * A batch left the queue without running here (another engine has it, or it ended meanwhile):
   * if batches queued here wait for it, its end is now to be learnt from the store.
   */
  leftForElsewhere(id: string): void;
}

/** A QUEUED batch as this engine keeps it: its record, not an actor. */
interface Queued {
  record: BatchRecord;
  /** The row has a stored state (a crash caught it between QUEUED and PROCESSING): read it on admission. */
  hasState: boolean;
  /** What the batch shows while queued, when its stored state says more than its record (a redrive). */
  shown: BatchSummary | undefined;
  candidate: Candidate;
  retries: number;
  /** Refused for the cluster-wide cap: queued again once its slot is given back. */
  noRoom?: boolean;
  /** The whole batch as submitted here, when it is small (feeder.ts, `Seed`). */
  seed: Seed | undefined;
}

/** How long admission waits after the cluster-wide cap refused a batch (a slot freed elsewhere is seen then). */
export const CLUSTER_FULL_RETRY_MS = 250;

/**
 * The batches waiting to run (docs/architecture.md, "Admission and many batches"): a small record each, ordered by
 * the admission heap, with no actor, journal or feeder until admitted. Admission takes a slot and
 * creates the runtime; cancelling a queued batch creates it too, so that it ends through the batch
 * statechart (QUEUED → CANCELLED) like any other.
 */
export class BatchQueue {
  private readonly entries = new Map<string, Queued>();
  private readonly materializing = new Map<string, Promise<BatchRuntime | undefined>>();
  private readonly finals = new RecentFinals();
  private readonly admission: Admission;
  private seq = 0;
  private stopped = false;
  /** Set while admission waits: the cluster-wide cap refused a batch (0: not waiting). */
  private fullUntil = 0;
  private fullTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: QueueDeps) {
    this.admission = new Admission(deps.maxConcurrentBatches, {
      admit: (id) => void this.admit(id),
      cancel: (id, reason) => deps.cancel(id, reason),
    });
  }

  /**
   * Queue a batch. Its parents' statuses are looked up once, now: in this engine, among the batches
   * that ended here lately, or in the store. False when it is queued or running here already.
   */
  async add(record: BatchRecord, hasState: boolean, shown?: BatchSummary, seed?: Seed): Promise<boolean> {
    const stored = new Map<string, BatchStatus>();
    /** Parents whose rows the store no longer has (engine.prune deleted them). */
    const gone: string[] = [];
    for (const parent of record.after) {
      if (this.localStatus(parent) !== undefined || this.entries.has(parent)) continue;
      try {
        const row = await this.deps.store.loadBatch(parent);
        if (!row) gone.push(parent);
        else if (isFinalStatus(row.status)) stored.set(parent, row.status);
      } catch {
        // Not known now: the parent watch reads it again.
      }
    }
    const candidate: Candidate = {
      id: record.id,
      priority: record.priority,
      createdAt: record.createdAt,
      seq: ++this.seq,
      after: record.after,
      when: record.when,
    };
    // Queued twice (a claim sweep met a batch this engine was submitting): the first stays.
    if (this.has(record.id) || this.deps.runningStatus(record.id) !== undefined) return false;
    this.entries.set(record.id, {
      record,
      hasState,
      shown,
      candidate,
      retries: 0,
      seed: hasState ? undefined : seed,
    });
    this.admission.queue(candidate, (parent) => this.localStatus(parent) ?? stored.get(parent));
    for (const parent of gone) this.admission.parentGone(parent);
    return true;
  }

  has(id: string): boolean {
    return this.entries.has(id) || this.materializing.has(id);
  }

  /** The summary of a queued batch (undefined when it is not queued here). */
  summary(id: string): BatchSummary | undefined {
    const q = this.entries.get(id);
    return q && (q.shown ?? queuedSummary(q.record));
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Queued batches that claim a slot: all but those waiting for a parent. A batch admitted a moment
   * ago counts here until its runtime runs (it has left admission's queue but not yet joined the
   * engine's running batches).
   */
  get ready(): number {
    return this.entries.size - this.admission.blockedCount;
  }

  /** The creation of the batch's runtime under way (admitted a moment ago), if any. */
  starting(id: string): Promise<BatchRuntime | undefined> | undefined {
    return this.materializing.get(id);
  }

  /** Another engine claimed a batch queued here: forget it (its waiters follow it through the store). */
  drop(id: string): void {
    if (!this.entries.delete(id)) return;
    this.admission.forget(id);
    this.deps.leftForElsewhere(id);
  }

  /** A batch resumed past QUEUED after a restart holds a slot. */
  holdSlot(id: string): void {
    this.admission.holdSlot(id);
  }

  /** A batch run here ended (or was given up): free its slot, wake its dependents. */
  ended(id: string, status: BatchStatus | undefined): void {
    this.admission.forget(id);
    if (status && isFinalStatus(status)) {
      this.finals.set(id, status);
      this.admission.parentEnded(id, status);
    }
  }

  /** A batch that had ended runs again (engine.retryFailed): its waiting dependents wait for it again. */
  parentRestarted(id: string): void {
    this.admission.parentRestarted(id);
  }

  /** A parent run by another engine ended. */
  parentEnded(id: string, status: BatchStatus): void {
    this.finals.set(id, status);
    this.admission.parentEnded(id, status);
  }

  /** A parent that queued batches wait for no longer exists (engine.prune deleted it). */
  parentGone(id: string): void {
    this.admission.parentGone(id);
  }

  /** Parents that queued batches wait for and that this engine does not run. */
  remoteParents(): Set<string> {
    const out = new Set<string>();
    for (const id of this.admission.neededParents())
      if (this.deps.runningStatus(id) === undefined && !this.has(id)) out.add(id);
    return out;
  }

  /** Admit what can run now. */
  run(): void {
    if (!this.stopped && this.fullUntil === 0) this.admission.run();
  }

  /**
   * Take a queued batch out of the queue and create its runtime (for cancel). Resolves undefined
   * when it is not queued here (any more), or another engine owns it.
   */
  take(id: string): Promise<BatchRuntime | undefined> {
    const pending = this.materializing.get(id);
    if (pending) return pending;
    const q = this.entries.get(id);
    if (!q) return Promise.resolve(undefined);
    this.admission.forget(id);
    return this.materialize(q, false);
  }

  /** Stop admitting and wait for runtimes being created (the engine then stops them). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.fullTimer);
    await Promise.allSettled([...this.materializing.values()]);
  }

  private localStatus(id: string): BatchStatus | undefined {
    return this.deps.runningStatus(id) ?? (this.entries.has(id) ? 'QUEUED' : this.finals.get(id));
  }

  /** The admission hook: the batch has a slot; create its runtime and start it. */
  private async admit(id: string): Promise<void> {
    const q = this.entries.get(id);
    const rt = q ? await this.materialize(q, true) : undefined;
    if (rt && !this.stopped) rt.admit();
    else {
      this.admission.forget(id);
      if (q?.noRoom && this.entries.get(id) === q) this.waitForRoom(q);
      // Another engine owns it (or it ended there): a batch queued here after it learns of its end
      // from the store, not from this engine (the probe's "dependent stays QUEUED" case).
      else if (!this.stopped && !this.has(id)) this.deps.leftForElsewhere(id);
      this.run();
    }
  }

  /**
   * The cluster-wide cap refused the batch: it waits in its place in the queue (its parents had
   * ended, so it is ready), and admission pauses for {@link CLUSTER_FULL_RETRY_MS} before it asks
   * again, rather than asking the store for every batch of the backlog.
   */
  private waitForRoom(q: Queued): void {
    q.noRoom = false;
    this.admission.queue(q.candidate, (parent) => this.localStatus(parent));
    this.fullUntil = Date.now() + CLUSTER_FULL_RETRY_MS;
    clearTimeout(this.fullTimer);
    this.fullTimer = setTimeout(() => {
      // Not by comparing clocks: a timer may fire a millisecond before Date.now() says it is due,
      // and then nothing would ever ask again (test/engine-cluster-cap.test.ts hung so).
      this.fullUntil = 0;
      this.run();
    }, CLUSTER_FULL_RETRY_MS);
  }

  private materialize(q: Queued, admitted: boolean): Promise<BatchRuntime | undefined> {
    const id = q.record.id;
    const run = (async () => {
      try {
        const state = q.hasState ? await this.storedState(id) : undefined;
        const rt = await this.deps.materialize(q.record, state, q.seed, admitted);
        this.entries.delete(id);
        return rt;
      } catch (err) {
        if (err instanceof ClusterFull) {
          q.noRoom = true; // admit() queues it again once its slot is given back
          return undefined;
        }
        this.retryLater(q, toError(err));
        return undefined;
      } finally {
        this.materializing.delete(id);
      }
    })();
    this.materializing.set(id, run);
    return run;
  }

  private async storedState(id: string): Promise<BatchState | undefined> {
    const row = await this.deps.store.loadBatch(id);
    return row ? parseState(row) : undefined;
  }

  /** The store failed while starting the batch: it waits in the queue again, after a backoff. */
  private retryLater(q: Queued, err: Error): void {
    this.deps.storeError(err, q.record.id);
    const delay = backoffDelay(++q.retries, 500, 30_000);
    this.deps.log.error({ batchId: q.record.id, err, retryInMs: delay }, 'could not start a queued batch');
    setTimeout(() => {
      if (this.stopped || this.entries.get(q.record.id) !== q) return;
      this.entries.delete(q.record.id);
      void this.add(q.record, q.hasState, q.shown).then(() => this.run());
    }, delay);
  }
}
