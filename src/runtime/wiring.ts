import type { AnyActorRef } from 'xstate';
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
  /** Finalize the batch, then send it FINALIZED or FINALIZE.FAILED (finalization.ts). */
  startFinalize(input: FinalizeInput): void;
  /** The finalization under way, if any, is abandoned: its signal aborts and its answer is dropped. */
  stopFinalize(): void;
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

/**
 * The batch machine with its effects provided, once for every batch of every engine: `provide()`
 * builds a new machine (its whole state-node tree), which per batch cost more than the batch itself
 * when batches are small (docs/benchmarks.md, "Many batches"). The implementations find the batch
 * they act for through the actor system, which a batch actor shares with its lanes.
 */
export const wiredBatchMachine = batchMachine.provide({
  actors: {
    lane,
  },
  actions: {
    // Through the system, not self.getSnapshot().children: lanes spawned in this same transition
    // (RESUME) are registered in the system already but not yet in the snapshot.
    dispatchPartition: ({ system }, p) => of(system).dispatch(system.get(`lane-${p.lane}`), p),
    loadPartitions: ({ system }, p) => of(system).loadPartitions(p.from, p.count),
    journalOutcomes: ({ system }, { outcomes, seq }) => of(system).journalOutcomes(outcomes, seq),
    startFinalize: ({ system }, input) => of(system).startFinalize(input),
    stopFinalize: ({ system }) => of(system).stopFinalize(),
  },
}) as BatchMachine;
