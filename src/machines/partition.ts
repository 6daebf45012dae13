import { and, assign, sendParent, setup } from 'xstate';
import { backoffDelay } from '../backoff.js';
import { type SerializedError, serializeError, TimeoutError } from '../errors.js';
import type { OutcomeRecord } from '../store/store.js';

/**
 * The partition statechart, run by a long-lived *lane* actor (docs/architecture.md, "Lanes.").
 *
 * The batch actor spawns `concurrency` lanes once (`lane-0` …). A lane takes one partition at a
 * time (`RUN`), goes through `running → succeeded | backoff → running | failed | cancelled`, reports
 * the outcome to its parent as an event and returns to `idle` for the next partition. Lanes are never
 * spawned or stopped per partition: XState copies the parent's children map on every spawn and stop,
 * which made one child per partition 6–17 × slower than raw Piscina. Once the batch has nothing
 * left to dispatch, it sends a lane that settled `RETIRE` and the lane ends in `retired`, its own
 * final state (docs/architecture.md, "Lanes.").
 *
 * The machine is pure. The work itself starts and stops through the `startWork` and `abortWork`
 * actions, which the engine provides (`machine.provide`); the work reports back to the lane with
 * `WORK.DONE` / `WORK.FAILED` events carrying the partition's `index` and `attempt`, so a late answer
 * from an earlier attempt is recognised and ignored.
 */

/** The partition a lane is working on. */
export interface LaneWork {
  index: number;
  key: string;
  attempt: number;
  redelivered: boolean;
}

export interface LaneContext {
  lane: number;
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  timeoutMs: number | undefined;
  current: LaneWork | undefined;
  /** The last attempt's result or error, reported on entering succeeded / failed. */
  result: unknown;
  error: SerializedError | undefined;
  durationMs: number;
  /** Last progress reported by the handler: done of total. */
  progress: { done: number; total?: number | undefined } | undefined;
}

export interface LaneInput {
  lane: number;
  maxAttempts: number;
  backoffMs: number;
  maxBackoffMs: number;
  timeoutMs?: number | undefined;
}

/** The outcome a lane reports to the batch actor for one partition: the journal's record, before it has a position. */
export type PartitionOutput = Omit<OutcomeRecord, 'seq' | 'finishedAt'>;

export type LaneEvent =
  | { type: 'RUN'; index: number; key: string; attempt: number; redelivered: boolean }
  | { type: 'WORK.DONE'; index: number; attempt: number; result: unknown; durationMs: number }
  | {
      type: 'WORK.FAILED';
      index: number;
      attempt: number;
      error: SerializedError;
      retryable: boolean;
      durationMs: number;
    }
  | { type: 'WORK.PROGRESS'; index: number; attempt: number; done: number; total?: number | undefined }
  | { type: 'WORK.TIMEOUT'; index: number; attempt: number }
  | { type: 'CANCEL' }
  /** From the batch: nothing is left to dispatch, this lane's work is over. */
  | { type: 'RETIRE' };

/** Events a lane sends to its parent batch actor. */
export type LaneReport =
  | { type: 'PARTITION.SETTLED'; lane: number; outcome: PartitionOutput }
  | { type: 'PARTITION.CANCELLED'; lane: number; index: number };

function isCurrent(context: LaneContext, event: LaneEvent): boolean {
  const cur = context.current;
  return (
    cur !== undefined &&
    'index' in event &&
    'attempt' in event &&
    event.index === cur.index &&
    event.attempt === cur.attempt
  );
}

function outputOf(context: LaneContext, status: 'succeeded' | 'failed'): PartitionOutput {
  const cur = context.current!;
  const out: PartitionOutput = {
    index: cur.index,
    key: cur.key,
    status,
    attempts: cur.attempt,
    durationMs: context.durationMs,
  };
  if (status === 'succeeded') out.result = context.result;
  else out.error = context.error;
  return out;
}

function settled(context: LaneContext, status: 'succeeded' | 'failed'): LaneReport {
  return { type: 'PARTITION.SETTLED', lane: context.lane, outcome: outputOf(context, status) };
}

