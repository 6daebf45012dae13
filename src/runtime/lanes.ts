import type { AnyActorRef } from 'xstate';
import type { AnyJobDefinition } from '../job.js';
import type { LaneWork } from '../machines/partition.js';
import { UnreadablePayload } from '../store/unreadable-payload.js';
import { storedCopy } from '../values.js';
import type { PartitionFeeder } from './feeder.js';
import type { RateLimiter } from './rate-limiter.js';
import type { Runner, RunnerEvent } from './work.js';
import type { Yielder } from './yielder.js';

/** What a lane driver asks of its batch's lease (Leases.fresh / confirm, for one batch). */
export interface LeaseCheck {
  fresh(): boolean;
  /** `Date.now()` past which the lease may have been taken over; undefined: not held. */
  freshUntil(): number | undefined;
  confirm(then: () => void): void;
}

/** A partition (or a group) handed to a lane: what the batch machine's `dispatchPartition` action carries. */
export interface Dispatch {
  lane: number;
  index: number;
  attempt: number;
  redelivered: boolean;
  /** A group's other members. */
  more?: number[] | undefined;
}

export type { LaneWork } from '../machines/partition.js';

/**
 * Drives the lanes of one batch: hands each its next partition (letting the host's event loop take
 * a turn when dispatching has run long, see yielder.ts), starts and aborts the work, and arms the
 * timeouts. The machines decide *what* runs; this decides nothing, it only carries it out.
 */
export class LaneDriver {
  /** Called after each answer (WORK.*, not progress, and a timeout) reaches its lane. */
  afterAnswer: (() => void) | undefined;
  /** Called when a running attempt reported its progress (`ctx.progress(done, total)`). */
  onProgress: (() => void) | undefined;
  /**
   * Per lane: the fraction (`done / total`, 0 to 1) its running attempt last reported, until it
   * answers, is aborted or the lane starts another: the batch's progress counts it (see
   * {@link inFlightProgress}).
   */
  private readonly fractions = new Map<number, number>();
  /** Per lane: aborts the lane's running attempt (cancel, timeout, stop). */
  private readonly controllers: (AbortController | undefined)[] = [];
  /** Per lane: the running attempt's timeout. */
  private readonly timers: (NodeJS.Timeout | undefined)[] = [];
  /** RUN events the yielder holds back for a turn of the event loop. */
  private readonly deferred = new Set<() => void>();
  /** Per lane: an attempt held while its batch is paused (a retry whose backoff ended). */
  private readonly held = new Map<number, () => void>();
  /** Per lane: the partition (a group: its first member) and attempt it last started. */
  private readonly started: ({ index: number; attempt: number } | undefined)[] = [];
  /**
   * Per lane: the partition (a group: its first member) and attempt last handed to it here, and
   * whether the runner says when it starts (see {@link reportsStart}).
   */
  private readonly handed: ({ index: number; attempt: number; reported: boolean } | undefined)[] = [];
  /**
   * The runner says when an attempt really runs (inline: when the handler is called; on a worker
   * thread, for jobs with `timeoutMs`: when a thread takes the task). Other worker jobs are not
   * told of a task of one partition (it would cost a message per task): its attempt counts as
   * started once handed to the pool, waiting for a thread included. A group's start is told on any
   * pool (one message for several partitions; src/workers/runner.ts).
   */
  private readonly startsReported: boolean;
  /** Per lane: a start that waits for the store to catch up (see {@link storeBehind}). */
  private readonly waitingForStore = new Map<number, () => void>();
  /** The batch's outcomes wait for the store: starts wait until it caught up. */
  private behind = false;
  private stopped = false;
  /** The batch is paused (set by the batch runtime): a start that comes now is held instead. */
  paused = false;

  constructor(
    private readonly batchId: string,
    private readonly job: AnyJobDefinition,
    private readonly runner: Runner,
    private readonly feeder: PartitionFeeder,
    private readonly yielder: Yielder,
    /** The job's rate limit, shared by its batches on this engine. */
    private readonly limiter?: RateLimiter | undefined,
    /** The batch's lease: nothing starts while it may have been taken over (see Leases.fresh). */
    private readonly lease?: LeaseCheck | undefined,
  ) {
    this.startsReported = !runner.remote && (job.handler !== undefined || job.timeoutMs !== undefined);
  }

  /** Send the lane its partition: now, or after the event loop's next turn. */
  dispatch(lane: AnyActorRef | undefined, p: Dispatch): void {
    if (this.stopped) return;
    this.handed[p.lane] = { index: p.index, attempt: p.attempt, reported: this.reportsStart(p.more) };
    const key = this.feeder.get(p.index).key;
    const run = {
      type: 'RUN',
      index: p.index,
      key,
      attempt: p.attempt,
      redelivered: p.redelivered,
      members: p.more
        ? [{ index: p.index, key }, ...p.more.map((i) => ({ index: i, key: this.feeder.get(i).key }))]
        : undefined,
    };
    // The partition is the lane's already in the batch context; only its start may wait a turn.
    let delivered = false;
    const deliver = () => {
      if (delivered) return;
      delivered = true;
      this.deferred.delete(deliver);
      if (!this.stopped) lane?.send(run);
    };
    if (!this.yielder.run(deliver)) this.deferred.add(deliver);
  }

