import { describe, expect, it } from 'vitest';
import { type AnyStateMachine, createMachine } from 'xstate';
import { partitionMachine } from '../../src/machines/partition.js';
import { coverageLine, coverageOf, uncovered } from './coverage.js';
import { batchModel, partitionModel } from './model.js';
import { generatePaths } from './paths.js';

/**
 * The paths the engine tests drive (batch-paths.*, partition-paths.*) must reach every state and
 * take every transition the machines define. A state or transition added without a way for the
 * engine to reach it fails here.
 */

const batch = coverageOf('batch', batchModel.machine, generatePaths(batchModel) as never);
const partition = coverageOf('partition', partitionModel.machine, generatePaths(partitionModel) as never);
console.log(coverageLine(batch));
console.log(coverageLine(partition));

describe('model coverage', () => {
  it('partition: every state and every transition', () => {
    expect(uncovered(partition)).toEqual({ states: [], transitions: [] });
    expect(partition.states.all).toHaveLength(9);
  });

  it('batch: every state and every transition', () => {
    expect(uncovered(batch)).toEqual({ states: [], transitions: [] });
    expect(batch.states.all).toHaveLength(10);
  });

  it('counts from the definition: a state or transition added without a path is uncovered', () => {
    const config = partitionMachine.config as { states: Record<string, { on?: object }> };
    const running = config.states.running!;
    const extended = createMachine(
      {
        ...(config as object),
        states: {
          ...config.states,
          running: { ...running, on: { ...running.on, PAUSE: 'paused' } },
          paused: { on: { CANCEL: 'cancelled' } },
        },
      } as never,
      partitionMachine.implementations as never,
    ) as AnyStateMachine;
    const paths = generatePaths({ ...partitionModel, machine: extended } as never);
    expect(uncovered(coverageOf('partition', extended, paths as never))).toEqual({
      states: ['partition.paused'],
      transitions: ['partition.paused#CANCEL#0', 'partition.running#PAUSE#0'],
    });
  });
});
