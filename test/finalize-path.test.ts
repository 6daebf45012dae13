import { describe, expect, it, vi } from 'vitest';
import type { InspectionEvent } from 'xstate';
import {
  type BatchState,
  type BatchStatus,
  createEngine,
  defineJob,
  type Engine,
  memoryStore,
  type Store,
  sqliteStore,
} from '../src/index.js';
import { sqlitePath } from './support/stores.js';

/**
 * FINALIZING (src/runtime/finalization.ts, `startFinalize`): no actor is made for it; the engine
 * finalizes and answers FINALIZED. For a batch whose job has no finalizer and no triggers that
 * answer comes without a promise or an AbortController, and the batch still goes through
 * FINALIZING to its final status, as subscribers and the inspector see it.
 */
async function run(finalize?: () => unknown) {
  const job = defineJob({
    name: 'one',
    partition: (n: number) => [{ key: 'only', payload: n }],
    handler: (n: number) => n,
    ...(finalize ? { finalize } : {}),
  });
  // The batch actor's states, the events it was sent, and every actor made for it.
  const values: string[] = [];
  const events: string[] = [];
  const actors: string[] = [];
  const inspect = (e: InspectionEvent) => {
    const id = (e.actorRef as { id?: string }).id;
    if (e.type === '@xstate.actor') actors.push(String(id));
    if (id !== 'b') return;
    const value =
      e.type === '@xstate.snapshot' && String((e.snapshot as unknown as { value: unknown }).value);
    if (value && values.at(-1) !== value) values.push(value);
    if (e.type === '@xstate.event') events.push(e.event.type);
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
    return { summary, statuses, values, events, actors, controllers };
  } finally {
    globalThis.AbortController = Original;
    await engine.stop();
  }
}

