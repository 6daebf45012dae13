import { checkBatchId } from './inputs.js';
import { noop } from './sql-rows.js';
import type { BatchRecord, PartitionSource, RangeEvent, StatusEvent } from './store.js';
import { Watchers } from './watchers.js';

/**
 * What every store does alike around its own code: createBatch checks the batch id before anything
 * is written, and watch() keeps its subscriptions in one {@link Watchers}.
 */
export abstract class BaseStore {
  protected readonly watchers: Watchers = new Watchers(() => this.watchersChanged(this.watchCount));
  /** Listeners of the ranges' watch() (stores with ranges). */
  protected readonly rangeWatchers: Watchers<RangeEvent> = new Watchers<RangeEvent>(() =>
    this.watchersChanged(this.watchCount),
  );

  /** Subscriptions to watch() and to the ranges' watch(), together. */
  protected get watchCount(): number {
    return this.watchers.count + this.rangeWatchers.count;
  }

  watch(listener: (event: StatusEvent) => void): () => void {
    return this.watchers.add(listener);
  }

  async createBatch(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }> {
    checkBatchId(record.id);
    return this.create(record, partitions);
  }

  /** createBatch once the id is known to be a valid name. */
  protected abstract create(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }>;

  /** Creations in flight here, by batch id. */
  private readonly creating = new Map<string, Promise<unknown>>();

  /**
   * Runs `create` for `id` once no other creation of that id runs in this store: a second call with
   * the same id waits for the first to end (the first call wins, however long its partitions take
   * to stream; the SQLite and memory stores, whose storage does not make it wait).
   */
  protected async oneCreationAtATime<T>(id: string, create: () => Promise<T>): Promise<T> {
    for (let prior = this.creating.get(id); prior; prior = this.creating.get(id))
      await prior.then(noop, noop);
    const run = create();
    this.creating.set(id, run);
    try {
      return await run;
    } finally {
      if (this.creating.get(id) === run) this.creating.delete(id);
    }
  }

  /** Told the number of subscriptions (watch() and the ranges' watch()) after each change. */
  protected watchersChanged(_count: number): void {}
}

/**
 * A store with a connection: open() connects once however often it is called (concurrent calls
 * share one attempt, a failed one may be retried), and close() waits for an open() in flight,
 * which would otherwise leave a connection nobody closes.
 */
export abstract class ConnectedStore extends BaseStore {
  private opening: Promise<void> | undefined;

  open(): Promise<void> {
    this.opening ??= this.connect().catch((err: unknown) => {
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  async close(): Promise<void> {
    await this.opening?.catch(noop);
    this.opening = undefined;
    await this.disconnect();
  }

  protected abstract connect(): Promise<void>;
  /** Releases the connection, if any. */
  protected abstract disconnect(): Promise<void>;
}
