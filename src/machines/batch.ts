import { assign, enqueueActions, setup } from 'xstate';
import { type SerializedError, serializeError } from '../errors.js';
import { type BatchStatus, type FailurePolicy, type PartitionFailure, uncheckedOutcome } from '../summary.js';
import { type LaneInput, type LaneReport, type PartitionOutput, partitionMachine } from './partition.js';
import { stopLanes } from './stop-lanes.js';

/**
 * The batch statechart (docs/statechart.md): QUEUED → PROCESSING → FINALIZING →
 * COMPLETED | PARTIAL | FAILED, or CANCELLED.
 *
 * The batch actor is the only writer of its counts. Each partition's outcome arrives as an event from
 * the lane that ran it; the same transition counts it, hands it to the journal (`journalOutcomes`,
 * provided by the engine) and dispatches the next partition. Finalization is an eventless `always`
 * transition guarded by `allSettled`, so the last outcome itself moves the batch to FINALIZING with
 * no other event, timer or poll (seed 002).
 *
 * Context is O(concurrency): counts, a cursor into the stored partition list, the partition in
 * flight on each lane, and the first 100 failures. Results stay in the store.
 */

/** Bumped when the context shape or the states change; stored with every snapshot. */
export const BATCH_MACHINE_VERSION = 5;

/** At most this many failures are kept in context (and in the summary). */
export const FAILURE_SAMPLE = 100;

/**
 * What a lane runs: one partition, or a group (item batching: `more` holds the other members'
 * indexes). In `redeliver`, `attempt` is the attempt to run; on a lane, the attempt it was given.
 * `redeliver` holds groups since machine version 5 (restartLanes).
 */
export interface InFlight {
  index: number;
  attempt: number;
  more?: number[] | undefined;
}

/** How a batch groups partitions into one task (the job's `batching`). */
export interface Batching {
  /** At most this many partitions in a group (1: no grouping). */
  maxItems: number;
  /** Size groups from the measured work time (`'auto'`), or always up to `maxItems`. */
  auto: boolean;
  /**
   * How many tasks can run at once (a worker job: its pool's threads). The last groups shrink so
   * that what is left is shared by that many (default: the lanes).
   */
  spread?: number | undefined;
  /** `'auto'`: the work a group aims at, in ms (default GROUP_TARGET_MS). */
  targetMs?: number | undefined;
  /**
   * Groups are a distributed batch's ranges (`distribute`): one in flight at a restart always comes
   * back whole. A range runs on whichever engine claims it, and one whose holder dies is claimed
   * again whole, so running its members one at a time would isolate nothing and cost a range each.
   */
  ranges?: boolean | undefined;
}

/**
 * `'auto'` grows a group while its work takes less than its target (ms), and shrinks it above twice
 * that. An inline handler's group runs on the host's own thread, whose event loop it holds: 2 ms.
 */
export const GROUP_TARGET_MS = 2;

/**
 * The target of a worker job's groups (on the pool's threads): 10 ms, not the couple of
 * milliseconds DESIGN.md first named. What the engine spends per group on its own thread (a pool
 * task's trip, three events, a commit: 0.1–0.35 ms of CPU on two cores, more while the pool's
 * threads take the cores) is paid out of the threads' time, and with groups of 2 ms it cost 1 ms
 * partitions a quarter of their throughput (docs/benchmarks.md, "Groups of 10 ms on the pool").
 * A partition of 10 ms or more is still never grouped.
 */
export const POOL_GROUP_TARGET_MS = 10;

/** An outcome read back from the journal at recovery. */
export interface ReplayedOutcome {
  index: number;
  key: string;
  status: 'succeeded' | 'failed';
  attempts: number;
  error?: SerializedError | undefined;
}

export interface BatchInput {
  batchId: string;
  job: string;
  total: number;
  concurrency: number;
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  timeoutMs?: number | undefined;
  failurePolicy?: FailurePolicy | undefined;
  /** How many partitions one `loadPartitions` asks for. */
  pageSize?: number | undefined;
  /** Item batching; absent: none. */
  batching?: Batching | undefined;
}

/** What a batch is configured with: fixed for its lifetime. */
export interface BatchConfig {
  batchId: string;
  job: string;
  total: number;
  /** Number of lanes: min(concurrency, total) (the engine gives a worker job's batch a concurrency of at most 4 per pool thread). */
  lanes: number;
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  timeoutMs: number | undefined;
  failurePolicy: FailurePolicy;
  pageSize: number;
  /** Item batching; absent: one partition per task. */
  batching?: Batching | undefined;
  /** Which run of the batch this is: absent for the first, 2 after the first `retryFailed`, and so on. */
  run?: number | undefined;
}

