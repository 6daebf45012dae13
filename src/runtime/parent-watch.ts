import type { Logger } from 'pino';
import { toError } from '../errors.js';
import type { Store } from '../store/store.js';
import { type BatchStatus, isFinalStatus } from '../summary.js';

/** How often parents run by other engines are looked up when no notification came (a backstop). */
export const PARENT_BACKSTOP_MS = 2_000;

export interface ParentWatchDeps {
  store: Store;
  log: Logger;
  /** Parents that waiting batches need and whose final status this engine does not know. */
  needed: () => Set<string>;
  /** A needed parent is final. */
  final: (id: string, status: BatchStatus) => void;
  /** A needed parent's row is gone (engine.prune deleted it). */
  gone: (id: string) => void;
}

/**
 * Learns when `after` parents run by *other* engines sharing the store end (docs/architecture.md):
 * from the store's notifications where it has them (PostgreSQL LISTEN/NOTIFY), and from a slow
 * backstop that reads just the needed parents' rows, armed only while some are needed.
 */
export class ParentWatch {
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly deps: ParentWatchDeps) {}

  start(): void {
    this.unwatch = this.deps.store.watch?.((event) => {
      if (isFinalStatus(event.status) && this.deps.needed().has(event.batchId))
        this.deps.final(event.batchId, event.status);
    });
  }

  /** The set of needed parents may have grown: make sure the backstop runs. */
  poke(): void {
    if (this.stopped || this.timer || this.deps.needed().size === 0) return;
    // Not unref'd: a batch waiting for its parents is unfinished work, like a partition's backoff.
    this.timer = setTimeout(() => void this.tick(), PARENT_BACKSTOP_MS);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.unwatch?.();
  }

  private async tick(): Promise<void> {
    for (const id of this.deps.needed()) {
      if (this.stopped) return;
      try {
        const row = await this.deps.store.loadBatch(id);
        if (!row) this.deps.gone(id);
        else if (isFinalStatus(row.status)) this.deps.final(id, row.status);
      } catch (err) {
        this.deps.log.warn({ err: toError(err), batchId: id }, 'could not read a parent batch; trying again');
      }
    }
    this.timer = undefined;
    this.poke();
  }
}