export const partitionMachine = setup({
  types: {
    context: {} as LaneContext,
    input: {} as LaneInput,
    events: {} as LaneEvent,
  },
  actions: {
    /** Provided by the engine: start the current attempt; answer with WORK.DONE / WORK.FAILED. */
    startWork: () => {},
    /** Provided by the engine: abort the current attempt (cancel, timeout). */
    abortWork: () => {},
    /** Tell the batch actor the partition's outcome. */
    reportSucceeded: sendParent(({ context }: { context: LaneContext }) => settled(context, 'succeeded')),
    reportFailed: sendParent(({ context }: { context: LaneContext }) => settled(context, 'failed')),
    /** Take the partition of a RUN event. */
    take: assign(({ event }) =>
      event.type === 'RUN'
        ? {
            current: {
              index: event.index,
              key: event.key,
              attempt: event.attempt,
              redelivered: event.redelivered,
            },
            durationMs: 0,
            result: undefined,
            error: undefined,
            progress: undefined,
          }
        : {},
    ),
  },
  delays: {
    // Entered with the attempt number already raised: attempt 2 waits backoffMs, attempt 3 twice that.
    backoff: ({ context }) =>
      backoffDelay((context.current?.attempt ?? 2) - 1, context.backoffMs, context.maxBackoffMs),
  },
  guards: {
    isCurrent: ({ context, event }) => isCurrent(context, event),
    canRetry: ({ context }) => (context.current?.attempt ?? Number.POSITIVE_INFINITY) < context.maxAttempts,
    isRetryable: ({ event }) => event.type !== 'WORK.FAILED' || event.retryable,
  },
}).createMachine({
  id: 'partition',
  context: ({ input }) => ({
    lane: input.lane,
    maxAttempts: input.maxAttempts,
    backoffMs: input.backoffMs,
    maxBackoffMs: input.maxBackoffMs,
    timeoutMs: input.timeoutMs,
    current: undefined,
    result: undefined,
    error: undefined,
    durationMs: 0,
    progress: undefined,
  }),
  initial: 'idle',
  states: {
    // A lane at rest: before its first partition, or showing the last partition's outcome until
    // it takes the next. Resting in succeeded / failed / cancelled (instead of passing through them
    // to `idle`) saves one microstep per partition on the engine's hot path.
    idle: { on: { RUN: { target: 'running', actions: 'take' } } },
    running: {
      entry: 'startWork',
      on: {
        'WORK.DONE': {
          guard: 'isCurrent',
          target: 'succeeded',
          actions: assign(({ context, event }) => ({
            result: event.result,
            durationMs: context.durationMs + event.durationMs,
          })),
        },
        'WORK.FAILED': [
          {
            guard: and(['isCurrent', 'isRetryable', 'canRetry']),
            target: 'backoff',
            actions: assign(({ context, event }) => ({
              error: event.error,
              durationMs: context.durationMs + event.durationMs,
            })),
          },
          {
            guard: 'isCurrent',
            target: 'failed',
            actions: assign(({ context, event }) => ({
              error: event.error,
              durationMs: context.durationMs + event.durationMs,
            })),
          },
        ],
        'WORK.PROGRESS': {
          guard: 'isCurrent',
          actions: assign(({ event }) => ({ progress: { done: event.done, total: event.total } })),
        },
        // The engine's `startWork` arms the timer (only for jobs with `timeoutMs`) and sends this event:
        // no XState delayed event to re-arm after a restore (statelyai/xstate#4860), and a model
        // test can time a partition out by sending it.
        'WORK.TIMEOUT': [
          {
            guard: and(['isCurrent', 'canRetry']),
            target: 'backoff',
            actions: ['abortWork', assign(({ context }) => timedOut(context))],
          },
          {
            guard: 'isCurrent',
            target: 'failed',
            actions: ['abortWork', assign(({ context }) => timedOut(context))],
          },
        ],
        CANCEL: { target: 'cancelled', actions: 'abortWork' },
      },
    },
    backoff: {
      entry: assign(({ context }) => ({
        current: { ...context.current!, attempt: context.current!.attempt + 1 },
      })),
      after: { backoff: 'running' },
      on: { CANCEL: 'cancelled' },
    },
    succeeded: {
      entry: 'reportSucceeded',
      on: { RUN: { target: 'running', actions: 'take' }, RETIRE: 'retired' },
    },
    failed: { entry: 'reportFailed', on: { RUN: { target: 'running', actions: 'take' }, RETIRE: 'retired' } },
    cancelled: {
      entry: sendParent(({ context }) => ({
        type: 'PARTITION.CANCELLED',
        lane: context.lane,
        index: context.current!.index,
      })),
      // No RUN: a lane is cancelled only with its batch, which dispatches nothing afterwards.
    },
    // The batch has nothing left to dispatch: the lane stops now, while other lanes still run,
    // rather than with every other lane when the batch reaches its final state (stop-lanes.ts).
    retired: { type: 'final' },
  },
});

function timedOut(context: LaneContext): Partial<LaneContext> {
  const ms = context.timeoutMs ?? 0;
  return { error: serializeError(new TimeoutError(ms)), durationMs: context.durationMs + ms };
}
