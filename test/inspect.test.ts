import { createWebSocketInspector } from '@statelyai/inspect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { type BatchSummary, createEngine, defineJob, type Engine, memoryStore } from '../src/index.js';

/**
 * What the Stately inspector receives (docs/inspector.md), checked offline: the engine's `inspect`
 * option gets every actor (@xstate.actor), each snapshot (@xstate.snapshot) and each event
 * between them (@xstate.event) of a batch and its lanes.
 */

const job = defineJob({
  name: 'inspected',
  partition: () => [
    { key: 'a', payload: { mode: 'ok' } },
    { key: 'b', payload: { mode: 'fail' } },
    { key: 'c', payload: { mode: 'ok' } },
  ],
  worker: new URL('./fixtures/workers/scripted.mjs', import.meta.url),
  concurrency: 2,
  finalize: () => 'finalized',
});

const events: InspectionEvent[] = [];
let engine: Engine;
let summary: BatchSummary;

beforeAll(async () => {
  engine = createEngine({
    jobs: [job],
    store: memoryStore(),
    logger: false,
    workers: { maxThreads: 2 },
    inspect: (e) => events.push(e),
  });
  await engine.start();
  const batch = await engine.submit('inspected', {}, { id: 'inspected-1' });
  summary = await engine.wait(batch.id);
});

afterAll(async () => {
  await engine?.stop();
});

const idOf = (ref: unknown) => (ref as AnyActorRef | undefined)?.id;
const parentId = (ref: unknown) => (ref as { _parent?: { id: string } })._parent?.id;
const root = () => events.find((e) => e.type === '@xstate.actor' && idOf(e.actorRef) === 'inspected-1')!;
const ofType = <T extends InspectionEvent['type']>(type: T) =>
  events.filter(
    (e): e is Extract<InspectionEvent, { type: T }> => e.type === type && e.rootId === root().rootId,
  );
const values = (id: string) =>
  ofType('@xstate.snapshot')
    .filter((e) => idOf(e.actorRef) === id)
    .map((e) => (e.snapshot as unknown as { value: unknown }).value);
const dedupe = (xs: unknown[]) => xs.filter((x, i) => i === 0 || x !== xs[i - 1]);

describe('inspection events of a batch', () => {
  it('reports the batch actor and its lanes as actors of one system (finalizing makes no actor)', () => {
    expect(summary.status).toBe('PARTIAL');
    const actors = ofType('@xstate.actor').map((e) => ({
      id: idOf(e.actorRef),
      parent: parentId(e.actorRef),
    }));
    expect(actors).toEqual(
      expect.arrayContaining([
        { id: 'inspected-1', parent: undefined },
        { id: 'lane-0', parent: 'inspected-1' },
        { id: 'lane-1', parent: 'inspected-1' },
      ]),
    );
    expect(actors).toHaveLength(3);
  });

  it('reports the batch statechart snapshot by snapshot: queued, processing, finalizing, partial', () => {
    expect(dedupe(values('inspected-1'))).toEqual(['queued', 'processing', 'finalizing', 'partial']);
    const last = ofType('@xstate.snapshot')
      .filter((e) => idOf(e.actorRef) === 'inspected-1')
      .at(-1)!;
    expect((last.snapshot as unknown as { context: object }).context).toMatchObject({
      config: { total: 3 },
      succeeded: 2,
      failed: 1,
      running: 0,
    });
  });

  it('reports each lane running the partition statechart, one partition after another', () => {
    const lanes = [...values('lane-0'), ...values('lane-1')];
    expect(lanes.filter((v) => v === 'running').length).toBe(3);
    for (const lane of ['lane-0', 'lane-1']) expect(dedupe(values(lane))[0]).toBe('idle');
  });

  it('reports the events between them: ADMIT to the batch, RUN and WORK.* to lanes, PARTITIONS.SETTLED from lanes', () => {
    const sent = ofType('@xstate.event').map((e) => ({
      type: e.event.type,
      to: idOf(e.actorRef) ?? '',
      from: idOf(e.sourceRef),
    }));
    expect(sent).toContainEqual({ type: 'ADMIT', to: 'inspected-1', from: undefined });
    expect(sent.filter((e) => e.type === 'RUN' && e.to.startsWith('lane-'))).toHaveLength(3);
    expect(sent.filter((e) => e.type === 'WORK.DONE')).toHaveLength(2);
    expect(sent.filter((e) => e.type === 'WORK.FAILED')).toHaveLength(1);
    const settled = sent.filter((e) => e.type === 'PARTITIONS.SETTLED');
    expect(settled).toHaveLength(3);
    for (const e of settled)
      expect(e).toMatchObject({ to: 'inspected-1', from: expect.stringMatching(/^lane-[01]$/) });
    expect(sent).toContainEqual({ type: 'FINALIZED', to: 'inspected-1', from: undefined });
  });
});

describe('the Stately inspector as the `inspect` option', () => {
  // The documented option is `inspector.inspect`, an XState observer ({ next, … }).
  it('createEngine accepts inspector.inspect as given', () => {
    const inspector = createWebSocketInspector({ url: 'ws://localhost:1', autoStart: false });
    expect(() =>
      createEngine({ jobs: [job], store: memoryStore(), logger: false, inspect: inspector.inspect as never }),
    ).not.toThrow();
  });
});
