import { type AnyActorRef, fromPromise } from 'xstate';
import { type BatchMachine, batchMachine, type FinalizeInput } from '../machines/batch.js';
import { type PartitionOutput, partitionMachine } from '../machines/partition.js';
import type { Dispatch, LaneWork } from './lanes.js';

/** The side effects of one batch, as its runtime carries them out (batch-runtime.ts). */
export interface BatchEffects {
  startWork(lane: number, work: LaneWork, self: AnyActorRef): void;
  abortWork(lane: number): void;
  dispatch(lane: AnyActorRef | undefined, p: Dispatch): void;
  loadPartitions(from: number, count: number): void;
  journalOutcomes(outcomes: readonly PartitionOutput[], seq: number): void;
  finalize(input: FinalizeInput, signal: AbortSignal): Promise<{ output: unknown }>;
  /** Does finalizing this batch do anything (a finalizer, or triggers)? When not, `finalize` is never called. */
  readonly finalizes: boolean;
}

/** Each batch actor's system (shared by its lanes) → the effects of that batch. */
const effects = new WeakMap<object, BatchEffects>();

/** Route the effects of the actor tree of `system` (a batch actor's) to `impl`. */
export function bindEffects(system: object, impl: BatchEffects): void {
  effects.set(system, impl);
}

const of = (system: object): BatchEffects => effects.get(system)!;

const lane = partitionMachine.provide({
  actions: {
    startWork: ({ context, self, system }) => of(system).startWork(context.lane, context.current!, self),
    abortWork: ({ context, system }) => of(system).abortWork(context.lane),
  },
});

const finalizer = fromPromise<{ output: unknown }, FinalizeInput>(({ input, signal, system }) =>
  of(system).finalize(input, signal),
);

/**
 * The `finalize` actor. For a batch whose job has no finalizer and no triggers it answers what a
 * promise of nothing would, one microtask later, without the promise and the AbortController that a
 * promise actor costs per batch (docs/benchmarks.md, "Many batches"). Not sooner: the step that
 * entered FINALIZING may have sent the last lane its RETIRE, which the lane handles first, as it did
 * with the promise (a done event within the same step would stop the lane before it retires).
 */
const finalize: typeof finalizer = {
  ...finalizer,
  start: (state, scope) => {
    if (of(scope.system).finalizes) return finalizer.start!(state, scope);
    if (state.status !== 'active') return;
    const { self } = scope;
    queueMicrotask(() => {
      if (self.getSnapshot().status === 'active')
        self.send({ type: 'xstate.promise.resolve', data: { output: undefined } } as never);
    });
  },
};

/**
 * The batch machine with its effects provided, once for every batch of every engine: `provide()`
 * builds a new machine (its whole state-node tree), which per batch cost more than the batch itself
 * when batches are small (docs/benchmarks.md, "Many batches"). The implementations find the batch
 * they act for through the actor system, which a batch actor shares with its lanes.
 */
export const wiredBatchMachine = batchMachine.provide({
  actors: {
    lane,
    finalize,
  },
  actions: {
    // Through the system, not self.getSnapshot().children: lanes spawned in this same transition
    // (RESUME) are registered in the system already but not yet in the snapshot.
    dispatchPartition: ({ system }, p) => of(system).dispatch(system.get(`lane-${p.lane}`), p),
    loadPartitions: ({ system }, p) => of(system).loadPartitions(p.from, p.count),
    journalOutcomes: ({ system }, { outcomes, seq }) => of(system).journalOutcomes(outcomes, seq),
  },
}) as BatchMachine;
