import { noop } from './sql-rows.js';

/**
 * One write in flight while the caller reads on: createBatch streams a batch's partitions in chunks,
 * and writing chunk k (on SQLite's writer thread, or in PostgreSQL's own process) overlaps reading
 * and checking chunk k + 1 from the source, where each chunk used to wait for the write before it.
 * Writes still run one after another, in order, and at most one chunk is held besides the one being
 * read, so memory stays bounded for a source of any length.
 *
 * A write's failure is passed on by the next {@link push} or by {@link drain}; the caller's own
 * failure (its source threw) calls {@link settle} before undoing, so that nothing is left running.
 */
export class WriteAhead {
  private pending: Promise<unknown> | undefined;

  /** Start `write` once the write before it is done (its failure is thrown here). */
  async push(write: () => Promise<unknown>): Promise<void> {
    await this.drain();
    const started = write();
    started.catch(noop); // passed on by the next push or drain, not unhandled meanwhile
    this.pending = started;
  }

  /** Wait for the write in flight; its failure is thrown here. */
  async drain(): Promise<void> {
    const pending = this.pending;
    this.pending = undefined;
    if (pending) await pending;
  }

  /** Wait for the write in flight, whatever its end. */
  async settle(): Promise<void> {
    await this.pending?.catch(noop);
    this.pending = undefined;
  }
}
