import type { Snapshot, SnapshotFrom } from 'xstate';
import { backoffDelay, sleep } from '../backoff.js';
import { BATCH_MACHINE_VERSION, type BatchContext, type BatchMachine } from '../machines/batch.js';
import type { BatchRecord, BatchState, Fence, OutcomeRecord, Store } from '../store/store.js';
import { type BatchSummary, isFinalStatus } from '../summary.js';
import { BatchJournal } from './journal.js';
import { summaryOf } from './summary-of.js';

/**
 * Shortest time between two writes of a running batch's state (src/runtime/journal.ts): another
 * process reading the store (the CLI, another host) sees its progress this late at most.
 */
export const STATE_INTERVAL_MS = 100;

export interface DurabilityOptions {
  store: Store;
  record: BatchRecord;
  fence: Fence;
  machine: BatchMachine;
  /** The batch actor's current snapshot. */
  snapshot: () => SnapshotFrom<BatchMachine>;
  /** When the batch reached its final state, once it has. */
  finishedAt: () => string | undefined;
  /** Adds what the runtime knows beyond the machine (the batches its triggers submitted). */
  decorate: (summary: BatchSummary) => BatchSummary;
  /** The last attempt that began of the partition a lane holds, dispatched at `dispatched` (lanes.ts). */
  startedAttempt: (lane: number, index: number, dispatched: number) => number;
  flushDelayMs: number;
  onStoreError: (err: Error) => void;
  onLeaseLost: () => void;
  onRecovered: () => void;
  /** The store fell behind the work: start no more until `onCaughtUp` (see {@link MAX_BACKLOG}). */
  onBehind: () => void;
  onCaughtUp: () => void;
}

/** Outcomes of one batch that can wait behind its write in flight before its lanes wait too. */
export const MAX_BACKLOG = 4000;

/**
 * Makes one batch durable: outcomes through the journal's group commit, then the state that covers
 * them (docs/persistence.md). Store errors are reported and retried; a refused fence (another engine
 * holds the batch) ends all writing.
 */
export class Durability {
  private readonly journal: BatchJournal;

  constructor(private readonly o: DurabilityOptions) {
    this.journal = new BatchJournal(o.store, o.record.id, o.fence, () => this.capture(), {
      flushDelayMs: o.flushDelayMs,
      maxGroup: 1000,
      maxBacklog: MAX_BACKLOG,
      onBehind: o.onBehind,
      onCaughtUp: o.onCaughtUp,
      stateIntervalMs: STATE_INTERVAL_MS,
      onError: o.onStoreError,
      onLeaseLost: o.onLeaseLost,
      onRecovered: o.onRecovered,
    });
  }

  /** Queue an outcome for the next group commit. */
  append(outcome: OutcomeRecord): void {
    this.journal.append(outcome);
  }

  /** The state changed in a way worth saving soon (a status change). */
  touch(): void {
    this.journal.touch();
  }

  /** Write what is queued; rejects on a store error (the data stays queued) or a lost lease. */
  flush(): Promise<void> {
    return this.journal.flush();
  }

  /**
   * Flush until it succeeds: store errors are retried with backoff (they were reported already).
   * Gives up only when `stop()` says so (the engine stops) or the lease is lost (rejects LEASE_LOST).
   */
  async untilDurable(stop: () => boolean): Promise<void> {
    for (let retry = 1; ; retry++) {
      if (stop()) return;
      try {
        await this.journal.flush();
        return;
      } catch (err) {
        if ((err as { code?: unknown }).code === 'LEASE_LOST') throw err;
        await sleep(backoffDelay(retry, 20, 1000));
      }
    }
  }

  close(): void {
    this.journal.close();
  }

  /** The last state made durable is a final one: the batch has ended, whoever wrote it. */
  get finalStored(): boolean {
    const status = this.journal.durableStatus;
    return status !== undefined && isFinalStatus(status);
  }

  /** The state to store now. Lanes and the finalizer are not in it: the engine re-creates them. */
  capture(): BatchState {
    const snapshot = this.o.snapshot();
    // XState does not restart spawned children or re-arm their timers on restore
    // (statelyai/xstate#4148, #4860), so they are not stored, nor even serialized.
    const persisted = withStartedAttempts(
      this.o.machine.getPersistedSnapshot({ ...snapshot, children: {} } as typeof snapshot),
      this.o.startedAttempt,
    );
    const finishedAt =
      this.o.finishedAt() ?? (snapshot.status === 'done' ? new Date().toISOString() : undefined);
    const { failures: _storedInSnapshot, ...summary } = this.o.decorate(
      summaryOf(this.o.record, snapshot, true, finishedAt),
    );
    return {
      schemaVersion: 1,
      machineVersion: BATCH_MACHINE_VERSION,
      status: summary.status,
      journalSeq: snapshot.context.succeeded + snapshot.context.failed,
      snapshot: persisted,
      // The failure sample is in the snapshot's context already: stored once (views.ts adds it back).
      summary,
    };
  }
}

/**
 * The persisted snapshot with each lane's partition at the last attempt that began. The batch context
 * holds the attempt it dispatched; a lane's retries (partition.ts, `backoff`) raise it without
 * telling the batch, and an attempt dispatched may not have begun (the rate limit, a turn of the
 * event loop). After a stop or a crash the partition runs again at the stored attempt + 1
 * (`restartLanes`): stored as dispatched, a partition stopped in its second attempt ran attempt 2
 * twice, past `maxAttempts` in all, and one that never ran lost an attempt (outside probes). Copied
 * where it differs: XState's persisted context shares its objects with the live one.
 */
function withStartedAttempts(
  persisted: Snapshot<unknown>,
  startedAttempt: (lane: number, index: number, dispatched: number) => number,
): Snapshot<unknown> {
  const p = persisted as unknown as { context: BatchContext };
  const inFlight = p.context.inFlight;
  let patched: BatchContext['inFlight'] | undefined;
  for (let lane = 0; lane < inFlight.length; lane++) {
    const f = inFlight[lane];
    if (!f) continue;
    const attempt = startedAttempt(lane, f.index, f.attempt);
    if (attempt === f.attempt) continue;
    patched ??= inFlight.slice();
    patched[lane] = { ...f, attempt };
  }
  if (!patched) return persisted;
  return { ...p, context: { ...p.context, inFlight: patched } } as unknown as Snapshot<unknown>;
}
