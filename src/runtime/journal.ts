import { backoffDelay } from '../backoff.js';
import { LeaseLostError, toError } from '../errors.js';
import type { BatchState, Fence, OutcomeRecord, Store } from '../store/store.js';

export interface JournalOptions {
  /** Longest time an outcome waits before its group is committed. */
  flushDelayMs: number;
  /** A group this large is committed at once, without waiting for the timer. */
  maxGroup: number;
  /**
   * This many outcomes waiting behind the write in flight: the store is behind, and
   * `onBehind` says so (the batch then starts no more work until `onCaughtUp`). Unset: no bound.
   */
  maxBacklog?: number | undefined;
  /** The store fell `maxBacklog` outcomes behind. */
  onBehind?: (() => void) | undefined;
  /** The outcomes that waited went into a write: the store is no longer behind. */
  onCaughtUp?: (() => void) | undefined;
  /**
   * Shortest time between two writes of the state while outcomes come in: the groups between carry
   * only their outcomes. A status change (`touch`) and `flush` write the state at once.
   */
  stateIntervalMs: number;
  /** Called after a failed write; the journal keeps everything and tries again. */
  onError: (err: Error) => void;
  /** The store refused a write because another engine holds the batch now: the journal closes. */
  onLeaseLost: () => void;
  /** Called after a write succeeds again following errors. */
  onRecovered?: () => void;
}

/**
 * Group commit for one batch. Outcomes queue in memory and are written together, then the state
 * (snapshot) that covers them: a state is never written before the outcomes it counts, so after a
 * crash the journal holds every outcome the stored snapshot reflects, plus possibly newer ones that
 * recovery replays. One write is in flight at a time; failures are retried with backoff and
 * nothing queued is dropped.
 *
 * The state goes with a group at most every `stateIntervalMs` while outcomes come in (and at once
 * after a status change, and on `flush`): the groups between carry their outcomes only. A state
 * holds the batch's whole context (every lane's partitions, the failure sample): 10 KB and more,
 * where a group of outcomes paced by real work holds a few rows of 100 bytes, so writing it with
 * every group wrote ten times more state than outcomes (docs/benchmarks.md, "The state at most
 * every 100 ms"). Recovery replays what the stored state does not cover, as it always did.
 */
export class BatchJournal {
  private pending: OutcomeRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private stateDirty = false;
  /** The next write carries the state whatever the time (a status change, a flush). */
  private stateDue = true;
  /** When the state was last written (performance.now()); -Infinity before the first write. */
  private stateAt = Number.NEGATIVE_INFINITY;
  /** The timer set is the one that waits for the state to fall due. */
  private timerForState = false;
  private failures = 0;
  private closed = false;
  /** The store refused a write for a stale fence: nothing more is written. */
  private lost = false;
  /** The status of the last state the store accepted. */
  private durable: BatchState['status'] | undefined;
  /** `onBehind` was called and `onCaughtUp` not yet. */
  private behind = false;

  constructor(
    private readonly store: Store,
    private readonly batchId: string,
    private fence: Fence,
    /** Reads the current state at write time, so it covers every outcome queued so far. */
    private readonly captureState: () => BatchState,
    private readonly options: JournalOptions,
  ) {}

  /** Queue an outcome; it is durable after the next flush. An empty `finishedAt` is stamped at commit. */
  append(outcome: OutcomeRecord): void {
    this.pending.push(outcome);
    this.stateDirty = true;
    // A store slower than the work (a loaded machine, a slow disk, a store that fails) would
    // otherwise let outcomes pile up here without bound: 110,000 of them, 400–740 MB of RSS, in a
    // batch of 1,000,000 partitions on a loaded machine (docs/benchmarks.md, "The store behind").
    if (
      !this.behind &&
      this.options.maxBacklog !== undefined &&
      this.pending.length >= this.options.maxBacklog &&
      (this.writing || this.failures > 0)
    ) {
      this.behind = true;
      this.options.onBehind?.();
    }
    // Under load the event loop may not reach its timers for a few hundred milliseconds (the
    // worker pool's messages keep it busy), so a full group is written at once, not on the timer.
    if (!this.writing && this.writeFullGroup()) return;
    this.schedule();
  }

  /** The state changed in a way worth saving soon (e.g. a status change). */
  touch(): void {
    this.stateDirty = true;
    this.stateDue = true;
    this.schedule();
  }

