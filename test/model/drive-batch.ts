import { isDeepStrictEqual } from 'node:util';
import type { SnapshotFrom } from 'xstate';
import { statusOf } from '../../src/machines/batch.js';
import { isFinalStatus } from '../../src/summary.js';
import {
  BATCH_INPUT,
  type BatchModelEvent,
  batchModel,
  FINALIZE_DONE,
  FINALIZE_ERROR,
  keyOf,
} from './model.js';
import { label, type ModelPath } from './paths.js';
import { type LaneView, Rig, type StoreKind, type SummaryView, viewOf } from './rig.js';

type BatchModel = typeof batchModel.machine;
type BatchSnapshot = SnapshotFrom<BatchModel>;

/** What the engine's summary must show when the batch machine is in `s`. */
export function expectedSummary(s: BatchSnapshot): SummaryView {
  const c = s.context;
  const status = statusOf(s.value);
  const final = isFinalStatus(status);
  return {
    status,
    total: c.config.total,
    succeeded: c.succeeded,
    failed: c.failed,
    running: c.running,
    pending: c.config.total - c.succeeded - c.failed - c.running,
    failures: c.failures.map((f) => f.key),
    ...(final ? { output: c.output } : {}),
    ...(final && c.error ? { error: { message: c.error.message, code: c.error.code } } : {}),
  };
}

/** What each lane must show in `s`: running its partition's attempt, or not busy (at rest). */
function expectedLanes(s: BatchSnapshot): (LaneView | 'at rest')[] | undefined {
  if (s.value !== 'processing' && s.value !== 'paused' && s.value !== 'finalizing') return undefined;
  return s.context.inFlight.map((f) =>
    f ? { value: 'running', index: f.index, attempt: f.attempt } : 'at rest',
  );
}

const atRest = (lane: LaneView | undefined) =>
  lane === undefined || (lane.value !== 'running' && lane.value !== 'backoff');

/** No internal event is due: the engine stays in this state until the test acts. */
const isQuiescent = (s: BatchSnapshot) => batchModel.events(s).every((e) => !batchModel.isInternal(e));

async function perform(rig: Rig, event: BatchModelEvent): Promise<void> {
  switch (event.type) {
    case 'ADMIT':
      return rig.openGate();
    case 'CANCEL':
      return rig.cancel(event.reason);
    case 'RESUME':
      return rig.restart();
    case 'PAUSE':
      return rig.pause();
    case 'CONTINUE':
      return rig.resume();
    case 'PARTITIONS.SETTLED': {
      // A group's members run one after the other in its task: each is told how to end in turn.
      for (const { key, attempts, status } of event.outcomes)
        await rig.command(key, attempts, status === 'succeeded' ? 'succeed' : 'fail-final');
      return;
    }
    case 'PARTITIONS.RETURNED':
      // The group's thread dies while its first member runs.
      return rig.command(keyOf(event.indexes[0]!), event.attempt, 'crash');
    case FINALIZE_DONE:
      return rig.finalize('done');
    case FINALIZE_ERROR:
      return rig.finalize('fail');
    case 'PARTITIONS.LOADED':
    case 'PARTITION.CANCELLED':
      return; // the engine does these by itself
    default:
      throw new Error(`the batch driver cannot cause ${(event as { type: string }).type}`);
  }
}

/** After a step that leaves the engine at rest: lanes, worker threads and `engine.get` agree with the model. */
async function checkAtRest(rig: Rig, s: BatchSnapshot, what: string): Promise<void> {
  const lanes = expectedLanes(s);
  if (lanes) {
    await rig.until(
      `lanes ${JSON.stringify(lanes)} ${what}`,
      () =>
        lanes.every((want, i) =>
          want === 'at rest' ? atRest(rig.latestLane(i)) : isDeepStrictEqual(rig.latestLane(i), want),
        ) || undefined,
    );
  }
  if (s.value === 'processing' || s.value === 'paused')
    for (const f of s.context.inFlight) if (f) await rig.started(keyOf(f.index), f.attempt);
  const want = JSON.parse(JSON.stringify(expectedSummary(s))) as SummaryView;
  const got = viewOf(await rig.engine.get(rig.batchId));
  if (!isDeepStrictEqual(got, want))
    throw new Error(`engine.get ${what}: ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  if (isFinalStatus(s.context.outcome ?? 'QUEUED')) {
    const recount = await rig.engine.recount(rig.batchId);
    const counts = { total: want.total, succeeded: want.succeeded, failed: want.failed };
    if (!isDeepStrictEqual(recount, counts))
      throw new Error(`recount ${JSON.stringify(recount)}, expected ${JSON.stringify(counts)}`);
  }
}

/**
 * Drive the real engine through a batch path: a batch of 3 partitions, 2 lanes, 2 attempts, gated
 * so that it is seen QUEUED. After every step the engine's summaries must show the model's state;
 * at rest, its lanes and worker threads must too.
 */
export async function driveBatchPath(path: ModelPath<BatchModel>, kind: StoreKind): Promise<void> {
  const rig = new Rig(kind, {
    total: BATCH_INPUT.total,
    concurrency: BATCH_INPUT.concurrency,
    attempts: BATCH_INPUT.maxAttempts,
    backoffMs: BATCH_INPUT.backoffMs,
    batching: BATCH_INPUT.batching ? { maxItems: BATCH_INPUT.batching.maxItems } : false,
    finalize: true,
    gate: true,
  });
  try {
    await rig.start();
    await rig.submit();
    await rig.expectSummary(expectedSummary(path.initial), 'after submit');
    for (const [i, step] of path.steps.entries()) {
      const what = `after step ${i + 1} (${label(step.event)})`;
      await perform(rig, step.event);
      await rig.expectSummary(expectedSummary(step.state), what);
      if (isQuiescent(step.state)) await checkAtRest(rig, step.state, what);
    }
  } finally {
    await rig.close();
  }
}
