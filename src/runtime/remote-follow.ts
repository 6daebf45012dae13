import type { Logger } from 'pino';
import { isUnreadableRow, toError } from '../errors.js';
import type { BatchRow, Store } from '../store/store.js';
import { type BatchSummary, isFinalStatus } from '../summary.js';
import { changeKey } from './summary-of.js';
import { asPartitaError, listedSummary, summaryFromRow } from './views.js';
import type { Watchers } from './watchers.js';

/** How often batches run by other engines are read for whoever waits for or listens to them here. */
export const FOLLOW_BACKSTOP_MS = 1_000;

export interface RemoteFollowDeps {
  store: Store;
  watchers: Watchers;
  log: Logger;
  /** Does this engine run the batch (then it reports it itself)? */
  runsHere(id: string): boolean;
  /** Is the batch in this engine's queue? (It may have been claimed by another engine meanwhile.) */
  queuedHere(id: string): boolean;
  /** Another engine runs (or has finished) a batch that is in this engine's queue: drop it here. */
  claimedElsewhere(id: string): void;
}

/** Batches queued here that one backstop tick reads at most (the rest at the next ticks). */
const QUEUED_PER_TICK = 100;

/**
 * `wait` and `subscribe` on a batch that another engine sharing the store runs (docs/scaling.md):
 * its stored summary is read when the store notifies a change of its status (PostgreSQL), and at
 * least every {@link FOLLOW_BACKSTOP_MS} while anyone here follows it, so listeners also see its
 * progress (as often as the owner stores it) and waiters settle with its stored final state.
 */
export class RemoteFollow {
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  /** What each followed batch's listeners heard last, to deliver changes only. */
  private readonly heard = new Map<string, string>();
  private stopped = false;
  private rotation = 0;
  /** Batches whose row could not be read at the last try (warned of once). */
  private readonly unreadable = new Set<string>();

  constructor(private readonly deps: RemoteFollowDeps) {}

  start(): void {
    this.unwatch = this.deps.store.watch?.((event) => {
      const id = event.batchId;
      // Queued here but past QUEUED in the store: another engine claimed it.
      if (event.status !== 'QUEUED' && this.deps.queuedHere(id) && !this.deps.runsHere(id))
        this.deps.claimedElsewhere(id);
      if (this.followed().has(id)) void this.refresh(id);
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.unwatch?.();
  }

  /** Someone here began to follow `id`, which runs elsewhere: read it now, then keep the backstop armed. */
  follow(id: string): void {
    void this.refresh(id);
    this.arm();
  }

  /** Read one batch and tell its followers. */
  async refresh(id: string): Promise<void> {
    if (this.stopped || this.deps.runsHere(id)) return;
    let row: BatchRow | undefined;
    try {
      row = await this.deps.store.loadBatch(id);
    } catch (err) {
      this.unread(id, err, undefined);
      return;
    }
    if (row) this.take(id, row);
  }

  /**
   * Read several batches at once (where the store can: one statement for hundreds) and tell their
   * followers: the backstop's read of everything followed here, which batch by batch cost a store
   * read per batch per second (an outside probe: 1,000 subscriptions on PostgreSQL, 1,181
   * transactions a second).
   */
  private async refreshAll(ids: readonly string[]): Promise<void> {
    const store = this.deps.store;
    if (!store.loadBatches || ids.length < 2) {
      for (const id of ids) await this.refresh(id);
      return;
    }
    let rows: BatchRow[];
    try {
      rows = await store.loadBatches(ids);
    } catch {
      // Each is read alone: what cannot be read is then said batch by batch, as refresh() says it.
      for (const id of ids) await this.refresh(id);
      return;
    }
    for (const row of rows) if (!this.stopped && !this.deps.runsHere(row.id)) this.take(row.id, row);
  }

  /** A batch's stored row, read: tell its followers what it says. */
  private take(id: string, row: BatchRow): void {
    let summary: BatchSummary;
    try {
      summary = summaryFromRow(row);
      this.unreadable.delete(id);
    } catch (err) {
      this.unread(id, err, row);
      return;
    }
    if (this.stopped || this.deps.runsHere(id)) return;
    if (this.deps.queuedHere(id)) {
      if (summary.status === 'QUEUED') return; // still waiting here: the queue reports it
      this.deps.claimedElsewhere(id);
    }
    if (isFinalStatus(summary.status)) {
      this.heard.delete(id);
      this.deps.watchers.settle(id, summary);
      return;
    }
    this.tell(id, summary);
  }

  /** A batch could not be read (the store failed), or its row could not be (`row` given). */
  private unread(id: string, err: unknown, row: BatchRow | undefined): void {
    // Said once per batch, not at every read (a corrupt row stays corrupt until someone mends it).
    if (!this.unreadable.has(id))
      this.deps.log.warn(
        { err: toError(err), batchId: id },
        'could not read a batch run elsewhere; trying again',
      );
    this.unreadable.add(id);
    // A row that is there but cannot be read (corrupt, or from a newer partita): its listeners
    // hear what list() shows of it, with the error, rather than nothing at all.
    if (row && isUnreadableRow(err) && !this.stopped && !this.deps.runsHere(id))
      this.tell(id, listedSummary(row, asPartitaError(err)));
  }

  /** Deliver a summary to the batch's listeners, when it says something new. */
  private tell(id: string, summary: BatchSummary): void {
    const key = changeKey(summary);
    if (this.heard.get(id) === key) return;
    this.heard.set(id, key);
    this.deps.watchers.deliver(id, summary);
  }

  /** Batches someone here follows that this engine does not run (some may be queued here). */
  private followed(): Set<string> {
    const out = new Set<string>();
    for (const id of this.deps.watchers.watched()) if (!this.deps.runsHere(id)) out.add(id);
    return out;
  }

  private arm(): void {
    if (this.stopped || this.timer) return;
    // Not unref'd: a wait() on a batch run elsewhere is work the program still expects.
    this.timer = setTimeout(() => void this.tick(), FOLLOW_BACKSTOP_MS);
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    const ids = this.followed();
    for (const id of this.heard.keys()) if (!ids.has(id)) this.heard.delete(id);
    for (const id of this.unreadable) if (!ids.has(id)) this.unreadable.delete(id);
    const queued: string[] = [];
    const elsewhere: string[] = [];
    for (const id of ids) (this.deps.queuedHere(id) ? queued : elsewhere).push(id);
    await this.refreshAll(elsewhere);
    // Queued here: read only to learn whether another engine claimed them, a few per tick.
    const start = queued.length > 0 ? this.rotation % queued.length : 0;
    for (let i = 0; i < Math.min(QUEUED_PER_TICK, queued.length); i++)
      await this.refresh(queued[(start + i) % queued.length]!);
    this.rotation += QUEUED_PER_TICK;
    if (this.followed().size > 0) this.arm();
  }
}
