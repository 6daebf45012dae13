import type { AnyStateMachine, EventFromLogic, SnapshotFrom } from 'xstate';
import {
  type BatchEvent,
  type BatchInput,
  batchMachine,
  type InFlight,
  membersOf,
} from '../../src/machines/batch.js';
import { type LaneEvent, type LaneInput, partitionMachine } from '../../src/machines/partition.js';

/**
 * The environment of each production machine, as the real engine presents it: which events can
 * reach the machine in each state, with the payloads that matter. Paths are generated from the
 * machines the engine runs (`batchMachine`, `partitionMachine`); `.provide()` only swaps their side
 * effects for inert stubs so that path generation runs nothing.
 *
 * An event is *internal* when the engine itself sends it promptly (the first page of partitions
 * loaded, lanes answering a cancel, the dispatch of a partition, the end of a short backoff); a path
 * step with an internal event is observed, not caused, by the test driving the engine.
 */

export interface Model<M extends AnyStateMachine> {
  name: 'batch' | 'partition';
  machine: M;
  input: unknown;
  /** The events the engine can deliver in this state, in a fixed order. */
  events: (snapshot: SnapshotFrom<M>) => EventFromLogic<M>[];
  /** What identifies a state of the model (counts and positions; not timestamps or attempts). */
  serialize: (snapshot: SnapshotFrom<M>) => string;
  isInternal: (event: EventFromLogic<M>) => boolean;
}

// --- batch ---------------------------------------------------------------------------------------

/**
 * 3 partitions, 2 lanes, 2 attempts, groups of up to 2 (item batching, fixed size): small, yet every
 * count and outcome is reachable, and lane 0 carries a group ([p0, p1]) while lane 1 runs p2 alone.
 */
export const BATCH_INPUT: BatchInput = {
  batchId: 'model',
  job: 'model',
  total: 3,
  concurrency: 2,
  maxAttempts: 2,
  backoffMs: 20,
  maxBackoffMs: 20,
  failurePolicy: {},
  batching: { maxItems: 2, auto: false },
};

/** How the engine answers the batch's startFinalize (the model sends them itself). */
export const FINALIZE_DONE = 'FINALIZED';
export const FINALIZE_ERROR = 'FINALIZE.FAILED';

/** The machine the engine runs, with inert side effects (they are inert by default; made explicit). */
export const batchModelMachine = batchMachine.provide({
  actions: {
    dispatchPartition: () => {},
    loadPartitions: () => {},
    journalOutcomes: () => {},
    startFinalize: () => {},
    stopFinalize: () => {},
  },
  actors: { lane: partitionMachine },
});

type BatchSnapshot = SnapshotFrom<typeof batchMachine>;
/** Batch events, FINALIZED and FINALIZE.FAILED included (the model sends them itself). */
export type BatchModelEvent = BatchEvent;

export const keyOf = (index: number) => `p${index}`;

const ADMIT: BatchEvent = { type: 'ADMIT', at: '2026-01-01T00:00:00.000Z' };
const CANCEL: BatchEvent = { type: 'CANCEL', reason: 'model cancel' };
const RESUME: BatchEvent = { type: 'RESUME', replay: [] };
const PAUSE: BatchEvent = { type: 'PAUSE' };
const CONTINUE: BatchEvent = { type: 'CONTINUE' };
const FINAL_ERROR = { name: 'Error', message: 'failed for good', code: 'E_FINAL' };

function settled(lane: number, f: InFlight, status: 'succeeded' | 'failed'): BatchEvent {
  const attempts = f.attempt;
  return {
    type: 'PARTITIONS.SETTLED',
    lane,
    outcomes: membersOf(f).map((index) => {
      const outcome = { index, key: keyOf(index), status, attempts, durationMs: 0 };
      return status === 'succeeded'
        ? { ...outcome, result: { key: keyOf(index), attempt: attempts } }
        : { ...outcome, error: FINAL_ERROR };
    }),
  };
}

/** What can happen to what a lane runs: it succeeds, it fails for good, or (a group) its thread dies. */
function laneOutcomes(c: BatchSnapshot['context']): BatchEvent[] {
  return c.inFlight.flatMap((f, lane) =>
    f
      ? [
          settled(lane, f, 'succeeded'),
          settled(lane, f, 'failed'),
          ...(f.more
            ? [{ type: 'PARTITIONS.RETURNED' as const, lane, indexes: membersOf(f), attempt: f.attempt }]
            : []),
        ]
      : [],
  );
}

