import { and, assign, enqueueActions, sendParent, setup } from 'xstate';
import { backoffDelay } from '../backoff.js';
import { type SerializedError, serializeError, TimeoutError } from '../errors.js';
import type { OutcomeRecord } from '../store/store.js';

/**
 * The partition statechart, run by a long-lived *lane* actor (docs/architecture.md, "Lanes.").
 *
 * The batch actor spawns `concurrency` lanes once (`lane-0` …; the engine gives a worker job's batch
 * at most four per pool thread). A lane takes one partition at a
 * time (`RUN`), goes through `running → succeeded | backoff → running | failed | cancelled`, reports
 * the outcome to its parent as an event and returns to `idle` for the next partition. Lanes are never
 * spawned or stopped per partition: XState copies the parent's children map on every spawn and stop,
 * which made one child per partition 6–17 × slower than raw Piscina. Once the batch has nothing
 * left to dispatch, it sends a lane that settled `RETIRE` and the lane ends in `retired`, its own
 * final state (docs/architecture.md, "Lanes.").
 *
 * A lane may carry a *group* of consecutive partitions instead (item batching, docs/architecture.md
 * "Item batching"): `RUN` lists the members, one task runs them all and answers `WORK.ANSWERED`
 * with one answer per member; the lane reports the settled members in one `PARTITIONS.SETTLED`,
 * keeps those to retry (after `backoff`, at the next attempt) and rests in `settled` once every
 * member has its outcome. A group whose task fails as a whole (`WORK.FAILED`: its thread died;
 * `WORK.TIMEOUT`) is handed back (`PARTITIONS.RETURNED`) for its members to run one by one.
 *
 * The machine is pure. The work itself starts and stops through the `startWork` and `abortWork`
 * actions, which the engine provides (`machine.provide`); the work reports back to the lane with
 * `WORK.DONE` / `WORK.FAILED` events carrying the partition's `index` and `attempt`, so a late answer
 * from an earlier attempt is recognised and ignored.
 */

/** A member of a group (item batching): one partition, and the time its earlier attempts took. */
export interface Member {
  index: number;
  key: string;
  /** Milliseconds its earlier attempts in this group ran. */
  spentMs: number;
}

/**
 * The partition a lane is working on, or the group of partitions (item batching, docs/guide.md
 * "Item batching"): `index` and `key` are then the group's first member, `members` lists them all
 * (two or more). Every member of a group is at the same attempt.
 */
export interface LaneWork {
  index: number;
  key: string;
  attempt: number;
  redelivered: boolean;
  members?: Member[] | undefined;
}

/** One member's answer in a group's answer, in member order. `ms`: how long it ran. */
export type MemberAnswer =
  | { ok: true; result: unknown; ms: number }
  | { ok: false; error: SerializedError; retryable: boolean; ms: number };

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
  /** A group's outcomes still to report to the batch (on entering `settled`, or before a backoff). */
  report: PartitionOutput[];
  /** How long the last task's work ran where it ran (the batch sizes its groups from it). */
  workMs: number | undefined;
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
  | {
      type: 'RUN';
      index: number;
      key: string;
      attempt: number;
      redelivered: boolean;
      /** A group: every member, the first included (two or more). */
      members?: { index: number; key: string }[] | undefined;
    }
  | {
      type: 'WORK.DONE';
      index: number;
      attempt: number;
      result: unknown;
      durationMs: number;
      workMs?: number | undefined;
    }
  /**
   * For a single partition: its attempt failed. For a group: the task failed as a whole (its thread
   * died, its module did not load): no member has an outcome, and they go back to the batch.
   */
  | {
      type: 'WORK.FAILED';
      index: number;
      attempt: number;
      error: SerializedError;
      retryable: boolean;
      durationMs: number;
      workMs?: number | undefined;
    }
  /** A group's answer: one per member, in member order. */
  | { type: 'WORK.ANSWERED'; index: number; attempt: number; answers: MemberAnswer[]; workMs: number }
  | { type: 'WORK.PROGRESS'; index: number; attempt: number; done: number; total?: number | undefined }
  | { type: 'WORK.TIMEOUT'; index: number; attempt: number }
  | { type: 'CANCEL' }
  /** From the batch: nothing is left to dispatch, this lane's work is over. */
  | { type: 'RETIRE' };

/** Events a lane sends to its parent batch actor. */
export type LaneReport =
  /** Outcomes: one partition's, or a group's (all of them, or those that will not be retried). */
  | { type: 'PARTITIONS.SETTLED'; lane: number; outcomes: PartitionOutput[]; workMs?: number | undefined }
  /**
   * A group's task failed as a whole (timeout, its thread died): its members, none settled, go back
   * to the batch to run one per task at the same attempt (`redelivered` set).
   */
  | { type: 'PARTITIONS.RETURNED'; lane: number; indexes: number[]; attempt: number }
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
  return {
    type: 'PARTITIONS.SETTLED',
    lane: context.lane,
    outcomes: [outputOf(context, status)],
    workMs: context.workMs,
  };
}

const isGroup = (context: LaneContext) => context.current?.members !== undefined;

/** Will this member's failure be retried (retryable, attempts left)? */
const retried = (context: LaneContext, a: MemberAnswer) =>
  !a.ok && a.retryable && context.current!.attempt < context.maxAttempts;

/**
 * One member's outcome, built as a literal with outputOf's key order: every outcome the batch actor
 * counts and the store writes has one hidden class (a spread of a shared base made a second one, and
 * cost the throughput bench ~20 %: 84d3730 → f1ae80b, 2026-11-30).
 */
