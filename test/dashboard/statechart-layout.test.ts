import { describe, expect, it } from 'vitest';
// @ts-expect-error: the dashboard's client code is plain JavaScript, shipped as is.
import { columns } from '../../src/ui/client/statechart.js';

// The dashboard draws the batch statechart in columns by longest path from the initial state. A
// cycle (processing ⇄ paused) once pushed its states one column further per round: a drawing 20
// columns wide, unreadable (the screenshot showed it).

const state = (key: string, final = false) => ({
  key,
  status: key.toUpperCase(),
  final,
  entry: [],
  invoke: [],
});
const go = (source: string, target: string, event = 'E') => ({ source, target, event, actions: [] });

describe('statechart layout', () => {
  it('a cycle does not widen the drawing: arrows back are left out of the columns', () => {
    const chart = {
      id: 'batch',
      initial: 'queued',
      states: [
        state('queued'),
        state('processing'),
        state('paused'),
        state('finalizing'),
        state('completed', true),
        state('cancelled', true),
      ],
      transitions: [
        go('queued', 'processing'),
        go('processing', 'paused', 'PAUSE'),
        go('paused', 'processing', 'CONTINUE'),
        go('processing', 'finalizing'),
        go('paused', 'finalizing'),
        go('finalizing', 'completed'),
        go('queued', 'cancelled'),
        go('processing', 'processing', 'PARTITIONS.SETTLED'),
      ],
    };
    const col: Map<string, number> = columns(chart);
    expect(Object.fromEntries(col)).toEqual({
      queued: 0,
      processing: 1,
      paused: 2,
      finalizing: 2,
      completed: 3,
      cancelled: 3,
    });
  });
});
