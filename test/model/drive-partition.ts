import type { SnapshotFrom } from 'xstate';
import { decideOutcome } from '../../src/summary.js';
import {
  BACKOFF_EVENT,
  keyOf,
  LANE_INPUT,
  LANE_PARTITIONS,
  type LaneModelEvent,
  type partitionModel,
  TIMEOUT_EVENT,
} from './model.js';
import { label, type ModelPath, type ModelStep } from './paths.js';
import { type LaneView, Rig, type StoreKind, type SummaryView } from './rig.js';

type LaneModel = typeof partitionModel.machine;
type LaneSnapshot = SnapshotFrom<LaneModel>;

const TIMEOUT: string = TIMEOUT_EVENT;
const BACKOFF: string = BACKOFF_EVENT;
/** Long enough never to fire while a test waits on something else. */
const NEVER_MS = 60_000;

function expectedLane(s: LaneSnapshot): LaneView {
  const cur = s.context.current;
  return {
    value: String(s.value),
    index: cur?.index,
    attempt: cur?.attempt,
    progress: s.context.progress?.done,
  };
}

/**
 * The summary of the engine's batch after `steps`: the outcomes the lane reached so far (read from
 * the states each step went through) decide it. Until both partitions settle, one runs.
 */
function expectedSummary(steps: ModelStep<LaneModel>[], cancelReason: string): SummaryView {
  let succeeded = 0;
  const failures: string[] = [];
  let cancelled = false;
  for (const step of steps) {
    if (step.visited.has('partition.succeeded')) succeeded++;
    if (step.visited.has('partition.failed')) failures.push(keyOf(step.state.context.current!.index));
    if (step.visited.has('partition.cancelled')) cancelled = true;
    // A group's answer: the outcomes the lane reports (all members, or those not retried).
    if (step.event.type === 'WORK.ANSWERED')
      for (const o of step.state.context.report)
        if (o.status === 'succeeded') succeeded++;
        else failures.push(o.key);
  }
  const total = LANE_PARTITIONS;
  const failed = failures.length;
  const counts = { total, succeeded, failed, failures };
  if (cancelled)
    return {
      ...counts,
      status: 'CANCELLED',
      running: 0,
      pending: total - succeeded - failed,
      error: { message: cancelReason, code: 'CANCELLED' },
    };
  if (succeeded + failed === total)
    return { ...counts, status: decideOutcome(counts), running: 0, pending: 0 };
  // In flight: the lane's group, or one partition (the next is given at once when the lane rests).
  const last = steps.at(-1)!.state;
  const busy = last.value === 'running' || last.value === 'backoff';
  const running = busy ? (last.context.current?.members?.length ?? 1) : 1;
  return { ...counts, status: 'PROCESSING', running, pending: total - succeeded - failed - running };
}

/** A path that starts with a group runs the job with groups of that size. */
function groupOf(path: ModelPath<LaneModel>): { maxItems: number } | false {
  const first = path.steps.find((s) => s.event.type === 'RUN')?.event;
  return first?.type === 'RUN' && first.members ? { maxItems: first.members.length } : false;
}

async function perform(
  rig: Rig,
  event: LaneModelEvent,
  before: LaneSnapshot,
  cancelReason: string,
): Promise<void> {
  const attempt = before.context.current?.attempt ?? 1;
  const key = keyOf(before.context.current?.index ?? 0);
  const group = before.context.current?.members;
  switch (event.type) {
    case 'WORK.DONE':
      return rig.command(key, attempt, 'succeed');
    case 'WORK.ANSWERED':
      // The group's members run one after the other in one task: each is told how to end in turn.
      for (const [i, a] of event.answers.entries())
        await rig.command(
          keyOf(group![i]!.index),
          attempt,
          a.ok ? 'succeed' : a.retryable ? 'fail' : 'fail-final',
        );
      return;
    case 'WORK.FAILED':
      if (group) return rig.command(key, attempt, 'crash'); // the group's thread dies
      return rig.command(key, attempt, event.retryable ? 'fail' : 'fail-final');
    case 'WORK.PROGRESS':
      return rig.command(key, attempt, 'progress');
    case 'CANCEL':
      return rig.cancel(cancelReason);
    case 'RUN':
    case 'RETIRE':
    case BACKOFF:
      return; // the engine dispatches, retires the lane at the end and ends a short backoff, by itself
    case TIMEOUT:
      // The attempt hangs until its timeout; a group's members then run again alone, at this attempt.
      return rig.started(key, attempt).then((m) => rig.usedUp(m));
    default:
      throw new Error(`the partition driver cannot cause ${event.type}`);
  }
}

/**
 * Drive the real engine through a lane path: a batch of two partitions on one lane, 2 attempts. A
 * path that waits out a timeout gets a 1 s timeout (others never time out); a path that cancels
 * during a backoff gets a backoff too long to end first (others back off 20 ms).
 */
export async function drivePartitionPath(path: ModelPath<LaneModel>, kind: StoreKind): Promise<void> {
  const states = [path.initial, ...path.steps.map((s) => s.state)];
  const waitsTimeout = path.steps.some((s) => s.event.type === TIMEOUT);
  const cancelsBackoff = path.steps.some(
    (s, i) => s.event.type === 'CANCEL' && states[i]!.value === 'backoff',
  );
  const cancelReason = 'model cancel';
  const rig = new Rig(kind, {
    total: LANE_PARTITIONS,
    concurrency: 1,
    attempts: LANE_INPUT.maxAttempts,
    backoffMs: cancelsBackoff ? NEVER_MS : LANE_INPUT.backoffMs,
    timeoutMs: waitsTimeout ? LANE_INPUT.timeoutMs : NEVER_MS,
    finalize: false,
    gate: false,
    batching: groupOf(path),
  });
  const deadline = (waitsTimeout ? LANE_INPUT.timeoutMs! : 0) + 5000;
  try {
    await rig.start();
    await rig.submit();
    for (const [i, step] of path.steps.entries()) {
      const what = `after step ${i + 1} (${label(step.event)})`;
      await perform(rig, step.event, states[i]!, cancelReason);
      await rig.expectLane(0, expectedLane(step.state), what, deadline);
      await rig.expectSummary(expectedSummary(path.steps.slice(0, i + 1), cancelReason), what, deadline);
      const cur = step.state.context.current;
      if (step.state.value === 'running' && cur) await rig.started(cur.key, cur.attempt);
    }
  } finally {
    await rig.close();
  }
}