/**
 * Kept to few keys on purpose (the fixed settings live in `config`): V8 turns an object built by
 * `Object.assign` with more than about 19 keys into a slow dictionary, and XState copies the
 * context with `Object.assign` on every update. Measured: 24 keys made each copy 6–8 µs instead of
 * 0.3 µs (test/machines/context-shape.test.ts guards the count).
 */
export interface BatchContext {
  config: BatchConfig;
  /** Next partition index to dispatch. */
  cursor: number;
  /** Partitions [0, loaded) are loaded and can be dispatched. */
  loaded: number;
  loading: boolean;
  succeeded: number;
  failed: number;
  running: number;
  /** The partition on each lane, or null when the lane is idle. */
  inFlight: (InFlight | null)[];
  /** Partitions that were in flight when the engine stopped: run again first. */
  redeliver: InFlight[];
  /**
   * Partitions at or after the cursor that have an outcome already (replayed from the journal, or a
   * redriven batch's succeeded ones): dispatch steps over them. Distinct and ascending.
   */
  settledAhead: number[];
  failures: PartitionFailure[];
  /** Partitions the next group takes at most (item batching; 1 without). */
  groupSize: number;
  startedAt: string | undefined;
  outcome: BatchStatus | undefined;
  output: unknown;
  error: SerializedError | undefined;
}

export type BatchEvent =
  | { type: 'ADMIT'; at: string }
  /**
   * A page of partitions is loaded up to `loaded`. `settled`: the indexes in the page that have an
   * outcome already (a redriven batch's partitions that succeeded in an earlier run): skipped.
   */
  | { type: 'PARTITIONS.LOADED'; loaded: number; settled?: readonly number[] | undefined }
  | { type: 'CANCEL'; reason: string }
  /** engine.pause(): dispatch nothing more; partitions in flight finish. */
  | { type: 'PAUSE' }
  /** engine.resume() of a paused batch (RESUME is the restore after a restart). */
  | { type: 'CONTINUE' }
  | { type: 'RESUME'; replay: ReplayedOutcome[] }
  /** The finalization that `startFinalize` began ended: `output` is the job's finalizer's result. */
  | { type: 'FINALIZED'; output: unknown }
  /** The job's finalizer failed (after its retries). */
  | { type: 'FINALIZE.FAILED'; error: unknown }
  | LaneReport;

/** What `startFinalize` hands the engine. */
export interface FinalizeInput {
  batchId: string;
  total: number;
  succeeded: number;
  failed: number;
}

/**
 * A reference to an action of this same `setup()`, for use inside its own `enqueueActions`
 * (TypeScript cannot see the setup's action names from within it; XState resolves them at run time).
 */
const named = (type: string, params: object) => ({ type, params }) as never;

const settledCount = (c: BatchContext) => c.succeeded + c.failed;
const outcomeOf = (c: BatchContext) =>
  uncheckedOutcome(
    { total: c.config.total, succeeded: c.succeeded, failed: c.failed },
    c.config.failurePolicy,
  );
const allSettled = (c: BatchContext) => c.running === 0 && settledCount(c) >= c.config.total;

/** Longest error message kept in the failure sample; the whole error is in the partition's row. */
export const SAMPLE_MESSAGE_LENGTH = 1024;

/**
 * A failure as the sample keeps it: name, code and the start of the message, no stack. The sample is
 * part of every snapshot the journal writes, so it stays small whatever partitions throw.
 */
function sampled(error: SerializedError | undefined): SerializedError {
  if (!error) return { name: 'Error', message: 'failed' };
  const message =
    error.message.length > SAMPLE_MESSAGE_LENGTH
      ? `${error.message.slice(0, SAMPLE_MESSAGE_LENGTH)}…`
      : error.message;
  return error.code === undefined
    ? { name: error.name, message }
    : { name: error.name, message, code: error.code };
}

/** Count one outcome (pure). Returns the context changes. */
function count(
  c: BatchContext,
  o: { key: string; status: string; attempts: number; error?: SerializedError | undefined },
) {
  const failures =
    o.status === 'failed' && c.failures.length < FAILURE_SAMPLE
      ? [...c.failures, { key: o.key, error: sampled(o.error), attempts: o.attempts }]
      : c.failures;
  return o.status === 'succeeded' ? { succeeded: c.succeeded + 1 } : { failed: c.failed + 1, failures };
}

