import { describe, expect, it, vi } from 'vitest';
import type { InspectionEvent } from 'xstate';
import { createEngine, defineJob, type Engine, memoryStore, type Store, sqliteStore } from '../src/index.js';
import { sqlitePath } from './support/stores.js';

/**
 * A finalization that is abandoned (cancel or stop while FINALIZING) calls the job's finalizer no
 * more: not when it is abandoned before the outcomes were durable (the finalizer would run for a
 * batch already CANCELLED, or an engine already stopped), not between its retries. And a finalizer
 * whose output cannot be stored as JSON ends the batch FAILED (RESULT_INVALID), rather than leaving
 * it in FINALIZING with a final state that can never be written. Found by an outside probe.
 */

/** A memory store whose outcome writes wait for `release()` while held. */
function heldStore(): { store: Store; hold: () => void; release: () => void; held: () => boolean } {
  const inner = memoryStore();
  let gate: Promise<void> | undefined;
  let open: (() => void) | undefined;
  let waiting = false;
  const store = new Proxy(inner, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (prop === 'commit' || prop === 'appendOutcomes')
        return async (...args: unknown[]) => {
          if (gate) {
            waiting = true;
            await gate;
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      return value.bind(target);
    },
  });
  return {
    store,
    hold: () => {
      gate = new Promise((resolve) => {
        open = resolve;
      });
    },
    release: () => {
      gate = undefined;
      open?.();
    },
    held: () => waiting,
  };
}

/** Resolves once the batch is reported FINALIZING. */
function finalizing(engine: Engine, id: string): Promise<void> {
  return new Promise((resolve) => {
    const off = engine.subscribe(id, (s) => {
      if (s.status === 'FINALIZING') {
        off();
        resolve();
      }
    });
  });
}

/** A turn of the event loop: every microtask queued by what ran before has run. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('an abandoned finalization', () => {
  it.each(['cancel', 'stop'] as const)(
    '%s before the outcomes are durable: the finalizer is never called',
    async (how) => {
      const { store, hold, release, held } = heldStore();
      let calls = 0;
      const job = defineJob({
        name: 'report',
        partition: (n: number) => [{ key: 'only', payload: n }],
        handler: (n: number) => n,
        finalize: () => {
          calls++;
          return 'report';
        },
      });
      // The batch actor's own states: its cancel is seen before the held write is let go.
      let cancelledSeen: () => void = () => {};
      const cancelled = new Promise<void>((resolve) => {
        cancelledSeen = resolve;
      });
      const inspect = (e: InspectionEvent) => {
        if (e.type !== '@xstate.snapshot' || (e.actorRef as { id?: string }).id !== 'b') return;
        if ((e.snapshot as unknown as { value: unknown }).value === 'cancelled') cancelledSeen();
      };
      const engine = createEngine({ jobs: [job], store, logger: false, inspect });
      await engine.start();
      try {
        hold(); // the outcome's write waits: FINALIZING waits for it before calling the finalizer
        const reached = finalizing(engine, 'b');
        await engine.submit('report', 1, { id: 'b' });
        await reached;
        expect(held()).toBe(true);
        if (how === 'cancel') {
          // cancel() answers once CANCELLED is stored, which waits for the held write.
          const answered = engine.cancel('b', 'enough');
          await cancelled;
          release();
          expect((await answered).status).toBe('CANCELLED');
          expect((await engine.wait('b')).status).toBe('CANCELLED');
        } else {
          const stopped = engine.stop(); // its last flush waits for the held write
          release();
          await stopped;
        }
        await turn();
        expect(calls).toBe(0);
      } finally {
        release();
        await engine.stop();
      }
    },
  );

  it.each(['cancel', 'stop'] as const)(
    '%s between the finalizer’s retries: it is not called again',
    async (how) => {
      let calls = 0;
      let signal: AbortSignal | undefined;
      let failed: () => void = () => {};
      const firstFailure = new Promise<void>((resolve) => {
        failed = resolve;
      });
      const job = defineJob({
        name: 'upload',
        partition: (n: number) => [{ key: 'only', payload: n }],
        handler: (n: number) => n,
        // A retry would come a minute later: the test ends long before unless it is cut short.
        retry: { attempts: 3, backoffMs: 60_000, maxBackoffMs: 60_000 },
        finalize: (_summary, ctx) => {
          calls++;
          signal = ctx.signal;
          failed();
          throw Object.assign(new Error('upload refused'), { code: 'E_UPLOAD' });
        },
      });
      // The minute of the retry's backoff passes on a fake clock, after the cancel or stop.
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
      const engine = createEngine({ jobs: [job], store: memoryStore(), logger: false });
      try {
        await engine.start();
        await engine.submit('upload', 1, { id: 'b' });
        await firstFailure;
        if (how === 'cancel') expect((await engine.cancel('b', 'enough')).status).toBe('CANCELLED');
        else await engine.stop();
        expect(signal!.aborted).toBe(true);
        await vi.advanceTimersByTimeAsync(120_000);
        await turn();
        expect(calls).toBe(1);
        if (how === 'cancel') expect((await engine.wait('b')).status).toBe('CANCELLED');
      } finally {
        await engine.stop();
        vi.useRealTimers();
      }
    },
  );
});

describe('a finalizer output that cannot be stored as JSON', () => {
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  const outputs: Array<[string, unknown, RegExp]> = [
    ['a BigInt', 10n, /\(root\) is a BigInt/],
    ['a circular object', cycle, /\(root\)\.self is a circular reference/],
    ['a Map', new Map([['a', 1]]), /\(root\) is a Map, not a plain object/],
    ['a Uint8Array', new Uint8Array(2), /\(root\) is a Uint8Array, not a plain object/],
    ['NaN', Number.NaN, /\(root\) is NaN/],
    ['a function', () => 1, /\(root\) is a function/],
  ];
  it.each([
    ['memory', () => memoryStore()],
    ['sqlite', () => sqliteStore({ path: sqlitePath() })],
  ])(
    'ends the batch FAILED with RESULT_INVALID, the finalizer called once (%s store)',
    async (_name, make) => {
      const store = make();
      const calls = new Map<string, number>();
      const job = defineJob({
        name: 'odd',
        partition: (i: number) => [{ key: 'only', payload: i }],
        handler: (i: number) => i,
        retry: { attempts: 3, backoffMs: 1, maxBackoffMs: 1 },
        finalize: (_summary, ctx) => {
          calls.set(ctx.batchId, (calls.get(ctx.batchId) ?? 0) + 1);
          const [, output] = outputs[Number(ctx.batchId.slice(1))]!;
          return output;
        },
      });
      const engine = createEngine({ jobs: [job], store, logger: false });
      await engine.start();
      try {
        for (const [i, [what, , message]] of outputs.entries()) {
          await engine.submit('odd', i, { id: `b${i}` });
          const summary = await engine.wait(`b${i}`);
          expect(summary.status, what).toBe('FAILED');
          expect(summary.succeeded, what).toBe(1);
          expect(summary.error?.code, what).toBe('RESULT_INVALID');
          expect(summary.error?.message, what).toMatch(message);
          expect(summary.output, what).toBeUndefined();
          expect(calls.get(`b${i}`), what).toBe(1);
        }
      } finally {
        await engine.stop();
      }
    },
  );
});
