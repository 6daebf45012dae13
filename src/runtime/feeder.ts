import type { PartitionRow, Store } from '../store/store.js';

/**
 * Holds the pages of a batch's partitions that are about to be dispatched, so the batch actor
 * needs only indexes in its context. The machine asks for a page ahead of its cursor
 * (`loadPartitions`) and dispatches only what `PARTITIONS.LOADED` said is here, so `take` never misses.
 */
export class PartitionFeeder {
  private readonly rows = new Map<number, PartitionRow>();

  constructor(
    private readonly store: Store,
    private readonly batchId: string,
  ) {}

  /**
   * Load [from, from + count): the new end of what is loaded, and the indexes in the page that have
   * an outcome already (not kept: the batch skips them).
   */
  async load(from: number, count: number): Promise<{ loaded: number; settled: number[] }> {
    const page = await this.store.readPartitions(this.batchId, from, count);
    const settled: number[] = [];
    for (const row of page) {
      if (row.status === 'pending') this.rows.set(row.index, row);
      else settled.push(row.index);
    }
    return { loaded: from + page.length, settled };
  }

  /** Load single partitions (those to redeliver after a restart, which lie behind the cursor). */
  async loadEach(indexes: readonly number[]): Promise<void> {
    for (const index of indexes) {
      const [row] = await this.store.readPartitions(this.batchId, index, 1);
      if (row) this.rows.set(index, row);
    }
  }

  /** The partition at `index`, kept until `release`. */
  get(index: number): PartitionRow {
    const row = this.rows.get(index);
    if (!row)
      throw new Error(`partition ${index} of batch ${this.batchId} was dispatched before it was loaded`);
    return row;
  }

  /** The partition settled: its payload is no longer needed in memory. */
  release(index: number): void {
    this.rows.delete(index);
  }

  clear(): void {
    this.rows.clear();
  }
}
