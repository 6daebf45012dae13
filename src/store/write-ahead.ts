import { noop } from './sql-rows.js';

/**
 * One write in flight while the caller reads on: createBatch streams a batch's partitions in chunks,
 * and writing chunk k (on SQLite's writer thread, or in PostgreSQL's own process) overlaps reading
 * and checking chunk k + 1 from the source, where each chunk used to wait for the write before it.
 * Writes still run one after another, in order, and at most one chunk is held besides the one being
 * read, so memory stays bounded for a source of any length.
 *
 * A write's failure is passed on by the next {@link push}, by {@link drain}, and by {@link check},
 * which the caller runs before each read from its source: the source is not read on for long after
 * the store failed. When the caller fails on its own side (its source threw), {@link settle} waits
 * for the write in flight before anything is undone and answers that write's failure, if any: the
 * failure that came first is the one reported, as when each chunk waited for the write before it.
 */
export class WriteAhead {
  private pending: Promise<unknown> | undefined;
  private failure: { error: unknown } | undefined;

  /** Start `write` once the write before it is done (its failure is thrown here). */
  async push(write: () => Promise<unknown>): Promise<void> {
    await this.drain();
    const started = write();
    started.catch((error: unknown) => {
      this.failure ??= { error };
    });
    this.pending = started;
  }

  /** Throw the failure of a write that has failed already, if any (cheap: call it per item). */
  check(): void {
    if (this.failure) throw this.failure.error;
  }

  /** Wait for the write in flight; its failure is thrown here. */
  async drain(): Promise<void> {
    const pending = this.pending;
    this.pending = undefined;
    if (pending) await pending;
  }

  /** Wait for the write in flight, whatever its end; answers the failure of a write, if one failed. */
  async settle(): Promise<unknown> {
    await this.pending?.catch(noop);
    this.pending = undefined;
    return this.failure?.error;
  }
}
