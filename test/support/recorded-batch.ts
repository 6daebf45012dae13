import { createActor, type Snapshot } from 'xstate';
import { type BatchInput, batchMachine, type ReplayedOutcome } from '../../src/machines/batch.js';
import { partitionMachine } from '../../src/machines/partition.js';

/** What the batch machine asked the engine to run: its `dispatchPartition` params. */
export interface Dispatched {
  lane: number;
  index: number;
  attempt: number;
  redelivered: boolean;
  more?: number[] | undefined;
}

export interface RecordedBatchOptions {
  /** Start from this stored snapshot rather than fresh. */
  snapshot?: Snapshot<unknown> | undefined;
  /**
   * Answer FINALIZED as the engine does when there is nothing to finalize (batch-runtime.ts);
   * otherwise the batch stays in FINALIZING.
   */
  finalize?: boolean;
}

/**
 * The batch machine with the engine's side effects recorded or left out: no pool, no store. Lanes
 * are real partition machines without work; `dispatched` lists every `dispatchPartition`, and a
 * test plays the engine by sending the lanes their `RUN` and answers.
 */
export function recordedBatch(input: BatchInput, options: RecordedBatchOptions = {}) {
  const dispatched: Dispatched[] = [];
  const machine = batchMachine.provide({
    actors: {
      lane: partitionMachine.provide({ actions: { startWork: () => {}, abortWork: () => {} } }),
    },
    actions: {
      startFinalize: options.finalize
        ? ({ self }) => queueMicrotask(() => self.send({ type: 'FINALIZED', output: undefined }))
        : () => {},
      dispatchPartition: (_, p) => dispatched.push(p),
      loadPartitions: () => {},
      journalOutcomes: () => {},
    },
  });
  const actor = createActor(machine, {
    input,
    ...(options.snapshot ? { snapshot: options.snapshot } : {}),
  }).start();
  return { actor, dispatched };
}

/** A batch's input with everything but its size and lanes at the plainest setting. */
export const plainInput = (
  total: number,
  concurrency: number,
  over: Partial<BatchInput> = {},
): BatchInput => ({
  batchId: 'b',
  job: 'j',
  total,
  concurrency,
  maxAttempts: 1,
  backoffMs: 0,
  maxBackoffMs: 0,
  ...over,
});

/** A journaled success of partition `index`, as recovery replays it. */
export const succeeded = (index: number): ReplayedOutcome => ({
  index,
  key: `k${index}`,
  status: 'succeeded',
  attempts: 1,
});