  /** Write everything queued now and resolve when it (and anything before it) is durable. */
  async flush(): Promise<void> {
    this.stateDirty = true;
    this.stateDue = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // Loop: a write that was in flight covered an older state; write once more after it.
    for (;;) {
      if (this.writing) {
        await this.writing;
        continue;
      }
      if (!this.stateDirty && this.pending.length === 0) return;
      if (this.lost) throw new LeaseLostError(this.batchId);
      this.stateDue = true;
      // The write awaited above may have armed a timer for what this write takes now.
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      await this.writeOnce();
    }
  }

  /** The status of the last state made durable by this journal (undefined before its first write). */
  get durableStatus(): BatchState['status'] | undefined {
    return this.durable;
  }

  /** Stop scheduling writes (after a final flush, or when the engine stops). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.writing || this.closed) return;
    // Only the state is left to write, and it is not due yet: the timer waits until it is.
    const stateOnly = this.pending.length === 0 && !this.stateDue && this.failures === 0;
    if (this.timer) {
      // Outcomes came in (or the state fell due) while the timer waited for the state: sooner.
      if (!this.timerForState || stateOnly) return;
      clearTimeout(this.timer);
    }
    let delay = this.failures === 0 ? this.options.flushDelayMs : backoffDelay(this.failures, 20, 1000);
    if (stateOnly) delay = Math.max(delay, this.stateAt + this.options.stateIntervalMs - performance.now());
    this.timerForState = stateOnly;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // Failures are reported through onError and rescheduled inside writeOnce.
      this.writeOnce().catch(() => {});
    }, delay);
  }

  /**
   * A full group waits (and nothing is being written): write it now, not on the timer. Says whether
   * it did. Failures are reported through onError and rescheduled inside writeOnce.
   */
  private writeFullGroup(): boolean {
    if (this.pending.length < this.options.maxGroup || this.failures > 0 || this.closed) return false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.writeOnce().catch(() => {});
    return true;
  }

  /** Tell the batch the store is no longer behind, once what waited went into a write. */
  private caughtUp(): void {
    if (!this.behind) return;
    const waiting = this.pending.length;
    if (!this.closed && (this.failures > 0 || waiting >= (this.options.maxBacklog ?? 0))) return;
    this.behind = false;
    this.options.onCaughtUp?.();
  }

  private writeOnce(): Promise<void> {
    if (this.writing) return this.writing;
    const outcomes = this.pending;
    this.pending = [];
    // Stamped per group rather than per outcome (a Date per partition showed in the hot-path profile).
    const at = new Date().toISOString();
    for (const o of outcomes) if (!o.finishedAt) o.finishedAt = at;
    const now = performance.now();
    const withState =
      outcomes.length === 0 || this.stateDue || now - this.stateAt >= this.options.stateIntervalMs;
    const state = withState ? this.captureState() : undefined;
    if (state) {
      this.stateDirty = false;
      this.stateDue = false;
      this.stateAt = now;
    }
    const write = (async () => {
      try {
        if (!state) await this.store.appendOutcomes(this.batchId, outcomes, this.fence);
        else if (this.store.commit) await this.store.commit(this.batchId, outcomes, state, this.fence);
        else {
          if (outcomes.length > 0) await this.store.appendOutcomes(this.batchId, outcomes, this.fence);
          await this.store.saveState(this.batchId, state, this.fence);
        }
        if (state) this.durable = state.status;
        if (this.failures > 0) this.options.onRecovered?.();
        this.failures = 0;
      } catch (err) {
        if ((err as { code?: unknown }).code === 'LEASE_LOST') {
          // Retrying cannot help: another engine owns the batch and will redo what was not durable.
          this.closed = true;
          this.lost = true;
          this.pending = [];
          this.stateDirty = false;
          this.options.onLeaseLost();
          throw err;
        }
        // Keep order: what failed goes back in front of what arrived meanwhile.
        this.pending = outcomes.concat(this.pending);
        this.stateDirty = true;
        if (state) this.stateDue = true;
        this.failures++;
        this.options.onError(toError(err));
        throw err;
      } finally {
        this.writing = undefined;
        // A full group came in meanwhile: written at once, as append() would have (the timer only
        // made the outcomes that came in wait longer, and the lanes held behind them).
        if (!this.writeFullGroup() && (this.pending.length > 0 || this.stateDirty)) this.schedule();
        this.caughtUp();
      }
    })();
    this.writing = write;
    return write;
  }
}