function memberOutput(
  m: Member,
  attempts: number,
  durationMs: number,
  status: 'succeeded' | 'failed',
  result: unknown,
  error: SerializedError | undefined,
): PartitionOutput {
  const out: PartitionOutput = { index: m.index, key: m.key, status, attempts, durationMs };
  if (status === 'succeeded') out.result = result;
  else out.error = error;
  return out;
}

/**
 * A group's answer, split (pure): the outcomes to report now, and the members to run again (those
 * whose retryable failure has attempts left), as the lane's next work (a group, or one partition).
 */
function splitAnswers(context: LaneContext, answers: MemberAnswer[]): Partial<LaneContext> {
  const cur = context.current!;
  const members = cur.members!;
  const report: PartitionOutput[] = [];
  const again: Member[] = [];
  let lastError: SerializedError | undefined;
  for (let i = 0; i < members.length; i++) {
    const m = members[i]!;
    const a = answers[i];
    const spent = m.spentMs + (a?.ms ?? 0);
    if (!a) {
      // A runner that answered too few members: a bug, reported as a failure, never lost.
      const error = { name: 'Error', message: 'no answer for this member of the group' };
      report.push(memberOutput(m, cur.attempt, spent, 'failed', undefined, error));
    } else if (a.ok) report.push(memberOutput(m, cur.attempt, spent, 'succeeded', a.result, undefined));
    else if (retried(context, a)) {
      again.push({ index: m.index, key: m.key, spentMs: spent });
      lastError = a.error;
    } else report.push(memberOutput(m, cur.attempt, spent, 'failed', undefined, a.error));
  }
  const first = again[0];
  const next: LaneWork | undefined = first && {
    index: first.index,
    key: first.key,
    attempt: cur.attempt,
    redelivered: cur.redelivered,
    ...(again.length > 1 ? { members: again } : {}),
  };
  return {
    report,
    ...(next ? { current: next, error: lastError, durationMs: again.length === 1 ? first!.spentMs : 0 } : {}),
  };
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
    /** Tell the batch actor a group's outcomes (all, or those not retried). */
    reportGroup: sendParent(({ context }: { context: LaneContext }) => ({
      type: 'PARTITIONS.SETTLED' as const,
      lane: context.lane,
      outcomes: context.report,
      workMs: context.workMs,
    })),
    /** A group's task failed as a whole: its members go back to the batch, none settled. */
    returnGroup: sendParent(({ context }: { context: LaneContext }) => ({
      type: 'PARTITIONS.RETURNED' as const,
      lane: context.lane,
      indexes: context.current!.members!.map((m) => m.index),
      attempt: context.current!.attempt,
    })),
    /** A group's answer: the outcomes to report, the members to run again (splitAnswers). */
    takeAnswers: assign(({ context, event }) =>
      event.type === 'WORK.ANSWERED' ? { ...splitAnswers(context, event.answers), workMs: event.workMs } : {},
    ),
    /** Take the partition of a RUN event. */
    take: assign(({ event }) =>
      event.type === 'RUN'
        ? {
            current: {
              index: event.index,
              key: event.key,
              attempt: event.attempt,
              redelivered: event.redelivered,
              ...(event.members && event.members.length > 1
                ? { members: event.members.map((m) => ({ index: m.index, key: m.key, spentMs: 0 })) }
                : {}),
            },
            durationMs: 0,
            result: undefined,
            error: undefined,
            progress: undefined,
            report: [],
            workMs: undefined,
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
    isGroup: ({ context }) => isGroup(context),
    /** Some member of the group's answer is retried. */
    someRetried: ({ context, event }) =>
      event.type === 'WORK.ANSWERED' && event.answers.some((a) => retried(context, a)),
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
    report: [],
    workMs: undefined,
  }),
  initial: 'idle',
  states: {
    // A lane at rest: before its first partition, or showing the last partition's outcome until
    // it takes the next. Resting in succeeded / failed / cancelled (instead of passing through them
    // to `idle`) saves one microstep per partition on the engine's hot path.
    // Also where a lane waits after its group went back to the batch (PARTITIONS.RETURNED).
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
            workMs: event.workMs,
          })),
        },
        // A group's answer: the members that settled are reported; those retried run again, as a
        // group (or alone), after the backoff.
        'WORK.ANSWERED': [
          {
            guard: and(['isCurrent', 'someRetried']),
            target: 'backoff',
            actions: [
              'takeAnswers',
              enqueueActions(({ context, enqueue }) => {
                if (context.report.length > 0) enqueue('reportGroup');
              }),
            ],
          },
          { guard: 'isCurrent', target: 'settled', actions: 'takeAnswers' },
        ],
        'WORK.FAILED': [
          // A group whose task failed as a whole: no member has an outcome; each runs again alone.
          { guard: and(['isCurrent', 'isGroup']), target: 'idle', actions: 'returnGroup' },
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
            // Its work time sizes the next groups as a success's does: a batch whose first
            // partitions all fail still grows its groups.
            actions: assign(({ context, event }) => ({
              error: event.error,
              durationMs: context.durationMs + event.durationMs,
              workMs: event.workMs,
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
          // A group bounded by `timeoutMs` as a whole: its thread is stopped and each member runs
          // again alone with its own timeout, so only a member that hangs times out.
          { guard: and(['isCurrent', 'isGroup']), target: 'idle', actions: ['abortWork', 'returnGroup'] },
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
    // A group's members all have their outcome (each succeeded or failed), reported on entry.
    settled: {
      entry: 'reportGroup',
      on: { RUN: { target: 'running', actions: 'take' }, RETIRE: 'retired' },
    },
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