  /** Deliver every held-back RUN now: a lane must hold its partition before it can be cancelled. */
  deliverHeldBack(): void {
    for (const deliver of [...this.deferred]) deliver();
  }

  /** Start the lane's current attempt; its answer comes back to `self` as a WORK.* event. */
  start(lane: number, cur: LaneWork, self: AnyActorRef): void {
    if (this.stopped) return;
    if (this.behind) {
      // Not begun: nothing recorded, no timer; it starts (or is held, paused) when the store caught up.
      this.waitingForStore.set(lane, () => this.start(lane, cur, self));
      return;
    }
    if (this.fractions.size > 0) this.fractions.delete(lane);
    const reported = this.reportsStart(cur.members);
    const startedBefore = this.started[lane];
    if (!reported) this.started[lane] = { index: cur.index, attempt: cur.attempt };
    // One AbortController per lane, replaced only after it aborted: one per attempt showed in the
    // hot path's profile. Inline handlers hold on to ctx.signal (listeners), so each gets its own.
    let controller = this.controllers[lane];
    if (!controller || controller.signal.aborted || this.job.handler) {
      controller = new AbortController();
      this.controllers[lane] = controller;
    }
    const signal = controller.signal;
    const timeoutMs = this.job.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    /** This attempt answered (or timed out): a report its handler makes later counts for nothing. */
    let answered = false;
    const arm =
      timeoutMs === undefined
        ? undefined
        : () => {
            timer = setTimeout(() => {
              if (signal.aborted || this.stopped) return;
              answered = true;
              if (this.fractions.size > 0) this.fractions.delete(lane);
              self.send({ type: 'WORK.TIMEOUT', index: cur.index, attempt: cur.attempt });
              this.afterAnswer?.();
            }, timeoutMs);
            this.timers[lane] = timer;
          };
    // What the runner calls when the attempt really runs: the timeout starts then, and the attempt
    // counts as begun (a stop redelivers it one attempt higher; one that never ran, at the same).
    const begun = reported
      ? () => {
          this.started[lane] = { index: cur.index, attempt: cur.attempt };
          arm?.();
        }
      : arm;
    const report = (event: RunnerEvent) => {
      if (this.stopped || signal.aborted) return;
      if (event.type === 'WORK.PROGRESS') {
        // An inline handler keeps its ctx: one that reports after it answered (a timer it left, a
        // failed attempt's leftovers while its retry runs) must not count (an outside probe).
        if (!answered) this.progressed(lane, event.done, event.total);
        return void self.send(event);
      }
      if (event.type !== 'WORK.STALE') answered = true;
      if (this.fractions.size > 0) this.fractions.delete(lane);
      // Nothing ran: a thread took the task after the lease could have expired (the process was
      // stalled while it waited in the pool's queue). As a start after a stall: once a renewal says
      // the batch is still this engine's; never, when it is not (the batch is then given up).
      if (event.type === 'WORK.STALE') {
        if (!reported) this.started[lane] = startedBefore;
        return this.lease ? this.lease.confirm(run) : run();
      }
      if (timer) clearTimeout(timer);
      self.send(event);
      this.afterAnswer?.();
    };
    const members = cur.members;
    const run = members
      ? () => {
          if (this.stopped || signal.aborted) return;
          if (this.paused) return this.holdAgain(lane, cur, self, reported, startedBefore);
          this.runner.startGroup(
            {
              batchId: this.batchId,
              index: cur.index,
              attempt: cur.attempt,
              redelivered: cur.redelivered,
              members: members.map((m) => ({ key: m.key, payload: this.payloadOf(m.index) })),
              indexes: this.runner.remote ? members.map((m) => m.index) : undefined,
              freshUntil: this.lease?.freshUntil(),
            },
            signal,
            report,
            begun,
          );
        }
      : () => {
          // A start that waited for the rate limit may have been cancelled, stopped or paused meanwhile.
          if (this.stopped || signal.aborted) return;
          if (this.paused) return this.holdAgain(lane, cur, self, reported, startedBefore);
          const payload = this.payloadOf(cur.index);
          this.runner.start(
            { batchId: this.batchId, ...cur, payload, freshUntil: this.lease?.freshUntil() },
            signal,
            report,
            begun,
          );
        };
    // The time waited for the rate limit is not the attempt's: its timeout is armed when it starts.
    const go = this.limiter ? () => this.limiter!.acquire(run) : run;
    // A process that was stalled past its lease's time to live starts nothing until a renewal says
    // the batch is still its own (another engine may be running it now); if it is not, the batch
    // is given up and `run` never comes.
    if (this.lease && !this.lease.fresh()) this.lease.confirm(go);
    else go();
  }

