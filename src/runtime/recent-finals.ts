import type { BatchStatus } from '../summary.js';

/** How many recently ended batches are remembered. */
const CAPACITY = 10_000;

/**
 * Final statuses of the batches that ended here most recently, so that a batch submitted `after` one
 * of them learns its status without a store read, and one queued while its parent ends never misses
 * it. Bounded: older ones are read from the store, as any batch run elsewhere.
 */
export class RecentFinals {
  private readonly map = new Map<string, BatchStatus>();

  set(id: string, status: BatchStatus): void {
    this.map.delete(id);
    this.map.set(id, status);
    if (this.map.size > CAPACITY) this.map.delete(this.map.keys().next().value as string);
  }

  get(id: string): BatchStatus | undefined {
    return this.map.get(id);
  }
}