describe('finalizing', () => {
  it('without a finalizer: no actor and no AbortController, and the batch still passes FINALIZING', async () => {
    const { summary, statuses, values, events, actors, controllers } = await run();
    const withFinalizer = await run(() => 'finalized');
    // The finalizer's signal is the one difference.
    expect(controllers).toBe(withFinalizer.controllers - 1);
    expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: 1 });
    expect(summary.output).toBeUndefined();
    expect(statuses).toEqual(['QUEUED', 'PROCESSING', 'FINALIZING', 'COMPLETED']);
    expect(values).toEqual(['queued', 'processing', 'finalizing', 'completed']);
    // The batch and its one lane: nothing else is made, and one event ends FINALIZING.
    expect(actors).toEqual(['b', 'lane-0']);
    expect(events.filter((t) => t.startsWith('FINALIZE'))).toEqual(['FINALIZED']);
  });

  it('with a finalizer: it runs once, and its return is the output', async () => {
    let calls = 0;
    const { summary, statuses, values, actors } = await run(() => {
      calls++;
      return 'finalized';
    });
    expect(calls).toBe(1);
    expect(summary).toMatchObject({ status: 'COMPLETED', output: 'finalized' });
    expect(statuses).toEqual(['QUEUED', 'PROCESSING', 'FINALIZING', 'COMPLETED']);
    expect(values).toEqual(['queued', 'processing', 'finalizing', 'completed']);
    expect(actors).toEqual(['b', 'lane-0']);
  });

  it('a failing finalizer: FINALIZE.FAILED ends the batch FAILED with its error', async () => {
    const { summary, events } = await run(() => {
      throw Object.assign(new Error('no report'), { code: 'E_REPORT' });
    });
    expect(summary).toMatchObject({
      status: 'FAILED',
      succeeded: 1,
      error: { message: 'no report', code: 'E_REPORT' },
    });
    expect(events.filter((t) => t.startsWith('FINALIZE'))).toEqual(['FINALIZE.FAILED']);
  });

  it.each([
    ['cancel', (engine: Engine) => engine.cancel('b', 'enough')],
    ['stop', (engine: Engine) => engine.stop()],
  ])('%s during the finalizer aborts its signal, and its late answer is dropped', async (how, leave) => {
    let release: (() => void) | undefined;
    let signal: AbortSignal | undefined;
    const job = defineJob({
      name: 'slow-end',
      partition: (n: number) => [{ key: 'only', payload: n }],
      handler: (n: number) => n,
      retry: { attempts: 1 },
      finalize: (_summary, ctx) => {
        if (signal) return 'again'; // the next start's run
        signal = ctx.signal;
        // Answers only when the test says so: after the state was left.
        return new Promise((resolve) => {
          release = () => resolve('late');
        });
      },
    });
    const store = memoryStore();
    const engine = createEngine({ jobs: [job], store, logger: false });
    await engine.start();
    try {
      const finalizing = new Promise<void>((resolve) => {
        engine.subscribe('b', (s) => {
          if (s.status === 'FINALIZING') resolve();
        });
      });
      await engine.submit('slow-end', 1, { id: 'b' });
      await finalizing;
      await vi.waitFor(() => expect(release).toBeDefined());
      expect(signal!.aborted).toBe(false);
      await leave(engine);
      expect(signal!.aborted).toBe(true);
      release!();
      await new Promise((resolve) => setImmediate(resolve));
      if (how === 'cancel') {
        const summary = await engine.wait('b');
        expect(summary.status).toBe('CANCELLED');
        expect(summary.output).toBeUndefined();
        return;
      }
      // Stopped in FINALIZING: stored so, and finalized again (once) by the next start.
      expect((await store.loadBatch('b'))?.status).toBe('FINALIZING');
      const next = createEngine({ jobs: [job], store, logger: false });
      await next.start();
      try {
        expect(await next.wait('b')).toMatchObject({ status: 'COMPLETED', output: 'again' });
      } finally {
        await next.stop();
      }
    } finally {
      await engine.stop();
    }
  });

  it.each([
    ['memory', () => memoryStore()],
    ['sqlite', () => sqliteStore({ path: sqlitePath() })],
  ])('the final state is written once (%s store), with the last outcome', async (_name, make) => {
    const inner: Store = make();
    // Every state the engine writes (by status) and every outcome, through either of a store's ways.
    const states: string[] = [];
    let outcomes = 0;
    const store = new Proxy(inner, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        if (prop === 'commit')
          return (id: string, written: readonly unknown[], state: BatchState, fence: never) => {
            states.push(state.status);
            outcomes += written.length;
            return target.commit!(id, written as never, state, fence);
          };
        if (prop === 'appendOutcomes')
          return (id: string, written: readonly unknown[], fence: never) => {
            outcomes += written.length;
            return target.appendOutcomes(id, written as never, fence);
          };
        if (prop === 'saveState')
          return (id: string, state: BatchState, fence: never) => {
            states.push(state.status);
            return target.saveState(id, state, fence);
          };
        return value.bind(target);
      },
    });
    const job = defineJob({
      name: 'one',
      partition: (n: number) => [{ key: 'only', payload: n }],
      handler: (n: number) => n,
    });
    const engine = createEngine({ jobs: [job], store, logger: false, flushDelayMs: 10_000 });
    await engine.start();
    try {
      await engine.submit('one', 1, { id: 'b' });
      expect(await engine.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 1 });
      // The journal's timer (10 s) never fired: the end's own flush wrote the outcome and the final
      // state, once (SQLite: in one commit).
      expect(states).toEqual(['COMPLETED']);
      expect(outcomes).toBe(1);
    } finally {
      await engine.stop();
    }
  });

  it.each([
    ['memory', () => memoryStore()],
    ['sqlite', () => sqliteStore({ path: sqlitePath() })],
  ])(
    'get() and list() report the final state once the store holds it, before the engine hears its write answered (%s store)',
    async (_name, make) => {
      const inner: Store = make();
      // The final state's write lands in the store; its answer is held back until the test opens.
      let stored!: () => void;
      const finalStored = new Promise<void>((r) => (stored = r));
      let open!: () => void;
      const answered = new Promise<void>((r) => (open = r));
      const held = async <T>(write: Promise<T>, status: string): Promise<T> => {
        const result = await write;
        if (status === 'CANCELLED') {
          stored();
          await answered;
        }
        return result;
      };
      let readsFail = false;
      const store = new Proxy(inner, {
        get(target, prop) {
          const value: unknown = Reflect.get(target, prop, target);
          if (typeof value !== 'function') return value;
          if (prop === 'commit')
            return (id: string, written: readonly unknown[], state: BatchState, fence: never) =>
              held(target.commit!(id, written as never, state, fence), state.status);
          if (prop === 'saveState')
            return (id: string, state: BatchState, fence: never) =>
              held(target.saveState(id, state, fence), state.status);
          if (prop === 'loadBatch' && readsFail)
            return () => Promise.reject(new Error('the store cannot read now'));
          return value.bind(target);
        },
      });
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const job = defineJob({
        name: 'held',
        partition: (n: number) => [{ key: 'only', payload: n }],
        handler: async (_n: number, ctx) => {
          await Promise.race([gate, new Promise((r) => ctx.signal.addEventListener('abort', r))]);
          return 1;
        },
      });
      const engine = createEngine({ jobs: [job], store, logger: false });
      await engine.start();
      try {
        await engine.submit('held', 1, { id: 'b' });
        const cancelled = engine.cancel('b', 'no');
        await finalStored;
        // A store that cannot read now: this engine answers from what it has heard.
        readsFail = true;
        expect((await engine.get('b')).status).toBe('FINALIZING');
        readsFail = false;
        // Another engine sharing the store could read CANCELLED there now: this one says so too.
        expect((await engine.get('b')).status).toBe('CANCELLED');
        expect((await engine.list()).map((b) => b.status)).toEqual(['CANCELLED']);
        expect((await engine.list({ status: 'CANCELLED' })).map((b) => b.id)).toEqual(['b']);
        open();
        expect(await cancelled).toMatchObject({ status: 'CANCELLED', error: { message: 'no' } });
        expect((await engine.get('b')).status).toBe('CANCELLED');
      } finally {
        open();
        release();
        await engine.stop();
      }
    },
  );
});