  /**
   * The payload an attempt gets. An inline handler gets a copy of its own (the stored JSON, parsed
   * again): one that changes its payload in place (amounts to cents) would otherwise hand its retry,
   * or a later attempt while a timed-out one still runs, the payload as it left it. A worker thread
   * gets a copy anyway (structured clone), and so does another engine (through the store).
   */
  private payloadOf(index: number): unknown {
    const payload = this.feeder.get(index).payload;
    // An unreadable payload is not copied: the runner answers it without running anything.
    return this.job.handler && !(payload instanceof UnreadablePayload) ? storedCopy(payload) : payload;
  }

  /**
   * The last attempt that began of the partition on `lane` (a group: its first member), dispatched
   * at attempt `dispatched`: a retry's is higher; when that attempt has not begun yet (waiting for
   * the rate limit, for its turn of the event loop, or inline for its handler's call), one less.
   */
  startedAttempt(lane: number, index: number, dispatched: number): number {
    const s = this.started[lane];
    if (s?.index === index && s.attempt >= dispatched) return s.attempt;
    // Only what this engine handed the lane: a snapshot restored and not yet resumed holds what the
    // engine before handed out (lowered already when it had not begun; lowered again, it was -1, a
    // snapshot no engine would restore).
    const h = this.handed[lane];
    const handedHere = h?.index === index && h.attempt === dispatched;
    return h?.reported && handedHere ? Math.max(0, dispatched - 1) : dispatched;
  }

  /**
   * What the running attempts have done, in partitions: the sum of the fractions they last reported
   * (0 when none did). A batch's `progress` adds it to its settled partitions.
   */
  get inFlightProgress(): number {
    let sum = 0;
    for (const f of this.fractions.values()) sum += f;
    return sum;
  }

  /** A running attempt said how far it is: only a fraction that makes sense (a total above 0) counts. */
  private progressed(lane: number, done: unknown, total: unknown): void {
    if (typeof done !== 'number' || typeof total !== 'number' || !(total > 0) || Number.isNaN(done)) return;
    this.fractions.set(lane, Math.min(1, Math.max(0, done / total)));
    this.onProgress?.();
  }

  /** Does the runner say when this attempt starts (a group's members, or none: one partition)? */
  private reportsStart(members: readonly unknown[] | undefined): boolean {
    return this.startsReported || (members !== undefined && !this.runner.remote);
  }

  /**
   * The batch was paused while this start waited (for a turn of the rate limit, or for a lease
   * renewal): it is held like any start of a paused batch, and starts again at resume() (it started
   * while the batch showed PAUSED: an outside probe). It has not begun: `startedBefore` is what the
   * lane had begun before it.
   */
  private holdAgain(
    lane: number,
    cur: LaneWork,
    self: AnyActorRef,
    reported: boolean,
    startedBefore: { index: number; attempt: number } | undefined,
  ): void {
    if (!reported) this.started[lane] = startedBefore;
    this.hold(lane, cur, self);
  }

  /** Hold the lane's attempt until {@link startHeld} (its batch is paused): nothing runs, no timer. */
  hold(lane: number, cur: LaneWork, self: AnyActorRef): void {
    if (!this.stopped) this.held.set(lane, () => this.start(lane, cur, self));
  }

  /** Is the lane's attempt held (its batch paused)? */
  isHeld(lane: number): boolean {
    return this.held.has(lane);
  }

  /** Start the attempts held while the batch was paused. */
  startHeld(): void {
    const starts = [...this.held.values()];
    this.held.clear();
    for (const start of starts) start();
  }

  /**
   * The batch's outcomes wait for the store (its journal holds `MAX_BACKLOG` (durability.ts) behind the write
   * in flight): the work they come from runs faster than they are written, so the work waits. What
   * runs goes on; what would start waits for {@link storeCaughtUp}.
   */
  storeBehind(): void {
    this.behind = true;
  }

  /** The store caught up: the starts that waited go. */
  storeCaughtUp(): void {
    this.behind = false;
    if (this.waitingForStore.size === 0) return;
    const starts = [...this.waitingForStore.values()];
    this.waitingForStore.clear();
    for (const start of starts) start();
  }

  /** Abort the lane's running attempt (cancel, timeout). */
  abort(lane: number): void {
    this.fractions.delete(lane);
    this.held.delete(lane);
    this.waitingForStore.delete(lane);
    clearTimeout(this.timers[lane]);
    this.controllers[lane]?.abort();
  }

  /** Abort everything and deliver nothing more (the engine stops, or the batch is given up). */
  stop(): void {
    this.stopped = true;
    for (let lane = 0; lane < this.controllers.length; lane++) this.abort(lane);
    this.deferred.clear();
    this.held.clear();
    this.waitingForStore.clear();
    this.fractions.clear();
  }

  get isStopped(): boolean {
    return this.stopped;
  }
}