function batchEvents(s: BatchSnapshot): BatchModelEvent[] {
  const c = s.context;
  switch (s.value) {
    case 'queued':
      return [ADMIT, CANCEL, RESUME];
    case 'processing': {
      // The first page is read right after entry or restart; nothing else happens before it lands
      // (the engine holds a pause back until then: see BatchRuntime.pause).
      if (c.loading)
        return [
          { type: 'PARTITIONS.LOADED', loaded: Math.min(c.config.total, c.loaded + c.config.pageSize) },
        ];
      return [...laneOutcomes(c), CANCEL, RESUME, PAUSE];
    }
    case 'paused': {
      return [...laneOutcomes(c), CONTINUE, CANCEL, RESUME];
    }
    case 'cancelling': {
      // Lanes answer the cancel at once, in lane order: the state is left within one send.
      const lane = c.inFlight.findIndex((f) => f !== null);
      return lane < 0 ? [] : [{ type: 'PARTITION.CANCELLED', lane, index: c.inFlight[lane]!.index }];
    }
    case 'finalizing':
      return [
        { type: FINALIZE_DONE, output: 'finalized' },
        { type: FINALIZE_ERROR, error: { name: 'Error', message: 'finalize failed', code: 'E_FINALIZE' } },
        CANCEL,
        RESUME,
      ];
    case 'completed':
    case 'partial':
    case 'failed':
    case 'cancelled':
      return [];
    default:
      throw new Error(`the batch model has no environment for state ${JSON.stringify(s.value)}`);
  }
}

export const batchModel: Model<typeof batchModelMachine> = {
  name: 'batch',
  machine: batchModelMachine,
  input: BATCH_INPUT,
  events: batchEvents as Model<typeof batchModelMachine>['events'],
  serialize: (s) => {
    const c = s.context;
    return JSON.stringify([
      s.value,
      c.succeeded,
      c.failed,
      c.inFlight.map((f) => (f ? membersOf(f) : null)),
      c.redeliver.map((r) => r.index),
      c.settledAhead,
      c.cursor,
      c.loaded,
      c.loading,
    ]);
  },
  isInternal: (e) => e.type === 'PARTITIONS.LOADED' || e.type === 'PARTITION.CANCELLED',
};

// --- partition (one lane) ------------------------------------------------------------------------

/** The lane runs a batch of this many partitions, one after the other, or the first two or all three as a group. */
export const LANE_PARTITIONS = 3;

/** One lane, 2 attempts per partition; timeouts and backoffs are on. */
export const LANE_INPUT: LaneInput = {
  lane: 0,
  maxAttempts: 2,
  backoffMs: 20,
  maxBackoffMs: 20,
  timeoutMs: 1000,
};

export const partitionModelMachine = partitionMachine.provide({
  actions: { startWork: () => {}, abortWork: () => {} },
});

type LaneSnapshot = SnapshotFrom<typeof partitionMachine>;
/** Lane events plus its delayed events (end of backoff, …), which the model sends itself. */
export type LaneModelEvent = LaneEvent | { type: `xstate.after.${string}` };

/** The event types a state of the partition machine handles, read from its definition. */
function handled(state: string): string[] {
  const node = partitionMachine.root.states[state];
  if (!node) throw new Error(`the partition machine has no state ${state}`);
  return [...node.transitions.keys()];
}

/**
 * The event that times an attempt out: `WORK.TIMEOUT` (sent by the engine's timer) when `running`
 * handles it, else `running`'s delayed transition.
 */
export const TIMEOUT_EVENT: string = handled('running').includes('WORK.TIMEOUT')
  ? 'WORK.TIMEOUT'
  : (handled('running').find((t) => t.startsWith('xstate.after.')) ?? 'WORK.TIMEOUT');
/** The event that ends a backoff: `backoff`'s delayed transition. */
export const BACKOFF_EVENT: string =
  handled('backoff').find((t) => t.startsWith('xstate.after.')) ?? 'xstate.after.backoff';

/**
 * The payloads the engine delivers for each event type the lane handles in its current state. An
 * event type the machine gains without an entry here fails path generation, naming it.
 */