/** The partitions on a lane: one, or a group's members. */
export function membersOf(f: InFlight): number[] {
  return f.more ? [f.index, ...f.more] : [f.index];
}

/** Sorts indexes ascending, in place. */
export const ascending = (indexes: number[]) => indexes.sort((a, b) => a - b);

/** How many partitions a lane's entry holds. */
export const sizeOf = (f: InFlight) => (f.more ? 1 + f.more.length : 1);

const holds = (f: InFlight, index: number) => f.index === index || (f.more?.includes(index) ?? false);

/** Does this lane report on partitions the lane was given? Anything else is ignored. */
function matchesLane(c: BatchContext, lane: number, indexes: readonly number[]): boolean {
  const f = c.inFlight[lane];
  if (!f) return false;
  if (!f.more) return indexes.length === 1 && indexes[0] === f.index;
  return indexes.length > 0 && indexes.every((i) => holds(f, i));
}

/** The lane's partitions once `gone` have left it (settled, returned), or null when none is left. */
function without(f: InFlight, gone: readonly number[]): InFlight | null {
  if (gone.length >= sizeOf(f)) return null;
  const left = membersOf(f).filter((i) => !gone.includes(i));
  const [index, ...more] = left;
  if (index === undefined) return null;
  return more.length > 0 ? { index, attempt: f.attempt, more } : { index, attempt: f.attempt };
}

/**
 * The next group size under `'auto'` (pure): grown (2 × to 8 × a step, toward what fits the target)
 * while a full group's work took under its target (`targetMs`, GROUP_TARGET_MS or
 * POOL_GROUP_TARGET_MS), cut to what fits the target above twice that; a 1 s partition is never
 * grouped.
 */
export function nextGroupSize(
  config: BatchConfig,
  size: number,
  workMs: number | undefined,
  n: number,
): number {
  const b = config.batching;
  if (!b?.auto || workMs === undefined || n === 0) return size;
  const target = b.targetMs ?? GROUP_TARGET_MS;
  let next = size;
  if (workMs < target) {
    // Toward what fits the target, by 2 × to 8 × a step: 1 → 8 → 64 for work of microseconds (50
    // lanes doubling one step at a time ran half of a 10,000-partition batch in groups under 64).
    const aim = workMs > 0 ? Math.floor((target * n) / workMs) : b.maxItems;
    if (n >= size) next = Math.min(b.maxItems, Math.max(size * 2, Math.min(aim, size * 8)));
  } else if (workMs > 2 * target)
    next = Math.max(1, Math.min(Math.floor(size / 2), Math.floor(target / (workMs / n))));
  // A group's `timeoutMs` bounds the whole group: keep its expected work to a quarter of it.
  const per = workMs / n;
  if (config.timeoutMs !== undefined && per > 0)
    next = Math.max(1, Math.min(next, Math.floor(config.timeoutMs / 4 / per)));
  return next;
}

/**
 * Which idle lane gets which partition (pure): partitions to redeliver first, then the cursor,
 * skipping partitions settled ahead of it; and whether to ask for the next page, early enough
 * that lanes never wait on the store.
 */
