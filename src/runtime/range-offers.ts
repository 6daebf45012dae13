import type { Logger } from 'pino';
import { backoffDelay, sleep } from '../backoff.js';
import { toError } from '../errors.js';
import type { Fence, RangeOffer, RangeStore } from '../store/store.js';

/** How often the owner reads its open ranges when no notification said one was answered. */
export const RANGE_POLL_MS = 1_000;

interface Offered {
  batchId: string;
  deliver: (answers: unknown[]) => void;
}

export interface RangeOffersDeps {
  ranges: RangeStore;
  log: Logger;
  storeError(err: Error, batchId: string | undefined): void;
  pollMs?: number | undefined;
}

/**
 * The owner's side of `distribute` (docs/scaling.md, "One batch on many hosts"): every range this
 * engine's batches offered and still wait for. A range answered (a notification, or the backstop
 * read every {@link RANGE_POLL_MS}) is read once, handed to the lane that offered it, and withdrawn.
 * Answers reach only the batch actor, through its lane: the actor stays the only writer of counts.
 */
export class RangeOffers {
  private readonly offered = new Map<number, Offered>();
  /** Ranges heard answered, read together at the next turn. */
  private readonly due = new Set<number>();
  private reading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly deps: RangeOffersDeps) {}

  start(): void {
    this.unwatch = this.deps.ranges.watch((event) => {
      if (event.type === 'answered' && this.offered.has(event.id)) this.read([event.id]);
    });
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    this.unwatch?.();
    clearTimeout(this.timer);
    this.offered.clear();
  }

  /**
   * Offer a range; `deliver` gets its answers (one per member, in member order) once every member
   * has one. Store errors are retried with backoff until `signal` aborts; when it aborts, the range
   * is withdrawn. Undefined when the batch's lease is lost or `signal` aborted first (nothing stays
   * offered then).
   */
  async offer(
    batchId: string,
    fence: Fence,
    range: RangeOffer,
    signal: AbortSignal,
    deliver: (answers: unknown[]) => void,
  ): Promise<number | undefined> {
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted || this.stopped) return undefined;
      try {
        const id = await this.deps.ranges.offer(batchId, range, fence);
        if (id === undefined) return undefined;
        if (signal.aborted || this.stopped) {
          this.withdraw(batchId, id);
          return undefined;
        }
        // The lane stops waiting (cancel, stop): nobody needs to run the range any more.
        const onAbort = () => this.withdraw(batchId, id);
        signal.addEventListener('abort', onAbort, { once: true });
        // Waiting for a range holds the process, as work running here does (docs/scaling.md,
        // "Keep the process alive"): another engine's answer may be all this batch waits for.
        this.timer?.ref();
        this.offered.set(id, {
          batchId,
          deliver: (answers) => {
            signal.removeEventListener('abort', onAbort);
            if (!signal.aborted) deliver(answers);
          },
        });
        return id;
      } catch (err) {
        this.deps.storeError(toError(err), batchId);
        await sleep(backoffDelay(attempt, 100, 5_000));
      }
    }
  }

  /** Nobody waits for this range any more: forget it and remove it from the store. */
  private withdraw(batchId: string, id: number): void {
    this.offered.delete(id);
    this.deps.ranges
      .withdraw(batchId, { ids: [id] })
      .catch((err: unknown) =>
        this.deps.log.warn(
          { err, batchId, range: id },
          'could not withdraw a range; its batch withdraws it at its end',
        ),
      );
  }

  /** Read these ranges' answers soon (together with others heard meanwhile). */
  private read(ids: readonly number[]): void {
    for (const id of ids) this.due.add(id);
    this.reading ??= Promise.resolve()
      .then(() => this.readDue())
      .finally(() => {
        this.reading = undefined;
        if (this.due.size > 0 && !this.stopped) this.read([]);
      });
  }

  private async readDue(): Promise<void> {
    const ids = [...this.due].filter((id) => this.offered.has(id));
    this.due.clear();
    if (ids.length === 0 || this.stopped) return;
    let answered: Array<{ id: number; answers: unknown[] }>;
    try {
      answered = await this.deps.ranges.answered(ids);
    } catch (err) {
      this.deps.storeError(toError(err), undefined);
      return; // the backstop reads them again
    }
    for (const { id, answers } of answered) {
      const offered = this.offered.get(id);
      if (!offered) continue;
      this.offered.delete(id);
      this.withdraw(offered.batchId, id);
      offered.deliver(answers);
    }
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      if (this.offered.size > 0) this.read([...this.offered.keys()]);
      this.arm();
    }, this.deps.pollMs ?? RANGE_POLL_MS);
    if (this.offered.size === 0) this.timer.unref();
  }
}
