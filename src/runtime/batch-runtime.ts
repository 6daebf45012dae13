import type { Logger } from 'pino';
import {
  type Actor,
  type AnyActorRef,
  createActor,
  fromPromise,
  type InspectionEvent,
  type Observer,
} from 'xstate';
import { toError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import {
  BATCH_MACHINE_VERSION,
  type BatchMachine,
  batchMachine,
  type FinalizeInput,
  type ReplayedOutcome,
} from '../machines/batch.js';
import { partitionMachine } from '../machines/partition.js';
import type { BatchRecord, BatchState, Fence, Store } from '../store/store.js';
import type { BatchSummary } from '../summary.js';
import { PartitionFeeder } from './feeder.js';
import { BatchJournal } from './journal.js';
import { summaryOf } from './summary-of.js';
import type { WorkRunner } from './work.js';
import type { Yielder } from './yielder.js';

export interface RuntimeDeps {
  store: Store;
  job: AnyJobDefinition;
  runner: WorkRunner;
  record: BatchRecord;
  fence: Fence;
  logger: Logger;
  inspect: Observer<InspectionEvent> | ((event: InspectionEvent) => void) | undefined;
  flushDelayMs: number;
  /** Shared by every batch of the engine: lets the event loop take a turn between dispatches. */
  yielder: Yielder;
  /** Every change of the public summary. */
  onChange: (rt: BatchRuntime) => void;
  /** The batch's final state is durable. */
  onFinal: (rt: BatchRuntime) => void;
  onStoreError: (rt: BatchRuntime, err: Error) => void;
}

/** A pause that keeps the process alive: the batch still has work to finish. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * One batch in this engine: its actor, the feeder of partition payloads, the journal that makes
 * outcomes and snapshots durable, and the provided implementations that connect the pure machines
 * to the pool and the store.
 */
export class BatchRuntime {
  readonly id: string;
  readonly record: BatchRecord;
  readonly journal: BatchJournal;
  readonly actor: Actor<BatchMachine>;
  /** Submit order within this engine: the tie-breaker after priority and age. */
  seq = 0;
  private readonly feeder: PartitionFeeder;
  /** RUN events the yielder holds back for a turn of the event loop. */
  private readonly deferredRuns = new Set<() => void>();
  private readonly machine: BatchMachine;
  /** Per lane: aborts the lane's running attempt (cancel, timeout, stop), and its timeout timer. */
  private readonly controllers: (AbortController | undefined)[] = [];
  private readonly timers: (NodeJS.Timeout | undefined)[] = [];
  private finalDurable = false;
  private finishedAt: string | undefined;
  private stopping = false;
  private lastStatus: string | undefined;
  private lastSnapshot: unknown;
  private readonly finalWaiters: Array<(s: BatchSummary) => void> = [];
  private readonly log: Logger;
  private readonly debug: boolean;

  constructor(
    private readonly deps: RuntimeDeps,
    restored?: BatchState,
  ) {
    this.id = deps.record.id;
    this.record = deps.record;
    this.log = deps.logger.child({ batchId: this.id, job: this.record.job });
    this.debug = this.log.isLevelEnabled('debug');
    this.feeder = new PartitionFeeder(deps.store, this.id);
    const machine = this.provideMachine();
    this.machine = machine;
    const job = deps.job;
    const input = {
      batchId: this.id,
      job: job.name,
      total: this.record.total,
      concurrency: job.concurrency,
      maxAttempts: job.retry.attempts,
      backoffMs: job.retry.backoffMs,
      maxBackoffMs: job.retry.maxBackoffMs,
      timeoutMs: job.timeoutMs,
      failurePolicy: job.failurePolicy,
    };
    // A restored actor takes everything from its snapshot; `input` is then unused.
    this.actor = createActor(machine, {
      id: this.id,
      input,
      inspect: deps.inspect,
      ...(restored ? { snapshot: restored.snapshot as never } : {}),
    });
    this.journal = new BatchJournal(deps.store, this.id, deps.fence, () => this.captureState(), {
      flushDelayMs: deps.flushDelayMs,
      maxGroup: 1000,
      onError: (err) => deps.onStoreError(this, err),
      onRecovered: () => this.log.info('store writes succeed again'),
    });
    this.actor.subscribe({
      next: () => this.changed(),
      error: (err) => this.log.error({ err }, 'batch actor error'),
    });
  }

  /** Start the actor. For a restored batch, replay the journal and take up the work again. */
  async start(restored?: BatchState): Promise<void> {
    this.actor.start();
    if (!restored) return;
    const replay: ReplayedOutcome[] = [];
    for await (const o of this.deps.store.outcomesSince(this.id, restored.journalSeq)) {
      replay.push({ index: o.index, key: o.key, status: o.status, attempts: o.attempts, error: o.error });
    }
    const ctx = this.actor.getSnapshot().context;
    const behind = [...ctx.redeliver, ...ctx.inFlight].flatMap((f) => (f ? [f.index] : []));
    await this.feeder.loadEach(behind);
    this.log.info(
      { replayed: replay.length, redeliver: behind.length, state: this.actor.getSnapshot().value },
      'batch resumed',
    );
    this.actor.send({ type: 'RESUME', replay });
  }

  admit(): void {
    this.actor.send({ type: 'ADMIT', at: new Date().toISOString() });
  }

  /** True once a CANCEL was sent: a second cancel() only waits for the first. */
  cancelRequested = false;

  cancel(reason: string): void {
    this.cancelRequested = true;
    // A lane must hold its partition before it is told to cancel it: deliver deferred starts first.
    for (const deliver of [...this.deferredRuns]) deliver();
    this.actor.send({ type: 'CANCEL', reason });
  }

  get status() {
    return this.summary().status;
  }

  get isFinal(): boolean {
    return this.finalDurable;
  }

  summary(): BatchSummary {
    return summaryOf(this.record, this.actor.getSnapshot(), this.finalDurable, this.finishedAt);
  }

  /** Resolves with the final summary once it is durable. */
  whenFinal(): Promise<BatchSummary> {
    if (this.finalDurable) return Promise.resolve(this.summary());
    return new Promise((resolve) => this.finalWaiters.push(resolve));
  }

  /**
   * Graceful stop: abort work in flight (it runs again on the next start, with `redelivered`),
   * make every outcome received so far durable with the current snapshot, and stop the actor.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    for (let lane = 0; lane < this.controllers.length; lane++) this.abortWork(lane);
    try {
      if (!this.finalDurable) await this.journal.flush();
    } finally {
      this.journal.close();
      this.actor.stop();
      this.feeder.clear();
    }
  }

  private provideMachine(): BatchMachine {
    const lane = partitionMachine.provide({
      actions: {
        startWork: ({ context, self }) => this.startWork(context.lane, context.current!, self),
        abortWork: ({ context }) => this.abortWork(context.lane),
      },
    });
    return batchMachine.provide({
      actors: {
        lane,
        finalize: fromPromise<{ output: unknown }, FinalizeInput>(({ input, signal }) =>
          this.finalize(input, signal),
        ),
      },
      actions: {
        dispatchPartition: ({ system }, p) => {
          if (this.stopping) return;
          const row = this.feeder.get(p.index);
          // Through the system, not self.getSnapshot().children: lanes spawned in this same
          // transition (RESUME) are registered in the system already but not yet in the snapshot.
          const ref = system.get(`lane-${p.lane}`) as AnyActorRef | undefined;
          const run = {
            type: 'RUN',
            index: p.index,
            key: row.key,
            attempt: p.attempt,
            redelivered: p.redelivered,
          };
          // The partition is the lane's already in the batch context; only its start may wait a turn.
          let delivered = false;
          const deliver = () => {
            if (delivered) return;
            delivered = true;
            this.deferredRuns.delete(deliver);
            if (!this.stopping) ref?.send(run);
          };
          if (!this.deps.yielder.run(deliver)) this.deferredRuns.add(deliver);
        },
        loadPartitions: (_, p) => this.loadPartitions(p.from, p.count),
        journalOutcome: (_, { outcome, seq }) => {
          this.feeder.release(outcome.index);
          this.journal.append({ ...outcome, seq, finishedAt: '' });
          // Checked once per batch: a child logger per partition costs nothing when debug is off.
          if (this.debug) {
            const log = this.log.child({ key: outcome.key, attempt: outcome.attempts });
            log.debug(
              { status: outcome.status, durationMs: outcome.durationMs, err: outcome.error },
              'partition settled',
            );
          }
        },
      },
    }) as BatchMachine;
  }

  private startWork(
    lane: number,
    cur: { index: number; key: string; attempt: number; redelivered: boolean },
    self: AnyActorRef,
  ) {
    if (this.stopping) return;
    // One AbortController per lane, replaced only after it aborted: creating one per attempt
    // showed up in the profile of the hot path.
    let controller = this.controllers[lane];
    // Inline handlers hold on to ctx.signal (listeners), so each attempt gets its own.
    if (!controller || controller.signal.aborted || this.deps.job.handler) {
      controller = new AbortController();
      this.controllers[lane] = controller;
    }
    const signal = controller.signal;
    const timeoutMs = this.deps.job.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const arm =
      timeoutMs === undefined
        ? undefined
        : () => {
            timer = setTimeout(() => {
              if (!signal.aborted && !this.stopping)
                self.send({ type: 'WORK.TIMEOUT', index: cur.index, attempt: cur.attempt });
            }, timeoutMs);
            this.timers[lane] = timer;
          };
    const payload = this.feeder.get(cur.index).payload;
    this.deps.runner.start(
      { batchId: this.id, ...cur, payload },
      signal,
      (event) => {
        if (this.stopping || signal.aborted) return;
        if (event.type !== 'WORK.PROGRESS' && timer) clearTimeout(timer);
        self.send(event);
      },
      arm,
    );
  }

  private abortWork(lane: number) {
    clearTimeout(this.timers[lane]);
    this.controllers[lane]?.abort();
  }

  private loadPartitions(from: number, count: number): void {
    this.feeder.load(from, count).then(
      (loaded) => {
        if (!this.stopping) this.actor.send({ type: 'PARTITIONS.LOADED', loaded });
      },
      async (err) => {
        this.deps.onStoreError(this, toError(err));
        await sleep(200);
        if (!this.stopping) this.loadPartitions(from, count);
      },
    );
  }

  private async finalize(input: FinalizeInput, signal: AbortSignal): Promise<{ output: unknown }> {
    // The finalizer may read partitions from the store: every outcome must be durable first.
    await this.flushUntilDurable(signal);
    const job = this.deps.job;
    if (!job.finalize) return { output: undefined };
    const summary = {
      ...this.summary(),
      status: 'FINALIZING' as const,
      succeeded: input.succeeded,
      failed: input.failed,
    };
    let lastError: unknown;
    for (let attempt = 1; attempt <= job.retry.attempts; attempt++) {
      try {
        return { output: await job.finalize(summary, { batchId: this.id, signal }) };
      } catch (err) {
        lastError = err;
        this.log.warn({ err: toError(err), attempt }, 'finalize failed');
        if (attempt < job.retry.attempts)
          await sleep(Math.min(job.retry.maxBackoffMs, job.retry.backoffMs * 2 ** (attempt - 1)));
      }
    }
    throw lastError;
  }

  private async flushUntilDurable(signal?: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted || this.stopping) return;
      try {
        await this.journal.flush();
        return;
      } catch {
        // Reported through onStoreError; the data stays queued.
        await sleep(Math.min(1000, 20 * 2 ** attempt));
      }
    }
  }

  private captureState(): BatchState {
    const snapshot = this.actor.getSnapshot();
    // Lanes and the finalizer are re-created by the engine on restore (XState does not restart
    // spawned children or re-arm their timers: statelyai/xstate#4148, #4860), so they are not stored,
    // and not even serialized: XState's own persistence of the snapshot, with no children.
    const persisted = this.machine.getPersistedSnapshot({ ...snapshot, children: {} } as typeof snapshot);
    const summary = summaryOf(
      this.record,
      snapshot,
      true,
      this.finishedAt ?? (snapshot.status === 'done' ? new Date().toISOString() : undefined),
    );
    return {
      schemaVersion: 1,
      machineVersion: BATCH_MACHINE_VERSION,
      status: summary.status,
      journalSeq: snapshot.context.succeeded + snapshot.context.failed,
      snapshot: persisted,
      summary,
    };
  }

  private changed(): void {
    const snapshot = this.actor.getSnapshot();
    // An event that changed nothing (e.g. a second CANCEL while cancelling) is not a change.
    if (snapshot === this.lastSnapshot) return;
    this.lastSnapshot = snapshot;
    const status = String(snapshot.value);
    if (status !== this.lastStatus) {
      this.lastStatus = status;
      this.log.info({ state: status }, 'batch state');
      if (!this.stopping) this.journal.touch();
      if (snapshot.status === 'done' && !this.finishedAt) {
        this.finishedAt = new Date().toISOString();
        void this.persistFinal();
      }
    }
    this.deps.onChange(this);
  }

  private async persistFinal(): Promise<void> {
    await this.flushUntilDurable();
    if (this.stopping) return;
    this.journal.close();
    this.finalDurable = true;
    const summary = this.summary();
    this.log.info(
      { status: summary.status, succeeded: summary.succeeded, failed: summary.failed },
      'batch finished',
    );
    this.deps.onChange(this);
    this.deps.onFinal(this);
    for (const w of this.finalWaiters.splice(0)) w(summary);
  }
}