function planDispatch(context: BatchContext, firstLane = 0) {
  let inFlight = context.inFlight;
  let redeliver = context.redeliver;
  const settledAhead = context.settledAhead;
  // How many of `settledAhead` (ascending) the cursor has passed: they leave it at the end.
  let skipped = 0;
  let { cursor, running, loading } = context;
  const actions: never[] = [];
  const lanes = inFlight.length;
  // Lanes, not partitions: a lane may hold a group, so `running` (partitions) says nothing of them.
  let idle = 0;
  for (let lane = 0; lane < lanes; lane++) if (!inFlight[lane]) idle++;
  // Scan from `firstLane` (the lane that just settled): with every other lane busy, one step, not
  // a walk over all lanes for every partition.
  for (let i = 0; i < lanes && idle > 0; i++) {
    const lane = (firstLane + i) % lanes;
    if (inFlight[lane]) continue;
    let next: InFlight | undefined;
    let redelivered = false;
    if (redeliver.length > 0) {
      // As it was put back (restartLanes, requeue): a group interrupted once by a stop or a crash
      // as a group; a member of a group whose task failed as a whole, alone.
      const r = redeliver[0]!;
      next = r.more
        ? { index: r.index, attempt: r.attempt, more: r.more }
        : { index: r.index, attempt: r.attempt };
      redeliver = redeliver.slice(1);
      redelivered = true;
    } else {
      // `settledAhead` is ascending: partitions settled already are stepped over in one pass.
      while (skipped < settledAhead.length && settledAhead[skipped] === cursor) {
        cursor++;
        skipped++;
      }
      if (cursor < context.loaded) {
        // A group: the next pending partitions from the cursor, stepping over settled ones (a
        // redrive's failed partitions lie between succeeded ones), no more than leaves every lane a
        // share of what is left (the last groups shrink, so the batch's tail still runs in parallel).
        const spread = Math.min(lanes, context.config.batching?.spread ?? lanes);
        const pending = context.config.total - cursor - (settledAhead.length - skipped);
        const size = Math.min(context.groupSize, Math.ceil(pending / spread));
        const index = cursor++;
        next = { index, attempt: 1 };
        if (size > 1) {
          const more: number[] = [];
          while (size > 1 + more.length && cursor < context.loaded) {
            if (skipped < settledAhead.length && settledAhead[skipped] === cursor) skipped++;
            else more.push(cursor);
            cursor++;
          }
          if (more.length > 0) next.more = more;
        }
      }
    }
    if (!next) break;
    if (inFlight === context.inFlight) inFlight = inFlight.slice();
    inFlight[lane] = next;
    idle--;
    running += sizeOf(next);
    actions.push(
      named('dispatchPartition', {
        lane,
        index: next.index,
        attempt: next.attempt,
        redelivered,
        more: next.more,
      }),
    );
  }
  const ahead = context.config.lanes * context.groupSize;
  if (!loading && context.loaded < context.config.total && cursor + ahead >= context.loaded) {
    loading = true;
    const count = Math.max(context.config.pageSize, ahead);
    actions.push(named('loadPartitions', { from: context.loaded, count }));
  }
  const settled = skipped > 0 ? settledAhead.slice(skipped) : settledAhead;
  return { actions, changes: { inFlight, redeliver, settledAhead: settled, cursor, running, loading } };
}

/**
 * The context of a batch's next run (engine.retryFailed), pure: the succeeded partitions stay
 * counted, the failed ones are pending again (the store reset them; their pages report the
 * partitions that succeeded as `settled`, which dispatch skips), the failure sample starts empty
 * and `config.run` counts one more. The batch starts again from QUEUED.
 */
export function nextRunContext(c: BatchContext, succeeded: number): BatchContext {
  return {
    ...freshRun(c.config),
    config: { ...c.config, run: (c.config.run ?? 1) + 1 },
    succeeded,
  };
}

/** Everything a run starts with but its config: nothing dispatched, loaded, counted or decided. */
function freshRun(config: Pick<BatchConfig, 'lanes' | 'batching'>): Omit<BatchContext, 'config'> {
  const lanes = config.lanes;
  const b = config.batching;
  return {
    cursor: 0,
    loaded: 0,
    loading: false,
    succeeded: 0,
    failed: 0,
    running: 0,
    inFlight: Array.from({ length: lanes }, () => null),
    redeliver: [],
    settledAhead: [],
    failures: [],
    groupSize: b && !b.auto ? b.maxItems : 1,
    startedAt: undefined,
    outcome: undefined,
    output: undefined,
    error: undefined,
  };
}

/**
 * Nothing is left to dispatch: nothing to redeliver, and every partition from the cursor on was
 * replayed from the journal already (`settledAhead` holds distinct indices at or after the cursor).
 */
function nothingLeft(
  config: BatchConfig,
  c: { cursor: number; redeliver: InFlight[]; settledAhead: number[] },
): boolean {
  return c.redeliver.length === 0 && c.cursor + c.settledAhead.length >= config.total;
}

/** Spawn the lanes that are not in the system (never spawned, or retired), all in one `assign`. */
function spawnMissing(
  config: BatchConfig,
  spawn: (src: 'lane', options: { id: string; systemId: string; input: LaneInput }) => unknown,
  system: { get: (id: string) => unknown },
): void {
  for (let lane = 0; lane < config.lanes; lane++) {
    // Spawned lanes outlive the state that spawned them: back from `paused`, they are there.
    if (system.get(`lane-${lane}`)) continue;
    spawn('lane', {
      id: `lane-${lane}`,
      systemId: `lane-${lane}`,
      input: {
        lane,
        maxAttempts: config.maxAttempts,
        backoffMs: config.backoffMs,
        maxBackoffMs: config.maxBackoffMs,
        timeoutMs: config.timeoutMs,
      },
    });
  }
}