function laneEvents(s: LaneSnapshot): LaneModelEvent[] {
  const state = String(s.value);
  const cur = s.context.current;
  const group = cur?.members;
  const at = cur ? { index: cur.index, attempt: cur.attempt } : { index: 0, attempt: 1 };
  // The partition after what the lane ran last (after a group, after its last member).
  const next = cur ? (group ? group.at(-1)!.index : cur.index) + 1 : 0;
  const error = (retryable: boolean) => ({
    name: 'Error',
    message: retryable ? 'failed' : 'failed for good',
    code: retryable ? 'E_RETRYABLE' : 'E_FINAL',
  });
  const ok = (index: number) => ({
    ok: true as const,
    result: { key: keyOf(index), attempt: at.attempt },
    ms: 0,
  });
  const failed = (retryable: boolean) => ({ ok: false as const, error: error(retryable), retryable, ms: 0 });
  const single = (index: number, redelivered: boolean, attempt = 1): LaneModelEvent => ({
    type: 'RUN',
    index,
    key: keyOf(index),
    attempt,
    redelivered,
  });
  const groupRun = (size: number): LaneModelEvent => ({
    type: 'RUN',
    index: 0,
    key: keyOf(0),
    attempt: 1,
    redelivered: false,
    members: Array.from({ length: size }, (_, i) => ({ index: i, key: keyOf(i) })),
  });
  const payloads = (type: string): LaneModelEvent[] => {
    if (type === TIMEOUT_EVENT)
      return [type === 'WORK.TIMEOUT' ? { type: 'WORK.TIMEOUT', ...at } : ({ type } as LaneModelEvent)];
    if (type.startsWith('xstate.after.')) return [{ type } as LaneModelEvent];
    switch (type) {
      case 'RUN': {
        // The batch gives the lane its next partitions, if any; after a cancel the batch is over.
        if (state === 'cancelled') return [];
        // First: one partition, or a group of two or of all three (item batching).
        if (!cur) return [single(0, false), groupRun(2), groupRun(3)];
        // A group that went back to the batch: its members come back one by one, at the same attempt.
        if (state === 'idle' && group) return [single(group[0]!.index, true, cur.attempt)];
        return next < LANE_PARTITIONS ? [single(next, false)] : [];
      }
      case 'WORK.DONE':
        if (group) return [];
        return [{ type: 'WORK.DONE', ...at, result: { key: cur?.key, attempt: at.attempt }, durationMs: 0 }];
      case 'WORK.ANSWERED':
        // The group's members' answers (a retried member is the last, so the lane's order holds).
        if (!group) return [];
        return [
          { type: 'WORK.ANSWERED', ...at, answers: group.map((m) => ok(m.index)), workMs: 0 },
          {
            type: 'WORK.ANSWERED',
            ...at,
            answers: group.map((m, i) => (i < group.length - 1 ? ok(m.index) : failed(true))),
            workMs: 0,
          },
          { type: 'WORK.ANSWERED', ...at, answers: group.map(() => failed(false)), workMs: 0 },
        ];
      case 'WORK.FAILED':
        // A group's task fails as a whole only when its thread dies.
        if (group)
          return [{ type: 'WORK.FAILED', ...at, error: error(true), retryable: true, durationMs: 0 }];
        return [
          { type: 'WORK.FAILED', ...at, error: error(true), retryable: true, durationMs: 0 },
          { type: 'WORK.FAILED', ...at, error: error(false), retryable: false, durationMs: 0 },
        ];
      case 'WORK.PROGRESS':
        return [{ type: 'WORK.PROGRESS', ...at, done: 1, total: 1 }];
      case 'CANCEL':
        return [{ type: 'CANCEL' }];
      case 'RETIRE':
        // The batch retires the lane once it settled the last partition (nothing left to dispatch).
        return cur && next >= LANE_PARTITIONS ? [{ type: 'RETIRE' }] : [];
      default:
        throw new Error(
          `the partition model has no payload for ${type} in state ${state}: add it to test/model/model.ts`,
        );
    }
  };
  return handled(state)
    .filter((type) => type !== '')
    .flatMap(payloads);
}

export const partitionModel: Model<typeof partitionModelMachine> = {
  name: 'partition',
  machine: partitionModelMachine,
  input: LANE_INPUT,
  events: laneEvents as Model<typeof partitionModelMachine>['events'],
  serialize: (s) => {
    const cur = s.context.current;
    const busy = s.value === 'running' || s.value === 'backoff';
    return JSON.stringify([
      s.value,
      cur?.index ?? null,
      busy || s.value === 'idle' ? cur?.attempt : null,
      cur?.members?.length ?? 1,
    ]);
  },
  isInternal: (e) => e.type === 'RUN' || e.type === 'RETIRE' || e.type === BACKOFF_EVENT,
};
