import type { Logger } from 'pino';
import { ConflictError, toError } from '../errors.js';
import type { BatchControl, Store } from '../store/store.js';

export interface ControlsDeps {
  store: Store;
  log: Logger;
  /** This engine's lease owner id: the requests it must carry out are those of its batches. */
  owner: string;
  /** Does this engine run the batch? */
  runsHere(id: string): boolean;
  cancel(id: string, reason: string): Promise<unknown>;
  pause(id: string): Promise<unknown>;
  resume(id: string): Promise<unknown>;
  storeError(err: Error, batchId: string | undefined): void;
}

/**
 * The owner's side of `cancel`, `pause` and `resume` called on another engine (docs/scaling.md):
 * that engine leaves a request on the batch's row (`Store.requestControl`); the engine that holds
 * the batch's lease carries it out as if it had been called here, then removes it. Checked when the
 * store notifies a request (PostgreSQL) and at every claim sweep (the backstop).
 */
export class Controls {
  private checking: Promise<void> | undefined;
  private again = false;

  private unwatch: (() => void) | undefined;

  constructor(private readonly deps: ControlsDeps) {}

  start(): void {
    this.unwatch = this.deps.store.watch?.((event) => {
      if (event.control && this.deps.runsHere(event.batchId)) void this.check();
    });
  }

  stop(): void {
    this.unwatch?.();
  }

  /** Carry out the requests left for this engine's batches (one check at a time; a call during one runs another after it). */
  check(): Promise<void> {
    if (this.checking) {
      this.again = true;
      return this.checking;
    }
    this.checking = this.run().finally(() => {
      this.checking = undefined;
      if (this.again) {
        this.again = false;
        void this.check();
      }
    });
    return this.checking;
  }

  private async run(): Promise<void> {
    let pending: Array<{ batchId: string; control: BatchControl }>;
    try {
      pending = await this.deps.store.pendingControls(this.deps.owner);
    } catch (err) {
      this.deps.storeError(toError(err), undefined);
      return;
    }
    for (const { batchId, control } of pending) {
      if (this.deps.runsHere(batchId)) {
        this.deps.log.info({ batchId, control: control.type }, 'request from another engine');
        const done =
          control.type === 'cancel'
            ? this.deps.cancel(batchId, control.reason)
            : control.type === 'pause'
              ? this.deps.pause(batchId)
              : this.deps.resume(batchId);
        const settled = done.catch((err: unknown) => {
          // A request that no longer applies (pause of a batch that has finished meanwhile) is dropped.
          if (!(err instanceof ConflictError))
            this.deps.log.warn({ err: toError(err), batchId }, 'request failed');
        });
        // A cancel is under way once sent (it resolves at the batch's end); pause and resume are quick.
        if (control.type !== 'cancel') await settled;
      }
      await this.deps.store.clearControl(batchId, control).catch((err: unknown) => {
        this.deps.storeError(toError(err), batchId);
      });
    }
  }
}
