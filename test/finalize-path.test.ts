import { describe, expect, it } from 'vitest';
import type { InspectionEvent } from 'xstate';
import { type BatchStatus, createEngine, defineJob, memoryStore } from '../src/index.js';

/**
 * FINALIZING of a batch whose job has no finalizer and no triggers (src/runtime/wiring.ts): the
 * `finalize` actor answers without a promise or an AbortController, and the batch still goes
 * through FINALIZING to its final status, as subscribers and the inspector see it.
 */
async function run(finalize?: () => unknown) {
  const job = defineJob({
    name: 'one',
    partition: (n: number) => [{ key: 'only', payload: n }],
    handler: (n: number) => n,
    ...(finalize ? { finalize } : {}),
  });
  const finalizeSnapshots: string[] = [];
  const inspect = (e: InspectionEvent) => {
    if (e.type === '@xstate.snapshot' && (e.actorRef as { id?: string }).id === 'finalize')
      finalizeSnapshots.push((e.snapshot as { status: string }).status);
  };
  const engine = createEngine({ jobs: [job], store: memoryStore(), logger: false, inspect });
  await engine.start();
  // Every AbortController made while the batch runs (a lane's, and a promise actor's).
  const Original = globalThis.AbortController;
  let controllers = 0;
  globalThis.AbortController = class extends Original {
    constructor() {
      super();
      controllers++;
    }
  };
  try {
    // Subscribed before its submit: every status it goes through is heard.
    const statuses: BatchStatus[] = [];
    const off = engine.subscribe('b', (s) => {
      if (statuses.at(-1) !== s.status) statuses.push(s.status);
    });
    await engine.submit('one', 7, { id: 'b' });
    const summary = await engine.wait('b');
    off();
    return { summary, statuses, finalizeSnapshots, controllers };
  } finally {
    globalThis.AbortController = Original;
    await engine.stop();
  }
}

describe('finalizing', () => {
  it('without a finalizer: no promise actor is made, and the batch still passes FINALIZING', async () => {
    const { summary, statuses, finalizeSnapshots, controllers } = await run();
    const withFinalizer = await run(() => 'finalized');
    // The promise actor's AbortController is the one difference.
    expect(controllers).toBe(withFinalizer.controllers - 1);
    expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: 1 });
    expect(summary.output).toBeUndefined();
    expect(statuses).toEqual(['QUEUED', 'PROCESSING', 'FINALIZING', 'COMPLETED']);
    expect(finalizeSnapshots).toEqual(['active', 'done']);
  });

  it('with a finalizer: it runs as a promise, and its return is the output', async () => {
    let calls = 0;
    const { summary, statuses, finalizeSnapshots } = await run(() => {
      calls++;
      return 'finalized';
    });
    expect(calls).toBe(1);
    expect(summary).toMatchObject({ status: 'COMPLETED', output: 'finalized' });
    expect(statuses).toEqual(['QUEUED', 'PROCESSING', 'FINALIZING', 'COMPLETED']);
    expect(finalizeSnapshots).toEqual(['active', 'done']);
  });
});