export const batchMachine = setup({
  types: {
    context: {} as BatchContext,
    input: {} as BatchInput,
    events: {} as BatchEvent,
  },
  actors: {
    lane: partitionMachine,
  },
  actions: {
    /**
     * Provided by the engine: finalize the batch (its job's finalizer, its triggers' durability),
     * then answer FINALIZED or FINALIZE.FAILED. Not an invoked actor: a batch with nothing to
     * finalize would pay for an actor, its start and two more events for nothing
     * (docs/architecture.md, "Finalizing without an actor").
     */
    startFinalize: (_, _params: FinalizeInput) => {},
    /** Provided by the engine: the finalization under way, if any, is abandoned (its signal aborts). */
    stopFinalize: (_, _params: undefined) => {},
    /** Provided by the engine: send `RUN { index, key, attempt, redelivered }` to the lane. */
    dispatchPartition: (
      _,
      _params: {
        lane: number;
        index: number;
        attempt: number;
        redelivered: boolean;
        more?: number[] | undefined;
      },
    ) => {},
    /** Provided by the engine: load partitions [from, from + count) and answer PARTITIONS.LOADED. */
    loadPartitions: (_, _params: { from: number; count: number }) => {},
    /**
     * Provided by the engine: make the outcomes durable (group commit). `seq` is the first one's
     * journal position; the others follow it in order.
     */
    journalOutcomes: (_, _params: { outcomes: readonly PartitionOutput[]; seq: number }) => {},
    /**
     * Every lane in one `assign`: XState adds the children it spawns to the children map in one
     * copy, where one `spawnChild` per lane copied the map once per lane (O(lanes²)).
     */
    spawnLanes: assign(({ context, spawn, system }) => {
      // Lanes retire once nothing is left (`settle`): none is needed again, retired or not.
      if (nothingLeft(context.config, context)) return {};
      spawnMissing(context.config, spawn, system);
      return {};
    }),
    /**
     * A group came back (PARTITIONS.RETURNED) while lanes had retired: its members run one per task,
     * so every lane is back before they are dispatched (a retired lane can take nothing). Only on
     * this failure path; lanes otherwise retire as the batch runs out of partitions, groups in
     * flight or not, so that its final state finds them stopped already.
     */
    respawnLanes: assign(({ context, spawn, system }) => {
      spawnMissing(context.config, spawn, system);
      return {};
    }),
    /** Fill idle lanes: partitions to redeliver first, then the cursor; ask for more partitions early. */
    dispatch: enqueueActions(({ context, enqueue }) => {
      const plan = planDispatch(context);
      for (const action of plan.actions) enqueue(action);
      enqueue.assign(plan.changes);
    }),
    /**
     * Outcomes from a lane (one partition's, or a group's): count each, journal each, give the lane
     * its next partitions once none of its own is left. One action (one context update) because this
     * runs once per task: it is the engine's hot path.
     */
    settle: enqueueActions(({ context, enqueue, event }, params: { dispatch: boolean }) => {
      if (event.type !== 'PARTITIONS.SETTLED') return;
      const outcomes = event.outcomes;
      const inFlight = context.inFlight.slice();
      const f = inFlight[event.lane]!;
      inFlight[event.lane] =
        outcomes.length === sizeOf(f)
          ? null
          : without(
              f,
              outcomes.map((o) => o.index),
            );
      let { succeeded, failed, failures } = context;
      for (const o of outcomes) {
        if (o.status === 'succeeded') succeeded++;
        else {
          failed++;
          if (failures.length < FAILURE_SAMPLE)
            failures = [...failures, { key: o.key, error: sampled(o.error), attempts: o.attempts }];
        }
      }
      const counted: BatchContext = {
        ...context,
        succeeded,
        failed,
        failures,
        inFlight,
        running: context.running - outcomes.length,
        groupSize: nextGroupSize(context.config, context.groupSize, event.workMs, outcomes.length),
      };
      enqueue(named('journalOutcomes', { outcomes, seq: settledCount(context) + 1 }));
      if (!params.dispatch || inFlight[event.lane] !== null) {
        enqueue.assign({
          succeeded: counted.succeeded,
          failed: counted.failed,
          failures: counted.failures,
          inFlight,
          running: counted.running,
          groupSize: counted.groupSize,
        });
        return;
      }
      const plan = planDispatch(counted, event.lane);
      for (const action of plan.actions) enqueue(action);
      // The lane got nothing and nothing is left for any lane: it stops now (it reaches its own
      // final state), so the batch's final state finds its lanes stopped already (stop-lanes.ts).
      // Also while a group is in flight elsewhere: should its task fail as a whole, its members
      // come back with the lanes respawned (`respawnLanes`). Kept until the last group settled,
      // a wide batch's idle lanes were all stopped by its final state (4–8 ms at 1,024 lanes).
      // A batch of one partition has one lane and ends with this outcome: its final state stops the
      // lane (one stopChild), where retiring it cost two more events (RETIRE, and the lane's done).
      if (
        counted.config.total > 1 &&
        plan.changes.inFlight[event.lane] === null &&
        nothingLeft(counted.config, plan.changes)
      )
        enqueue.sendTo(`lane-${event.lane}`, { type: 'RETIRE' });
      enqueue.assign({
        succeeded: counted.succeeded,
        failed: counted.failed,
        failures: counted.failures,
        groupSize: counted.groupSize,
        ...plan.changes,
      });
    }),
    /**
     * A group's task failed as a whole: its members go back to run one per task at the same attempt
     * (`redeliver`), and under `'auto'` the next groups are half as large.
     */
    requeue: enqueueActions(({ context, enqueue, event }, params: { dispatch: boolean }) => {
      if (event.type !== 'PARTITIONS.RETURNED') return;
      const inFlight = context.inFlight.slice();
      inFlight[event.lane] = without(inFlight[event.lane]!, event.indexes);
      const returned: BatchContext = {
        ...context,
        inFlight,
        running: context.running - event.indexes.length,
        redeliver: [
          ...context.redeliver,
          ...event.indexes.map((index) => ({ index, attempt: event.attempt })),
        ],
        groupSize: context.config.batching?.auto
          ? Math.max(1, Math.floor(context.groupSize / 2))
          : context.groupSize,
      };
      if (!params.dispatch) {
        enqueue.assign({
          inFlight,
          running: returned.running,
          redeliver: returned.redeliver,
          groupSize: returned.groupSize,
        });
        return;
      }
      const plan = planDispatch(returned, event.lane);
      for (const action of plan.actions) enqueue(action);
      enqueue.assign({ groupSize: returned.groupSize, ...plan.changes });
    }),
    /** A page is here; its partitions that have an outcome already join `settledAhead` (once). */
    loaded: assign(({ context, event }) => {
      if (event.type !== 'PARTITIONS.LOADED') return {};
      const known = new Set(context.settledAhead);
      const fresh = (event.settled ?? []).filter((i) => i >= context.cursor && !known.has(i));
      return {
        loaded: event.loaded,
        loading: false,
        ...(fresh.length > 0 ? { settledAhead: ascending([...context.settledAhead, ...fresh]) } : {}),
      };
    }),
    freeLane: assign(({ context, event }) => {
      if (event.type !== 'PARTITION.CANCELLED') return {};
      const inFlight = context.inFlight.slice();
      const f = inFlight[event.lane];
      inFlight[event.lane] = null;
      return { inFlight, running: context.running - (f ? sizeOf(f) : 0) };
    }),
    /** Apply outcomes read back from the journal; they are durable already, so not journaled again. */
    replay: assign(({ context, event }) => {
      if (event.type !== 'RESUME') return {};
      let c = context;
      const inFlight = context.inFlight.slice();
      const settledAhead = context.settledAhead.slice();
      let redeliver = context.redeliver;
      let running = context.running;
      for (const o of event.replay) {
        c = { ...c, ...count(c, o) };
        const lane = inFlight.findIndex((f) => f !== null && holds(f, o.index));
        if (lane >= 0) {
          inFlight[lane] = without(inFlight[lane]!, [o.index]);
          running--;
        } else if (redeliver.some((r) => holds(r, o.index))) {
          redeliver = redeliver.flatMap((r) => {
            if (!holds(r, o.index)) return [r];
            const left = without(r, [o.index]);
            return left ? [left] : [];
          });
        } else if (o.index >= context.cursor) settledAhead.push(o.index);
      }
      ascending(settledAhead);
      return {
        succeeded: c.succeeded,
        failed: c.failed,
        failures: c.failures,
        inFlight,
        redeliver,
        settledAhead,
        running,
      };
    }),
    /**
     * After a restart nothing runs: what was in flight is redelivered at its next attempt (the
     * interrupted one counts), and pages are loaded again. A group at its first attempt comes back
     * whole: a stop, a crash or a takeover is rarely its doing, and one at a time its members cost a
     * task each (a distributed batch's, a range each). A group interrupted at a later attempt comes
     * back one member at a time, so that a member that keeps bringing its host down cannot keep the
     * others from finishing; a distributed batch's range, whole again (Batching.ranges).
     */
    restartLanes: assign(({ context }) => ({
      redeliver: [
        ...context.redeliver,
        ...context.inFlight.flatMap((f): InFlight[] => {
          if (!f) return [];
          const attempt = f.attempt + 1;
          // At most its first attempt begun (0: stored before it began, durability.ts), or a range.
          if (f.more && (f.attempt <= 1 || context.config.batching?.ranges))
            return [{ index: f.index, attempt, more: f.more }];
          return membersOf(f).map((index) => ({ index, attempt }));
        }),
      ],
      inFlight: context.inFlight.map(() => null),
      running: 0,
      loaded: context.cursor,
      loading: false,
    })),
    cancelLanes: enqueueActions(({ context, enqueue }) => {
      context.inFlight.forEach((f, lane) => {
        if (f) enqueue.sendTo(`lane-${lane}`, { type: 'CANCEL' });
      });
    }),
    setCancelled: assign(({ event }) => ({
      outcome: 'CANCELLED' as const,
      // A reason, not a fault: no stack (it would only show XState's frames to whoever reads it).
      error:
        event.type === 'CANCEL'
          ? { name: 'CancelledError', message: event.reason, code: 'CANCELLED' }
          : undefined,
    })),
  },
  guards: {
    allSettled: ({ context }) => allSettled(context),
    noneRunning: ({ context }) => context.running === 0,
    isOwnLane: ({ context, event }) =>
      (event.type === 'PARTITIONS.SETTLED' &&
        matchesLane(
          context,
          event.lane,
          event.outcomes.map((o) => o.index),
        )) ||
      (event.type === 'PARTITIONS.RETURNED' && matchesLane(context, event.lane, event.indexes)) ||
      (event.type === 'PARTITION.CANCELLED' && context.inFlight[event.lane]?.index === event.index),
    isCompleted: ({ context }) => outcomeOf(context) === 'COMPLETED',
    isPartial: ({ context }) => outcomeOf(context) === 'PARTIAL',
  },
}).createMachine({
  id: 'batch',
  context: ({ input }) => {
    const lanes = Math.max(0, Math.min(input.concurrency, input.total));
    return {
      config: {
        batchId: input.batchId,
        job: input.job,
        total: input.total,
        lanes,
        maxAttempts: input.maxAttempts,
        backoffMs: input.backoffMs,
        maxBackoffMs: input.maxBackoffMs,
        timeoutMs: input.timeoutMs,
        failurePolicy: input.failurePolicy ?? {},
        pageSize: input.pageSize ?? Math.max(256, 2 * lanes),
        ...(input.batching && input.batching.maxItems > 1 ? { batching: input.batching } : {}),
      },
      ...freshRun({
        lanes,
        batching: input.batching && input.batching.maxItems > 1 ? input.batching : undefined,
      }),
    };
  },
  initial: 'queued',
  states: {
    queued: {
      on: {
        ADMIT: { target: 'processing', actions: assign(({ event }) => ({ startedAt: event.at })) },
        CANCEL: { target: 'cancelled', actions: 'setCancelled' },
        // Outcomes journaled before the state left QUEUED was saved: counted now, skipped at dispatch.
        RESUME: { actions: 'replay' },
      },
    },
    processing: {
      entry: ['spawnLanes', 'dispatch'],
      always: { guard: 'allSettled', target: 'finalizing' },
      on: {
        'PARTITIONS.SETTLED': { guard: 'isOwnLane', actions: { type: 'settle', params: { dispatch: true } } },
        'PARTITIONS.RETURNED': {
          guard: 'isOwnLane',
          actions: ['respawnLanes', { type: 'requeue', params: { dispatch: true } }],
        },
        'PARTITIONS.LOADED': { actions: ['loaded', 'dispatch'] },
        CANCEL: { target: 'cancelling', actions: 'setCancelled' },
        RESUME: { actions: ['replay', 'restartLanes', 'spawnLanes', 'dispatch'] },
        PAUSE: 'paused',
      },
    },
    // PAUSED: nothing more is dispatched; partitions in flight finish and are counted. No page is
    // ever read here: the engine sends PAUSE only when none is being loaded. A sibling of
    // processing rather than a child state (docs/architecture.md, "Pause"): lanes are spawned, not
    // invoked, so they stay across the two states, and the state value stays a plain string.
    paused: {
      always: { guard: 'allSettled', target: 'finalizing' },
      on: {
        'PARTITIONS.SETTLED': {
          guard: 'isOwnLane',
          actions: { type: 'settle', params: { dispatch: false } },
        },
        'PARTITIONS.RETURNED': {
          guard: 'isOwnLane',
          actions: { type: 'requeue', params: { dispatch: false } },
        },
        CONTINUE: 'processing',
        CANCEL: { target: 'cancelling', actions: 'setCancelled' },
        // After a restart a paused batch stays paused: lanes are back, nothing is dispatched.
        RESUME: { actions: ['replay', 'restartLanes', 'spawnLanes'] },
      },
    },
    // Entered and left within the one send of CANCEL: every running lane answers the CANCEL that
    // `cancelLanes` sends it at once (a lane never settles after it), so no other event, and no
    // restore, ever finds the batch here. The model-based tests cover every transition that exists.
    cancelling: {
      entry: 'cancelLanes',
      always: { guard: 'noneRunning', target: 'cancelled' },
      on: {
        'PARTITION.CANCELLED': { guard: 'isOwnLane', actions: 'freeLane' },
      },
    },
    // The engine finalizes (startFinalize) and answers with an event; leaving the state any other
    // way (CANCEL, a restart's RESUME) abandons that finalization (stopFinalize), as stopping an
    // invoked actor would.
    finalizing: {
      entry: {
        type: 'startFinalize',
        params: ({ context }) => ({
          batchId: context.config.batchId,
          total: context.config.total,
          succeeded: context.succeeded,
          failed: context.failed,
        }),
      },
      exit: 'stopFinalize',
      on: {
        FINALIZED: [
          {
            guard: 'isCompleted',
            target: 'completed',
            actions: assign(({ event }) => ({ output: event.output })),
          },
          {
            guard: 'isPartial',
            target: 'partial',
            actions: assign(({ event }) => ({ output: event.output })),
          },
          { target: 'failed', actions: assign(({ event }) => ({ output: event.output })) },
        ],
        'FINALIZE.FAILED': {
          target: 'failed',
          actions: assign(({ event }) => ({ error: serializeError(event.error) })),
        },
        // After a restart the finalizer runs again (finalization is idempotent).
        RESUME: { target: 'finalizing', reenter: true },
        CANCEL: { target: 'cancelled', actions: 'setCancelled' },
      },
    },
    // Each final state stops the lanes first, all at once (stop-lanes.ts): XState's own stop at a
    // final state copies the children map once per lane.
    completed: { type: 'final', entry: [stopLanes, assign({ outcome: 'COMPLETED' as const })] },
    partial: { type: 'final', entry: [stopLanes, assign({ outcome: 'PARTIAL' as const })] },
    failed: { type: 'final', entry: [stopLanes, assign({ outcome: 'FAILED' as const })] },
    cancelled: { type: 'final', entry: [stopLanes, assign({ outcome: 'CANCELLED' as const })] },
  },
  output: ({ context }) => ({
    status: context.outcome,
    total: context.config.total,
    succeeded: context.succeeded,
    failed: context.failed,
    output: context.output,
    error: context.error,
  }),
});

/** The public status of a batch actor's state value. */
export function statusOf(value: unknown): BatchStatus {
  switch (value) {
    case 'queued':
      return 'QUEUED';
    case 'processing':
    case 'cancelling':
      return 'PROCESSING';
    case 'paused':
      return 'PAUSED';
    case 'finalizing':
      return 'FINALIZING';
    case 'completed':
      return 'COMPLETED';
    case 'partial':
      return 'PARTIAL';
    case 'failed':
      return 'FAILED';
    default:
      return 'CANCELLED';
  }
}

export type BatchMachine = typeof batchMachine;
