import { isProvablyGone, markGone, markLive } from '../liveness.js';
import type { BatchControl, Fence, Lease, Store } from '../store/store.js';
import type { BatchStatus } from '../summary.js';

export interface LeaseEvents {
  /** The lease on `batchId` is gone (another engine holds it now): stop working on the batch. */
  lost(batchId: string): void;
  /** A renewal failed with an error (not a refusal); the lease is kept until it would expire. */
  error(err: Error, batchId: string): void;
}

/**
 * The leases this engine holds (docs/recovery.md, "Leases"): taken when a batch is attached,
 * renewed by a heartbeat at a third of their time to live, released on stop. A renewal the store
 * refuses means another engine took the batch over. A renewal that fails with an error is reported,
 * and the lease is kept: past its time to live it is not fresh (nothing more starts, see `fresh`)
 * until a renewal answers; the store then says whether it is still ours (its epoch unchanged) or
 * another engine's. Every write is fenced by the epoch, so keeping it is safe, and a store outage
 * longer than the time to live no longer throws away the outcomes held in memory (an outside probe:
 * a 45 s lock on PostgreSQL re-ran 3,700 partitions that had succeeded).
 */
export class Leases {
  private readonly held = new Map<string, { lease: Lease; renewedAt: number }>();
  /** Per batch: what waits for a renewal under way (see `confirm`). */
  private readonly confirming = new Map<string, Array<() => void>>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    readonly ownerId: string,
    private readonly ttlMs: number,
    private readonly events: LeaseEvents,
    /** The jobs this engine runs: under the cluster-wide cap, their QUEUED batches come in order. */
    private readonly jobs: readonly string[] = [],
  ) {}

  /**
   * Take the lease, also from a dead owner of this host. Undefined when a live engine holds it.
   * Also says what the store held for the batch at that moment (status, journal position).
   */
  async acquire(
    batchId: string,
    /** The cluster-wide cap, for a batch admitted from QUEUED: 'full' when it is what refused it. */
    cap?: number,
  ): Promise<
    | { fence: Fence; status: BatchStatus; journalSeq: number; control: BatchControl | undefined }
    | 'full'
    | undefined
  > {
    // The lease counts from when it was asked for, not from when the answer was read: an answer
    // read after a stall would otherwise make a lease look fresh that the store let expire.
    const askedAt = Date.now();
    let lease =
      cap !== undefined && this.store.acquireLeaseWithin
        ? await this.store.acquireLeaseWithin(batchId, this.ownerId, this.ttlMs, cap, this.jobs)
        : await this.store.acquireLease(batchId, this.ownerId, this.ttlMs);
    if (lease === 'full') return 'full';
    if (!lease) {
      const holder = await this.store.leaseOf(batchId);
      if (holder && isProvablyGone(holder.owner))
        lease = await this.store.acquireLease(batchId, this.ownerId, this.ttlMs, holder.owner);
    }
    if (!lease) return undefined;
    this.held.set(batchId, { lease, renewedAt: askedAt });
    return {
      fence: { owner: lease.owner, epoch: lease.epoch },
      status: lease.status,
      journalSeq: lease.journalSeq,
      control: lease.control,
    };
  }

  start(): void {
    markLive(this.ownerId);
    this.heartbeat = setInterval(() => void this.renewAll(), Math.max(50, Math.floor(this.ttlMs / 3)));
    this.heartbeat.unref();
  }

  /** Stop renewing (the engine stops); leases are released one by one with `release`. */
  stop(): void {
    clearInterval(this.heartbeat);
    markGone(this.ownerId);
  }

  /** Give the lease back (graceful stop, or the batch is final). Failures only delay a takeover. */
  async release(batchId: string): Promise<void> {
    const held = this.held.get(batchId);
    this.held.delete(batchId);
    // A failed release only delays a takeover until the lease expires: nothing to retry.
    if (held) await this.store.releaseLease(batchId, held.lease).catch(() => {});
  }

  /** Forget a lease without writing (it was lost). */
  forget(batchId: string): void {
    this.held.delete(batchId);
  }

  /**
   * Has this engine renewed the batch's lease within its time to live? When not (the process was
   * stalled: a long GC, SIGSTOP, a saturated event loop), another engine may have taken the batch
   * over, and nothing more should start until a renewal says it is still ours (`confirm`).
   */
  fresh(batchId: string): boolean {
    const until = this.freshUntil(batchId);
    return until === undefined || Date.now() < until;
  }

  /**
   * `Date.now()` past which the batch's lease may have been taken over (its last renewal plus its
   * time to live): a pool thread that takes one of its tasks later runs nothing (runner.ts).
   */
  freshUntil(batchId: string): number | undefined {
    const held = this.held.get(batchId);
    return held === undefined ? undefined : held.renewedAt + this.ttlMs;
  }

  /**
   * Renew the batch's lease now and call `then` once it is ours again. Never called when the lease
   * is lost (the batch is then given up) or released.
   */
  confirm(batchId: string, then: () => void): void {
    const waiting = this.confirming.get(batchId);
    if (waiting) {
      waiting.push(then);
      return;
    }
    const list = [then];
    this.confirming.set(batchId, list);
    const held = this.held.get(batchId);
    void (held ? this.renew(batchId, held) : Promise.resolve(true)).then((answered) => {
      this.confirming.delete(batchId);
      if (!this.held.has(batchId)) return; // lost (the batch is given up) or released
      if (this.fresh(batchId)) {
        for (const fn of list) fn();
        return;
      }
      // Not known to be ours yet. Renewed, but its answer took longer than the time to live (a
      // stall while it was under way): asked again at once. The store failed (an outage): asked
      // again after a pause, not in a loop of failing renewals.
      const again = () => {
        for (const fn of list) this.confirm(batchId, fn);
      };
      if (answered) again();
      else setTimeout(again, this.retryMs).unref();
    });
  }

  /** How long a start waits before it asks again after a renewal failed with an error. */
  private get retryMs(): number {
    return Math.max(50, Math.min(1_000, Math.floor(this.ttlMs / 3)));
  }

  private async renewAll(): Promise<void> {
    for (const [batchId, held] of [...this.held]) await this.renew(batchId, held);
  }

  /** Renew now. False when the store failed (the lease is kept, see the class comment). */
  private async renew(batchId: string, held: { lease: Lease; renewedAt: number }): Promise<boolean> {
    // As in acquire: from when the renewal was sent. A renewal the store answered just before the
    // process was stopped (SIGSTOP, a long pause) is read when it wakes, long after: counted from
    // then, the lease looked fresh for another time to live, and starts went on while another
    // engine had taken the batch over (an outside probe saw partitions start 34-104 ms after the
    // wake whose outcome the other engine had stored seconds before).
    const sentAt = Date.now();
    let renewed: boolean;
    try {
      renewed = await this.store.renewLease(batchId, held.lease, this.ttlMs);
    } catch (err) {
      // Unknown whether the store still has it for us: kept, and not fresh once its time to live
      // has passed, until a renewal answers (nothing starts meanwhile; writes are fenced anyway).
      this.events.error(err as Error, batchId);
      return false;
    }
    if (this.held.get(batchId) !== held) return true; // released meanwhile
    if (renewed) held.renewedAt = Math.max(held.renewedAt, sentAt);
    else {
      this.held.delete(batchId);
      this.events.lost(batchId);
    }
    return true;
  }
}
