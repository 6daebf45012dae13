import { describe, expect, it } from 'vitest';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { z } from 'zod';
import { defineJob } from '../src/index.js';
import { fixture, inlineNoopJob, noopJob, startEngine } from './helpers.js';

// A worker job's batch gets at most four lanes per pool thread (src/runtime/work.ts,
// LANES_PER_THREAD): a thread runs one task at a time, and more tasks only waited in the pool's
// queue, holding memory (docs/benchmarks.md, "A worker job's lanes"). Its lanes are counted here as
// the inspector sees them: the actors `lane-0…` of the batch's system.

function lanesSeen(events: InspectionEvent[], batchId: string): number {
  const root = events.find(
    (e) => e.type === '@xstate.actor' && (e.actorRef as AnyActorRef).id === batchId,
  )?.rootId;
  const ids = new Set<string>();
  for (const e of events) {
    const id = (e.actorRef as AnyActorRef).id;
    if (e.type === '@xstate.actor' && e.rootId === root && id.startsWith('lane-')) ids.add(id);
  }
  return ids.size;
}

const inline = inlineNoopJob(64, 'inline');

const wide = defineJob({
  name: 'wide',
  input: z.object({ n: z.number() }),
  partition: ({ n }) => Array.from({ length: n }, (_, i) => ({ key: `p${i}`, payload: i })),
  worker: fixture('noop.mjs'),
  concurrency: 256,
});

describe("a worker job's lanes", () => {
  it('are at most four per pool thread, whatever its concurrency; an inline job keeps its concurrency', async () => {
    const events: InspectionEvent[] = [];
    const engine = await startEngine({
      jobs: [noopJob(64), inline],
      workers: { maxThreads: 1 },
      inspect: (e) => events.push(e),
    });
    const worker = await engine.submit('noop', { n: 100 });
    const onHost = await engine.submit('inline', { n: 100 });
    const [w, h] = await Promise.all([engine.wait(worker.id), engine.wait(onHost.id)]);
    expect([w.status, w.succeeded, h.status, h.succeeded]).toEqual(['COMPLETED', 100, 'COMPLETED', 100]);
    expect(lanesSeen(events, worker.id)).toBe(4);
    expect(lanesSeen(events, onHost.id)).toBe(64);
  });

  it('follow a concurrency below the limit, and the threads the pool has', async () => {
    const events: InspectionEvent[] = [];
    const engine = await startEngine({
      jobs: [noopJob(3), wide],
      workers: { maxThreads: 2 },
      inspect: (e) => events.push(e),
    });
    const narrow = await engine.submit('noop', { n: 50 });
    const broad = await engine.submit('wide', { n: 50 });
    await Promise.all([engine.wait(narrow.id), engine.wait(broad.id)]);
    expect(lanesSeen(events, narrow.id)).toBe(3);
    expect(lanesSeen(events, broad.id)).toBe(8);
  });
});
