import type { Logger } from 'pino';
import type { InspectionEvent } from 'xstate';
import { LeaseLostError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { BatchRecord, BatchState, Store } from '../store/store.js';
import { type BatchStatus, type BatchSummary, isFinalStatus } from '../summary.js';
import { BatchRuntime, type RuntimeEvent } from './batch-runtime.js';
import type { Seed } from './feeder.js';
import type { Leases } from './leases.js';
import type { BatchQueue } from './queue.js';
import type { RangeOffers } from './range-offers.js';
import type { RateLimiter } from './rate-limiter.js';
import { parseState } from './records.js';
import { RemoteRunner } from './remote-work.js';
import type { EngineStats } from './stats.js';
import type { Watchers } from './watchers.js';
import type { WorkRunner } from './work.js';
import type { Yielder } from './yielder.js';

export interface RunningDeps {
  store: Store;
  jobs: ReadonlyMap<string, AnyJobDefinition>;
  runners: ReadonlyMap<string, WorkRunner>;
  limiters: ReadonlyMap<string, RateLimiter>;
  /** The ranges this engine's distributed batches offer (a store with ranges only). */
  offers?: RangeOffers | undefined;
  leases: Leases;
  log: Logger;
  inspect: ((event: InspectionEvent) => void) | undefined;
  flushDelayMs: number;
  yielder: Yielder;
  watchers: Watchers;
  stats: EngineStats;
  queue: () => BatchQueue;
  /** The batch's summary as the store has it (after a lost lease). */
  stored: (id: string) => Promise<BatchSummary | undefined>;
  storeError: (err: Error, batchId: string) => void;
  /** Submit the triggered batches of a final batch (see BatchRuntime's `triggers`). */
  triggers: (
    job: AnyJobDefinition,
    final: BatchSummary,
    signal: AbortSignal,
    out: NonNullable<BatchSummary['triggered']>,
  ) => Promise<void>;
  /** Something ended: admit what can run now. */
  admit: () => void;
  /** Follow a batch run elsewhere through the store for whoever listens here (RemoteFollow). */
  follow: (id: string) => void;
  /** `clusterMaxConcurrentBatches`, if set. */
  clusterCap?: number | undefined;
}

/** A QUEUED batch not admitted because the cluster-wide cap is reached: it waits for room. */
export class ClusterFull extends Error {
  constructor(readonly batchId: string) {
    super(`clusterMaxConcurrentBatches reached: batch "${batchId}" waits for room`);
  }
}

/**
 * The batches running on this engine, one BatchRuntime each: created with the batch's lease, and
 * followed through their events (docs/architecture.md, "The data path") until they end or this engine
 * loses them.
 */
export class RunningBatches {
  private readonly runtimes = new Map<string, BatchRuntime>();

  constructor(private readonly deps: RunningDeps) {}

  get(id: string): BatchRuntime | undefined {
    return this.runtimes.get(id);
  }

  has(id: string): boolean {
    return this.runtimes.has(id);
  }

  values(): IterableIterator<BatchRuntime> {
    return this.runtimes.values();
  }

  /** How many batches run here. */
  get size(): number {
    return this.runtimes.size;
  }

  /** The status of a batch running here, or undefined. */
  status(id: string): BatchStatus | undefined {
    return this.runtimes.get(id)?.status;
  }

  /**
   * Take the lease and create the batch's runtime. Undefined when another live engine owns it;
   * throws when it cannot start now, {@link ClusterFull} when `admitted` from QUEUED and the
   * cluster-wide cap is reached.
   */
  async attach(
    record: BatchRecord,
    known: BatchState | undefined,
    seed?: Seed,
    admitted = false,
  ): Promise<BatchRuntime | undefined> {
    const d = this.deps;
    const taken = await d.leases.acquire(record.id, admitted ? d.clusterCap : undefined);
    if (taken === 'full') throw new ClusterFull(record.id);
    if (!taken) return undefined;
    const { fence } = taken;
    let state = known;
    // A batch submitted here whose lease was taken while it was QUEUED with nothing journaled: its
    // partitions are all pending as stored, and the seed is them (feeder.ts). Only on a store that
    // writes outcomes with the state that counts them (Store.commit): on the others a crash between
    // the two can leave outcomes under a QUEUED row.
    const pending = !known && taken.status === 'QUEUED' && taken.journalSeq === 0 && d.store.commit;
    let first = pending ? seed : undefined;
    if (taken.status !== (known?.status ?? 'QUEUED') || taken.journalSeq !== (known?.journalSeq ?? 0)) {
      first = undefined;
      // Another engine sharing the store ran it since it was read: start from what is stored now.
      state = await this.current(record.id).catch(async (err) => {
        await d.leases.release(record.id);
        throw err;
      });
      if (!state || isFinalStatus(state.status)) {
        await d.leases.release(record.id);
        return undefined;
      }
    }
    const job = d.jobs.get(record.job)!;
    const offers = job.distribute && d.offers;
    if (offers) {
      // Ranges an earlier owner offered: their members are in flight in the state read above and
      // are offered again; whatever their holders still stage for them is never read.
      try {
        await d.store.ranges!.withdraw(record.id, { belowEpoch: fence.epoch });
      } catch (err) {
        await d.leases.release(record.id);
        throw err;
      }
    }
    const rt = new BatchRuntime(
      {
        store: d.store,
        job,
        runner: offers
          ? new RemoteRunner(record.id, job.name, fence.owner, fence, offers)
          : d.runners.get(job.name)!,
        distributed: offers ? job.distribute : undefined,
        // Ranges still offered (a cancel's, a failure policy's end) are withdrawn before the end is told.
        atEnd: offers ? () => d.store.ranges!.withdraw(record.id) : undefined,
        record,
        fence,
        logger: d.log,
        inspect: d.inspect,
        flushDelayMs: d.flushDelayMs,
        yielder: d.yielder,
        stats: d.stats,
        limiter: d.limiters.get(job.name),
        seed: first,
        lease: {
          fresh: () => d.leases.fresh(record.id),
          freshUntil: () => d.leases.freshUntil(record.id),
          confirm: (then) => d.leases.confirm(record.id, then),
        },
        triggers:
          (job.triggers?.length ?? 0) > 0
            ? (final, signal, out) => d.triggers(job, final, signal, out)
            : undefined,
        events: (r, event) => this.onEvent(r, event),
      },
      state,
    );
    this.runtimes.set(record.id, rt);
    try {
      await rt.start(state, taken.control);
    } catch (err) {
      this.runtimes.delete(record.id);
      await rt.stop().catch(() => {}); // nothing was started: nothing to save
      await d.leases.release(record.id);
      throw err;
    }
    return rt;
  }

  /** Stop every batch (each saves its state) and give its lease back. */
  async stopAll(): Promise<void> {
    const runtimes = [...this.runtimes.values()];
    this.runtimes.clear();
    await Promise.all(
      runtimes.map(async (rt) => {
        try {
          await rt.stop();
        } catch (err) {
          this.deps.log.error(
            { err, batchId: rt.id },
            'could not save batch state on stop; it resumes from its last durable state',
          );
        }
        await this.deps.leases.release(rt.id);
      }),
    );
  }

  /** The batch's stored state now (read after taking its lease, so no other engine writes it). */
  private async current(id: string): Promise<BatchState | undefined> {
    const row = await this.deps.store.loadBatch(id);
    return row ? parseState(row) : undefined;
  }

  private onEvent(rt: BatchRuntime, event: RuntimeEvent): void {
    const d = this.deps;
    switch (event.type) {
      case 'changed':
        if (d.watchers.listening(rt.id)) d.watchers.deliver(rt.id, rt.summary());
        return;
      case 'status':
        d.stats.batch(rt.id, rt.job, event.status);
        return;
      case 'final':
        d.stats.batch(rt.id, rt.job, event.summary.status, durationOf(event.summary));
        this.runtimes.delete(rt.id);
        d.queue().ended(rt.id, event.summary.status);
        // Not released: a final batch is never resumed, so its lease needs no write.
        d.leases.forget(rt.id);
        d.watchers.settle(rt.id, event.summary);
        d.admit();
        return;
      case 'store-error':
        d.storeError(event.error, rt.id);
        return;
      case 'lease-lost':
        void this.lostLease(rt);
        return;
    }
  }

  /** Another engine runs the batch now: settle everyone here with what the store says. */
  private async lostLease(rt: BatchRuntime): Promise<void> {
    const d = this.deps;
    if (this.runtimes.get(rt.id) === rt) this.runtimes.delete(rt.id);
    d.leases.forget(rt.id);
    d.storeError(new LeaseLostError(rt.id), rt.id);
    const stored = await d.stored(rt.id);
    d.queue().ended(rt.id, stored?.status);
    if (stored && isFinalStatus(stored.status)) d.watchers.settle(rt.id, stored);
    else {
      // Listeners were promised every change until the batch is final: the store tells them now.
      d.watchers.failWaiters(rt.id, new LeaseLostError(rt.id), stored);
      if (d.watchers.listening(rt.id)) d.follow(rt.id);
    }
    d.admit();
  }
}

/** How long a final batch took: from the start of processing (or its submit) to its end. */
function durationOf(summary: BatchSummary): number | undefined {
  if (!summary.finishedAt) return undefined;
  return Date.parse(summary.finishedAt) - Date.parse(summary.startedAt ?? summary.createdAt);
}
