import { payloadCell } from '../store/sql-rows.js';
import type { PartitionRow, Store } from '../store/store.js';

/**
 * Holds the pages of a batch's partitions that are about to be dispatched, so the batch actor
 * needs only indexes in its context. The machine asks for a page ahead of its cursor
 * (`loadPartitions`) and dispatches only what `PARTITIONS.LOADED` said is here, so `take` never misses.
 */
export class PartitionFeeder {
  private readonly rows = new Map<number, PartitionRow>();
  /** Every partition of a small batch just submitted here, as it was stored (see `Seed`). */
  private seed: Seed | undefined;

  constructor(
    private readonly store: Store,
    private readonly batchId: string,
    seed?: Seed,
  ) {
    this.seed = seed;
  }

  /**
   * Load [from, from + count): the new end of what is loaded, and the indexes in the page that have
   * an outcome already (not kept: the batch skips them).
   */
  async load(from: number, count: number): Promise<{ loaded: number; settled: number[] }> {
    const seed = this.seed;
    this.seed = undefined;
    if (seed && from === 0 && count >= seed.length) {
      // The whole batch, pending (it was created a moment ago and nothing ran it): no read.
      seed.forEach((p, index) => {
        this.rows.set(index, {
          index,
          key: p.key,
          payload: payloadCell(p.json ?? null, this.batchId, index),
          status: 'pending',
        });
      });
      return { loaded: seed.length, settled: [] };
    }
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

/**
 * The partitions of a batch submitted by this engine, captured as they were stored (key and payload
 * JSON), when the batch is small: its first page is then known without reading it back. Only for a
 * batch whose lease was taken while it was still QUEUED with nothing journaled (no engine ran any
 * of it), on a store that commits outcomes with their state (`Store.commit`), so every partition
 * is pending as stored.
 */
export type Seed = ReadonlyArray<{ readonly key: string; readonly json: string | undefined }>;
