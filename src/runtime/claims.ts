import type { Logger } from 'pino';
import { toError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { BatchRecord, BatchRow, BatchState, Store } from '../store/store.js';
import { parseRecord, parseState } from './records.js';

/** How often an engine looks for batches nobody holds, when no notification told it of one. */
export const CLAIM_SWEEP_MS = 1_000;

/** Batches past QUEUED that one sweep takes over at most, besides the QUEUED ones it has room for. */
const TAKEOVERS_PER_SWEEP = 64;

/** How soon a sweep follows a slot coming free. */
const SOON_MS = 50;

/** How long after another engine's lease expires the sweep that takes its batch over runs. */
const AFTER_EXPIRY_MS = 20;

export interface ClaimsDeps {
  store: Store;
  log: Logger;
  jobs: ReadonlyMap<string, AnyJobDefinition>;
  /** This engine's lease owner id (its own leases are not waited for). */
  owner: string;
  sweepMs: number;
  /** Does this engine know the batch already (running, queued, being resumed, or unreadable)? */
  known(id: string): boolean;
  /**
   * How many more QUEUED batches this engine may take into its queue now (those queued here that
   * wait for a parent do not count against it).
   */
  room(): number;
  /** Parents that batches queued here wait for, run by no engine here. */
  neededParents(): Iterable<string>;
  /** Queue it or run it here, as recovery does; false when another engine got it first. */
  resume(record: BatchRecord, state: BatchState | undefined): Promise<boolean>;
  storeError(err: Error, batchId: string | undefined): void;
  /** Runs at every sweep too: the backstop of what notifications may have missed. */
  alsoAtSweep(): Promise<void>;
}

/**
 * Work shared by the engines on one store (docs/scaling.md): each engine claims the batches that no
 * engine holds. A QUEUED batch submitted on another engine joins this engine's queue too, and
 * whichever engine admits it first takes its lease (the lease's compare-and-set is the claim; the
 * other forgets it). A batch past QUEUED whose lease expired (its owner died, or stopped renewing)
 * is taken over through recovery: snapshot, journal replay, redelivery. Engines hear of new batches
 * through the store's notifications (PostgreSQL); a sweep every `sweepMs` finds whatever a lost
 * notification hid, and a sweep runs as soon as another engine's lease expires (`nextLeaseExpiry`),
 * so a dead host's batch is taken over within its lease's time to live. A batch of a job this
 * engine does not define is left to others.
 */
export class Claims {
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private sweeping: Promise<void> | undefined;
  private again = false;
  private dueSoon = false;
  private stopped = false;
  /** When the next sweep is due, in ms: `sweepMs`, or sooner when another engine's lease expires first. */
  private nextDelay: number;

  constructor(private readonly deps: ClaimsDeps) {
    this.nextDelay = deps.sweepMs;
  }

  start(): void {
    this.unwatch = this.deps.store.watch?.((event) => {
      if (event.status === 'QUEUED' && !this.deps.known(event.batchId)) this.sweepNow();
    });
    // The first sweep: at `sweepMs`, or sooner if a lease another engine holds expires first.
    void this.planNext().then(() => {
      if (!this.sweeping && !this.dueSoon) this.arm();
    });
  }

  stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.unwatch?.();
    return this.sweeping ?? Promise.resolve();
  }

  /** A slot came free here: look soon (within {@link SOON_MS}), once for many such calls. */
  soon(): void {
    if (this.stopped || this.sweeping || this.dueSoon) return;
    this.dueSoon = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.sweepNow(), SOON_MS);
    this.timer.unref();
  }

  /** Look for unowned batches now (a notification). */
  sweepNow(): void {
    if (this.stopped) return;
    if (this.sweeping) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.dueSoon = false;
    this.sweeping = this.sweep().finally(() => {
      this.sweeping = undefined;
      if (this.again) {
        this.again = false;
        this.sweepNow();
      } else this.arm();
    });
  }

  private arm(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.sweepNow(), this.nextDelay);
    this.timer.unref();
  }

  /** Sweep again at `sweepMs`, or right after the earliest lease of another engine expires. */
  private async planNext(): Promise<void> {
    let wait: number | undefined;
    try {
      wait = await this.deps.store.nextLeaseExpiry?.(this.deps.owner);
    } catch {
      wait = undefined; // the sweep's own read reports store errors; the next sweep retries
    }
    this.nextDelay =
      wait === undefined
        ? this.deps.sweepMs
        : Math.min(this.deps.sweepMs, Math.max(0, wait) + AFTER_EXPIRY_MS);
  }

  private async sweep(): Promise<void> {
    try {
      await this.sweepOnce();
    } finally {
      await this.planNext();
    }
  }

  private async sweepOnce(): Promise<void> {
    await this.deps.alsoAtSweep();
    const { store, known, jobs } = this.deps;
    let room = this.deps.room();
    let rows: BatchRow[];
    try {
      rows = await store.listUnowned(Math.max(0, room) + TAKEOVERS_PER_SWEEP);
    } catch (err) {
      this.deps.storeError(toError(err), undefined);
      return;
    }
    const listed = new Set<string>();
    for (const row of rows) {
      if (this.stopped) return;
      listed.add(row.id);
      if (known(row.id) || !jobs.has(row.job)) continue;
      if (row.status === 'QUEUED' && room <= 0) continue;
      const read = readable(row);
      if (!read) continue;
      try {
        if (!(await this.deps.resume(read.record, read.state))) continue;
        // Counted again rather than one less: a batch taken that waits for a parent takes no slot.
        if (row.status === 'QUEUED') room = this.deps.room();
        else this.deps.log.info({ batchId: row.id, status: row.status }, 'batch taken over');
      } catch (err) {
        this.deps.storeError(toError(err), row.id);
      }
    }
    await this.claimNeededParents(listed);
  }

  /**
   * QUEUED parents that batches queued here wait for and that no engine runs: taken by id. The
   * listing above is ordered by priority, and dependents of a higher priority than their parent,
   * queued here already (and skipped as known), can fill all of it sweep after sweep: their parent
   * was then never listed, and they waited for good (review of the outside probe's fix).
   */
  private async claimNeededParents(listed: ReadonlySet<string>): Promise<void> {
    let asked = 0;
    for (const id of this.deps.neededParents()) {
      if (this.stopped || asked >= TAKEOVERS_PER_SWEEP || this.deps.room() <= 0) return;
      if (listed.has(id) || this.deps.known(id)) continue;
      asked++;
      try {
        const row = await this.deps.store.loadBatch(id);
        if (row?.status !== 'QUEUED' || !this.deps.jobs.has(row.job)) continue;
        const read = readable(row);
        // Queued here as any QUEUED batch is: whichever engine admits it first takes its lease.
        if (read) await this.deps.resume(read.record, read.state);
      } catch (err) {
        this.deps.storeError(toError(err), id);
      }
    }
  }
}

/** A stored batch's record and state, or undefined when unreadable (reported by the start() that met it, and never touched). */
function readable(row: BatchRow): { record: BatchRecord; state: BatchState | undefined } | undefined {
  try {
    return { record: parseRecord(row), state: parseState(row) };
  } catch {
    return undefined;
  }
}
