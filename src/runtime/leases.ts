import { isProvablyGone, markGone, markLive } from '../liveness.js';
import type { Fence, Lease, Store } from '../store/store.js';
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
 * refuses means another engine took the batch over; a renewal that fails with an error is reported
 * and the lease counted as lost once it would have expired.
 */
export class Leases {
  private readonly held = new Map<string, { lease: Lease; renewedAt: number }>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    readonly ownerId: string,
    private readonly ttlMs: number,
    private readonly events: LeaseEvents,
  ) {}

  /**
   * Take the lease, also from a dead owner of this host. Undefined when a live engine holds it.
   * Also says what the store held for the batch at that moment (status, journal position).
   */
  async acquire(
    batchId: string,
  ): Promise<{ fence: Fence; status: BatchStatus; journalSeq: number } | undefined> {
    let lease = await this.store.acquireLease(batchId, this.ownerId, this.ttlMs);
    if (!lease) {
      const holder = await this.store.leaseOf(batchId);
      if (holder && isProvablyGone(holder.owner))
        lease = await this.store.acquireLease(batchId, this.ownerId, this.ttlMs, holder.owner);
    }
    if (!lease) return undefined;
    this.held.set(batchId, { lease, renewedAt: Date.now() });
    return {
      fence: { owner: lease.owner, epoch: lease.epoch },
      status: lease.status,
      journalSeq: lease.journalSeq,
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

  private async renewAll(): Promise<void> {
    for (const [batchId, held] of [...this.held]) {
      let renewed: boolean;
      try {
        renewed = await this.store.renewLease(batchId, held.lease, this.ttlMs);
      } catch (err) {
        this.events.error(err as Error, batchId);
        // Unknown whether the store still has it; past its time to live another engine may.
        renewed = Date.now() - held.renewedAt < this.ttlMs;
        if (renewed) continue;
      }
      if (this.held.get(batchId) !== held) continue; // released meanwhile
      if (renewed) held.renewedAt = Date.now();
      else {
        this.held.delete(batchId);
        this.events.lost(batchId);
      }
    }
  }
}
