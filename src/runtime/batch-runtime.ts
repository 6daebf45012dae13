import type { Logger } from 'pino';
import { type Actor, createActor, type InspectionEvent, type SnapshotFrom } from 'xstate';
import { backoffDelay, sleep } from '../backoff.js';
import { PartitaError, serializeError, toError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import {
  BATCH_MACHINE_VERSION,
  type BatchMachine,
  GROUP_TARGET_MS,
  membersOf,
  POOL_GROUP_TARGET_MS,
  type ReplayedOutcome,
  sizeOf,
} from '../machines/batch.js';
import type { BatchControl, BatchRecord, BatchState, Fence, OutcomeRecord, Store } from '../store/store.js';
import { type BatchStatus, type BatchSummary, isFinalStatus, uncheckedOutcome } from '../summary.js';
import { Durability } from './durability.js';
import { PartitionFeeder, type Seed } from './feeder.js';
import { Finalization, type FinalizerEnd } from './finalization.js';
import { LaneDriver, type LeaseCheck } from './lanes.js';
import type { RateLimiter } from './rate-limiter.js';
import type { EngineStats } from './stats.js';
import { readWithRetry } from './store-retry.js';
import { summaryOf } from './summary-of.js';
import { type BatchEffects, bindEffects, wiredBatchMachine } from './wiring.js';
import type { Runner } from './work.js';
import type { Yielder } from './yielder.js';

/** What a batch runtime tells the engine. */
export type RuntimeEvent =
  /** The public summary changed (progress included). */
  | { type: 'changed' }
  /** The final state is durable (the last change); nothing more will happen to this batch here. */
  | { type: 'final'; summary: BatchSummary }
  /** The public status changed (not yet durable for a final status: that is 'final'). */
  | { type: 'status'; status: BatchStatus }
  /** A store write or read failed; it is retried. */
  | { type: 'store-error'; error: Error }
  /** Another engine holds the batch now: this runtime has stopped without writing anything more. */
  | { type: 'lease-lost' };

/** The least time between two changes told for progress reports alone (see BatchRuntime.progressed). */
const PROGRESS_MS = 100;

export interface RuntimeDeps {
  store: Store;
  job: AnyJobDefinition;
  runner: Runner;
  /** The job's `distribute` when its ranges are offered to the engines sharing the store: groups are ranges. */
  distributed?: { rangeSize: number } | undefined;
  record: BatchRecord;
  fence: Fence;
  logger: Logger;
  inspect: ((event: InspectionEvent) => void) | undefined;
  flushDelayMs: number;
  /** Shared by every batch of the engine: lets the event loop take a turn between dispatches. */
  yielder: Yielder;
  /** Counters for metrics() and observe(): each settled partition is counted straight into them. */
  stats: EngineStats;
  /**
   * Submit the job's triggered batches for this final summary, before the final state is stored
   * (so a crash in between submits them again, idempotently). Puts what it submits in `out` as it goes.
   */
  triggers?:
    | ((
        final: BatchSummary,
        signal: AbortSignal,
        out: NonNullable<BatchSummary['triggered']>,
      ) => Promise<void>)
    | undefined;
  /**
   * Runs once the final state is stored and before the end is announced (waiters, listeners):
   * withdrawing a distributed batch's ranges. A failure is logged; it does not change the end.
   */
  atEnd?: (() => Promise<void>) | undefined;
  /** Every partition of a small batch submitted here, as stored (feeder.ts, `Seed`). */
  seed?: Seed | undefined;
  /** The job's rate limit on this engine, if it has one. */
  limiter?: RateLimiter | undefined;
  /** The batch's lease, checked before each partition starts. */
  lease?: LeaseCheck | undefined;
  events: (rt: BatchRuntime, event: RuntimeEvent) => void;
}

/**
 * One batch in this engine: its actor, wired to the world through `provide()` (lanes to the pool,
 * outcomes to the store). Lane driving lives in lanes.ts, durability in durability.ts; the engine
 * talks to a runtime through the methods below and hears back through `RuntimeEvent`s.
 */
export class BatchRuntime {
  readonly id: string;
  private readonly record: BatchRecord;
  private readonly actor: Actor<BatchMachine>;
  private readonly machine: BatchMachine;
  private readonly feeder: PartitionFeeder;
  private readonly lanes: LaneDriver;
  private readonly durability: Durability;
  private readonly finalization: Finalization;
  private readonly log: Logger;
  private readonly debug: boolean;
  private finalDurable = false;
  private finishedAt: string | undefined;
  private halted = false;
  private cancelSent = false;
  /** Set while the actor starts: its first snapshot is not a change anyone needs to hear of. */
  private quiet = false;
  private lastStatus: string | undefined;
  private lastSnapshot: unknown;
  /** What the job's triggers submitted at the end (stored with the final summary). */
  private triggered: BatchSummary['triggered'];
  /** Set when a provided action or actor threw: the batch ends FAILED with this error. */
  private crash: PartitaError | undefined;
  /** The highest progress a summary of this run showed while it ran (see summary()). */
  private progressHigh = 0;
  /** Armed by a progress report: listeners hear of it once, up to PROGRESS_MS later. */
  private progressTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: RuntimeDeps,
    restored?: BatchState,
  ) {
    this.id = deps.record.id;
    this.record = deps.record;
    this.log = deps.logger.child({ batchId: this.id, job: this.record.job });
    this.debug = this.log.isLevelEnabled('debug');
    this.feeder = new PartitionFeeder(deps.store, this.id, deps.seed);
    this.lanes = new LaneDriver(
      this.id,
      deps.job,
      deps.runner,
      this.feeder,
      deps.yielder,
      deps.limiter,
      deps.lease,
    );
    this.lanes.onProgress = () => this.progressed();
    this.machine = wiredBatchMachine;
    const job = deps.job;
    // A restored actor takes everything from its snapshot; `input` is then unused.
    this.actor = createActor(this.machine, {
      id: this.id,
      input: {
        batchId: this.id,
        job: job.name,
        total: this.record.total,
        // A worker job's lanes beyond what its pool can run would only wait in the pool's queue.
        concurrency: Math.min(job.concurrency, deps.runner.maxLanes ?? job.concurrency),
        maxAttempts: job.retry.attempts,
        backoffMs: job.retry.backoffMs,
        maxBackoffMs: job.retry.maxBackoffMs,
        timeoutMs: job.timeoutMs,
        failurePolicy: job.failurePolicy,
        // The batch's last groups are split over what can run at once: for a worker job its pool's
        // threads, not its lanes (which only queue in the pool beyond that). A worker job's groups
        // aim at more work than an inline handler's, which hold the host's event loop.
        batching: deps.distributed
          ? deps.distributed.rangeSize > 1
            ? { maxItems: deps.distributed.rangeSize, auto: false, ranges: true }
            : undefined
          : job.batching && {
              ...job.batching,
              spread: deps.runner.parallelism,
              targetMs: job.handler ? GROUP_TARGET_MS : POOL_GROUP_TARGET_MS,
            },
      },
      inspect: deps.inspect,
      ...(restored ? { snapshot: restored.snapshot as never } : {}),
    });
    bindEffects(this.actor.system, this.effects());
    this.durability = new Durability({
      store: deps.store,
      record: this.record,
      fence: deps.fence,
      machine: this.machine,
      snapshot: () => this.actor.getSnapshot(),
      finishedAt: () => this.finishedAt,
      decorate: (s) => this.decorated(s, this.actor.getSnapshot()),
      startedAttempt: (lane, index, dispatched) => this.lanes.startedAttempt(lane, index, dispatched),
      flushDelayMs: deps.flushDelayMs,
      onStoreError: (error) => this.emit({ type: 'store-error', error }),
      onLeaseLost: () => this.leaseLost(),
      onRecovered: () => this.log.info('store writes succeed again'),
      onBehind: () => this.lanes.storeBehind(),
      onCaughtUp: () => {
        // The starts held for the store go now; one that throws fails the batch, as in startWork.
        try {
          this.lanes.storeCaughtUp();
        } catch (err) {
          this.crashLater(err, 'startWork');
        }
      },
    });
    this.finalization = new Finalization({
      batchId: this.id,
      job,
      triggers: deps.triggers === undefined ? undefined : (end, signal) => this.fireTriggers(end, signal),
      log: this.log,
      untilDurable: (stop) => this.durability.untilDurable(stop),
      summary: () => this.summary(),
      halted: () => this.halted,
      send: (event) => this.actor.send(event),
    });
    this.actor.subscribe({
      next: () => this.changed(),
      error: (err) => this.crashed(err),
    });
  }

  /**
   * Start the actor. A restored batch first reads what it needs (the journal newer than its
   * snapshot, the partitions to redeliver), with retries; if that still fails, it throws and the
   * actor is not started, so the engine can give the batch up and try again later.
   */
  async start(restored?: BatchState, pending?: BatchControl): Promise<void> {
    if (!restored) {
      // Its QUEUED summary was announced by the queue already: the actor's first snapshot is no news.
      this.quiet = true;
      this.actor.start();
      this.quiet = false;
      // Cancelled from another engine while it waited: it ends CANCELLED, never admitted.
      if (pending?.type === 'cancel') this.cancel(pending.reason);
      return;
    }
    const onError = (error: Error) => this.emit({ type: 'store-error', error });
    const replay = await readWithRetry(onError, async () => {
      const out: ReplayedOutcome[] = [];
      for await (const o of this.deps.store.outcomesSince(this.id, restored.journalSeq))
        out.push({ index: o.index, key: o.key, status: o.status, attempts: o.attempts, error: o.error });
      return out;
    });
    const ctx = (restored.snapshot as SnapshotFrom<BatchMachine>).context;
    const behind = [...ctx.redeliver, ...ctx.inFlight].flatMap((f) => (f ? membersOf(f) : []));
    await readWithRetry(onError, () => this.feeder.loadEach(behind));
    this.actor.start();
    this.log.info(
      { replayed: replay.length, redeliver: behind.length, state: this.actor.getSnapshot().value },
      'batch resumed',
    );
    // A cancel or pause asked of the batch's previous owner (docs/scaling.md) is carried out before
    // anything is redelivered: paused first (RESUME in paused dispatches nothing), then cancelled.
    const holdBack = pending !== undefined && pending.type !== 'resume';
    if (holdBack && this.actor.getSnapshot().value === 'processing') this.actor.send({ type: 'PAUSE' });
    this.actor.send({ type: 'RESUME', replay });
    if (pending?.type === 'cancel') this.cancel(pending.reason);
  }

  /** QUEUED → PROCESSING. */
  admit(): void {
    // Cancelled before its admission (a request from another engine): nothing to start.
    if (this.cancelSent || this.actor.getSnapshot().status !== 'active') return;
    this.actor.send({ type: 'ADMIT', at: new Date().toISOString() });
  }

  /**
   * PROCESSING → PAUSED: nothing more is dispatched. Held back while a page of partitions is being
   * read (the machine pauses only between pages, so no page lands in `paused`); resolves once the
   * batch is paused, or has left PROCESSING otherwise.
   */
  pause(): Promise<void> {
    return new Promise((resolve) => {
      const attempt = () => {
        const s = this.actor.getSnapshot();
        if (this.halted || s.value !== 'processing') return true;
        if (s.context.loading) return false;
        // A lane's partition whose start the yielder held back for a turn is in flight already:
        // it starts now, and finishes like the others in flight (else it started in `paused` and
        // was held, counted as running until resume(): probe, pause never drained).
        this.lanes.deliverHeldBack();
        this.actor.send({ type: 'PAUSE' });
        return true;
      };
      if (attempt()) return resolve();
      const sub = this.actor.subscribe(() => {
        if (!attempt()) return;
        queueMicrotask(() => sub.unsubscribe());
        resolve();
      });
    });
  }

  /** PAUSED → PROCESSING: dispatching takes up again. */
  unpause(): void {
    if (this.halted) return;
    this.actor.send({ type: 'CONTINUE' });
    // (Said by changed() already, when the batch left PAUSED: the held starts must not be held again.)
    this.lanes.paused = false;
    this.lanes.startHeld();
  }

  /** Cancel once; a batch whose final state is being stored is past cancelling. */
  cancel(reason: string): void {
    if (this.cancelSent || this.halted || this.actor.getSnapshot().status !== 'active') return;
    this.cancelSent = true;
    this.lanes.deliverHeldBack();
    this.actor.send({ type: 'CANCEL', reason });
  }

  get job(): string {
    return this.record.job;
  }

  get status(): BatchStatus {
    return this.summary().status;
  }

  get isQueued(): boolean {
    return this.actor.getSnapshot().value === 'queued';
  }

  get isFinal(): boolean {
    return this.finalDurable;
  }

  /**
   * The batch has ended here, but this engine has not yet heard its final state stored. The store
   * may hold it already (its commit answered after the rows changed), so another reader of the
   * store can see the final status first.
   */
  get endingUnheard(): boolean {
    return !this.finalDurable && (this.crash !== undefined || this.actor.getSnapshot().status === 'done');
  }

  summary(): BatchSummary {
    const snapshot = this.actor.getSnapshot();
    const summary = this.paused(
      summaryOf(this.record, snapshot, this.finalDurable, this.finishedAt),
      snapshot,
    );
    if (this.triggered?.length && this.finalDurable) summary.triggered = this.triggered.slice();
    // What the running attempts said of themselves (ctx.progress) counts too, here (where they
    // run), and progress never goes back while the batch runs: an attempt that reported half of its
    // work and then failed leaves the batch where it was until the rest catches up. The mark is
    // kept here, where a summary is made, on purpose: what must never go back is what was shown,
    // and every value shown passes through here (a mark kept where fractions change would miss
    // the peaks made by settled counts between two reports).
    if (summary.total > 0 && !isFinalStatus(summary.status)) {
      const running = this.lanes.inFlightProgress;
      if (running > 0)
        summary.progress = Math.min(1, (summary.succeeded + summary.failed + running) / summary.total);
      if (summary.progress > this.progressHigh) this.progressHigh = summary.progress;
      else summary.progress = this.progressHigh;
    }
    if (!this.crash) return summary;
    const status = this.finalDurable ? 'FAILED' : 'FINALIZING';
    return { ...summary, status, running: 0, error: serializeError(this.crash) };
  }

  /** The summary as stored: what the runtime knows beyond the machine. */
  private decorated(summary: BatchSummary, snapshot: SnapshotFrom<BatchMachine>): BatchSummary {
    const s = this.paused(summary, snapshot);
    return this.triggered?.length ? { ...s, triggered: this.triggered.slice() } : s;
  }

  /**
   * Paused, a retry waiting out its backoff, or held once it ended, runs nothing until resume():
   * pending, not running (an outside probe's drain check, `running === 0`, waited for ever). In the
   * summaries this engine gives and in the one it stores, which other engines read.
   */
  private paused(summary: BatchSummary, snapshot: SnapshotFrom<BatchMachine>): BatchSummary {
    if (summary.status !== 'PAUSED' || summary.running === 0) return summary;
    const waiting = this.waitingRetries(snapshot);
    if (waiting === 0) return summary;
    return { ...summary, running: summary.running - waiting, pending: summary.pending + waiting };
  }

  private readonly pausedAnswer = () => queueMicrotask(() => this.waitingChanged());

  /** A lane answered while paused, and may wait for a retry now: tell listeners, and store it. */
  private waitingChanged(): void {
    if (this.actor.getSnapshot().value !== 'paused') return;
    this.emit({ type: 'changed' });
    if (!this.halted) this.durability.touch();
  }

  /** Partitions on lanes that wait for a retry: in `backoff`, or held after it (paused). */
  private waitingRetries(snapshot: SnapshotFrom<BatchMachine>): number {
    let n = 0;
    const inFlight = snapshot.context.inFlight;
    for (let lane = 0; lane < inFlight.length; lane++) {
      const f = inFlight[lane];
      if (!f) continue;
      const ls = snapshot.children[`lane-${lane}`]?.getSnapshot() as { value?: unknown } | undefined;
      // What the batch counts on the lane (as `running` counts it): the members still to settle.
      if (ls?.value === 'backoff' || this.lanes.isHeld(lane)) n += sizeOf(f);
    }
    return n;
  }

  /** Make every outcome received so far durable (before reading partitions or counts back). */
  flush(): Promise<void> {
    return this.finalDurable || this.halted ? Promise.resolve() : this.durability.flush();
  }

  /**
   * Graceful stop: abort work in flight (it runs again on the next start, with `redelivered`),
   * make every outcome received so far durable with the current snapshot, and stop the actor.
   */
  async stop(): Promise<void> {
    if (this.halted) return;
    this.halted = true;
    this.lanes.stop();
    try {
      if (!this.finalDurable) await this.durability.flush();
    } finally {
      // The final state became durable while stopping (its write was in flight, or this flush
      // wrote it): the batch ended here, and persistFinal, which sees the runtime halted, leaves
      // saying so to this stop. Unsaid, the batch would be final in the store while its waiters and
      // listeners never hear of it: nothing resumes a final batch to tell them later.
      if (!this.finalDurable && this.durability.finalStored) this.ended();
      this.release();
    }
  }

  /**
   * A running attempt reported its progress: the summary changed, though the batch machine did not.
   * Said once for the reports of PROGRESS_MS (handlers may report at every item they process).
   */
  private progressed(): void {
    // Not held back while the actor starts (quiet): a handler called as its batch starts may report
    // at once, and said later, that report reaches the listeners all the same.
    if (this.progressTimer || this.halted) return;
    this.progressTimer = setTimeout(() => {
      this.progressTimer = undefined;
      if (!this.halted && !this.finalDurable) this.emit({ type: 'changed' });
    }, PROGRESS_MS);
    // Not unref'd: a listener waiting for this progress is work the program still expects (a
    // handler that waits for the program itself would otherwise see the process exit under it).
  }

  private release(): void {
    clearTimeout(this.progressTimer);
    this.finalization.stop();
    this.durability.close();
    this.actor.stop();
    this.feeder.clear();
  }

  private emit(event: RuntimeEvent): void {
    this.deps.events(this, event);
  }

  /** What the machines' provided actions and actors do for this batch (wiring.ts routes them here). */
  private effects(): BatchEffects {
    return {
      // Both run once per partition: a try/catch each, no closure allocated per call.
      startWork: (lane, work, self) => {
        try {
          // Paused, the only start is a retry whose backoff ended: it waits for resume(), as every
          // partition not in flight does (after a restart, a paused batch's retries wait likewise).
          // (Its summary does not change: waiting out its backoff, it counted as pending already.)
          if (this.actor.getSnapshot().value === 'paused') this.lanes.hold(lane, work, self);
          else this.lanes.start(lane, work, self);
        } catch (err) {
          this.crashLater(err, 'startWork');
        }
      },
      abortWork: (lane) => this.lanes.abort(lane),
      dispatch: (lane, p) => {
        try {
          this.lanes.dispatch(lane, p);
        } catch (err) {
          this.crashLater(err, 'dispatchPartition');
        }
      },
      loadPartitions: (from, count) => this.loadPartitions(from, count),
      journalOutcomes: (outcomes, seq) => {
        for (let i = 0; i < outcomes.length; i++) {
          const outcome = outcomes[i]!;
          this.feeder.release(outcome.index);
          // The lane made this object for the journal: it becomes the record, stamped, not copied.
          const record = outcome as OutcomeRecord;
          record.seq = seq + i;
          record.finishedAt = '';
          this.durability.append(record);
          this.deps.stats.partition(
            this.id,
            this.record.job,
            outcome.status,
            outcome.durationMs,
            outcome.attempts,
          );
          // Checked once per batch: a child logger per partition costs nothing when debug is off.
          if (this.debug)
            this.log
              .child({ key: outcome.key, attempt: outcome.attempts })
              .debug(
                { status: outcome.status, durationMs: outcome.durationMs, err: outcome.error },
                'partition settled',
              );
        }
      },
      startFinalize: (input) => this.finalization.start(input),
      stopFinalize: () => this.finalization.stop(),
    };
  }

  /** A provided action threw (a bug, never user code): the batch ends FAILED instead of erroring the actor. */
  private crashLater(err: unknown, what: string): void {
    // Deferred: the actor is in the middle of a transition.
    queueMicrotask(() => this.crashed(err, what));
  }

  private loadPartitions(from: number, count: number, retry = 1): void {
    this.feeder.load(from, count).then(
      ({ loaded, settled }) => {
        if (this.halted) return;
        if (settled.length === 0) this.actor.send({ type: 'PARTITIONS.LOADED', loaded });
        else this.actor.send({ type: 'PARTITIONS.LOADED', loaded, settled });
      },
      async (err) => {
        this.emit({ type: 'store-error', error: toError(err) });
        await sleep(backoffDelay(retry, 50, 2000));
        if (!this.halted) this.loadPartitions(from, count, retry + 1);
      },
    );
  }

  private changed(): void {
    const snapshot = this.actor.getSnapshot();
    // An event that changed nothing (e.g. a second CANCEL while cancelling) is not a change.
    if (snapshot === this.lastSnapshot) return;
    this.lastSnapshot = snapshot;
    const status = String(snapshot.value);
    if (status !== this.lastStatus) {
      this.lastStatus = status;
      // Paused, an answer may send a lane into a retry's backoff, which no batch event tells: only
      // then is each answer followed (the hot path, outside `paused`, pays nothing for it).
      this.lanes.afterAnswer = status === 'paused' ? this.pausedAnswer : undefined;
      this.lanes.paused = status === 'paused';
      this.log.info({ state: status }, 'batch state');
      // Quiet: a new batch's first state, QUEUED, which the engine announced when it queued it.
      if (snapshot.status !== 'done' && !this.quiet)
        this.emit({ type: 'status', status: this.summary().status });
      const ending = snapshot.status === 'done' && !this.finishedAt;
      if (ending) this.finishedAt = new Date().toISOString();
      if (!this.halted) this.durability.touch();
      // After the touch: persistFinal's flush writes the final state once. Touched after that
      // write had begun, the state would be written a second time for nothing (measured: two
      // commits per one-partition batch where one does).
      if (ending) void this.persistFinal();
    }
    if (!this.quiet) this.emit({ type: 'changed' });
  }

  private async persistFinal(): Promise<void> {
    try {
      await this.durability.untilDurable(() => this.halted);
    } catch {
      return; // the lease was lost: leaseLost() has told the engine
    }
    // Halted meanwhile: stop() says whether the batch ended (its last flush tells).
    if (this.halted) return;
    this.durability.close();
    await this.deps
      .atEnd?.()
      .catch((err: unknown) => this.log.warn({ err }, 'could not clean up after the batch'));
    // stop() may have said it meanwhile (the final state is stored).
    if (this.finalDurable) return;
    this.ended();
  }

  /**
   * The job's triggers, for the batch about to end as `end` says: during its FINALIZING
   * (finalization.ts), once every outcome is durable. A crash or a stop() meanwhile leaves the batch
   * FINALIZING in the store; the next start finalizes it again, and each trigger's submit,
   * idempotent, finds or makes its batch. A cancel meanwhile aborts `signal`: the batch ends
   * CANCELLED, and no trigger submits after it (those submitted before stay).
   */
  private async fireTriggers(end: FinalizerEnd, signal: AbortSignal): Promise<void> {
    const snapshot = this.actor.getSnapshot();
    const c = snapshot.context;
    const counts = { total: c.config.total, succeeded: c.succeeded, failed: c.failed };
    // The summary the batch is about to end with (the machine's FINALIZED or FINALIZE.FAILED).
    const final: BatchSummary = {
      ...summaryOf(this.record, snapshot, true, undefined),
      status: end.ok ? uncheckedOutcome(counts, c.config.failurePolicy) : 'FAILED',
      running: 0,
      finishedAt: new Date().toISOString(),
    };
    if (end.ok && end.output !== undefined) final.output = end.output;
    if (!end.ok) final.error = serializeError(end.error);
    // Filled as each trigger submits: cancelled meanwhile (its call then never answers), the batch
    // still lists the children submitted before the cancel.
    this.triggered = [];
    await this.deps.triggers!(final, signal, this.triggered);
  }

  /** The final state is durable: say so, once (the last change of this batch here). */
  private ended(): void {
    this.finalDurable = true;
    const summary = this.summary();
    this.log.info(
      { status: summary.status, succeeded: summary.succeeded, failed: summary.failed },
      'batch finished',
    );
    // One event, not 'changed' then 'final': listeners get the final summary exactly once.
    this.emit({ type: 'final', summary });
  }

  private leaseLost(): void {
    if (this.halted) return;
    this.halted = true;
    this.log.error('lease lost: another engine runs this batch now; this engine stops working on it');
    this.lanes.stop();
    this.release();
    this.emit({ type: 'lease-lost' });
  }

  /** Told by the engine's heartbeat that the lease is gone. */
  abandon(): void {
    this.leaseLost();
  }

  /**
   * A provided action threw, or the actor errored: a bug, not a partition's failure. The batch is
   * stored FAILED with an INTERNAL error (final, so it is not resumed into the same bug) and every
   * waiter is settled.
   */
  private crashed(err: unknown, where = 'batch actor'): void {
    if (this.crash || this.halted || this.finalDurable) return;
    this.crash = new PartitaError('INTERNAL', `partita internal error in ${where}: ${toError(err).message}`, {
      cause: err,
    });
    this.log.error({ err: toError(err) }, 'internal error; the batch ends FAILED');
    this.lanes.stop();
    if (!this.finishedAt) this.finishedAt = new Date().toISOString();
    const summary = { ...this.summary(), status: 'FAILED' as const };
    const state: BatchState = {
      schemaVersion: 1,
      machineVersion: BATCH_MACHINE_VERSION,
      status: 'FAILED',
      journalSeq: summary.succeeded + summary.failed,
      snapshot: null,
      summary: { ...summary, finishedAt: this.finishedAt },
    };
    void (async () => {
      try {
        await this.durability.untilDurable(() => this.halted);
        await this.deps.store.saveState(this.id, state, this.deps.fence);
      } catch (e) {
        this.log.error({ err: toError(e) }, 'could not store the FAILED state; the batch resumes on restart');
      }
      if (this.halted) return;
      this.halted = true;
      this.lanes.stop();
      this.release();
      this.finalDurable = true;
      this.emit({ type: 'final', summary: this.summary() });
    })();
  }
}
