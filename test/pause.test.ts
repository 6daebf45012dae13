import { describe, expect, it, vi } from 'vitest';
import type { InspectionEvent } from 'xstate';
import { type BatchSummary, createEngine, defineJob, memoryStore, sqliteStore } from '../src/index.js';
import { sqlitePath } from './support/stores.js';
import { deferred, untilSummary as until } from './support/until.js';

// engine.pause(id): nothing more is dispatched, partitions in flight finish; PAUSED is stored and
// survives a restart; engine.resume(id) takes dispatching up again.

function gatedJob() {
  const gates = new Map<number, () => void>();
  const started: number[] = [];
  const waiting = new Map<number, () => void>();
  const opened = new Set<number>();
  const job = defineJob({
    name: 'gated',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
    handler: (i: number, ctx) =>
      new Promise<number>((resolve) => {
        started.push(i);
        gates.set(i, () => resolve(i));
        // Opened before it started (its start may wait a turn of the event loop): go on at once.
        if (opened.has(i)) resolve(i);
        waiting.get(i)?.();
        ctx.signal.addEventListener('abort', () => resolve(-1));
      }),
    concurrency: 2,
    // One partition per task: the test opens each partition's gate and counts starts per partition.
    batching: false,
  });
  const open = (i: number) => {
    opened.add(i);
    gates.get(i)?.();
  };
  /** Resolves once partition `i`'s handler has started. */
  const whenStarted = (i: number) =>
    gates.has(i) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(i, resolve));
  return { job, started, open, whenStarted };
}

describe('pause and resume', () => {
  it.each([
    ['one partition per task', false as const],
    ['in groups', { maxItems: 50 }],
  ])('a retry whose backoff ends while paused waits for resume() (%s)', async (_name, batching) => {
    const attempts: string[] = [];
    let failFirst!: () => void;
    const firstRan = new Promise<void>((r) => (failFirst = r));
    const job = defineJob({
      name: 'flaky',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: async (i: number, ctx) => {
        attempts.push(`k${i}#${ctx.attempt}`);
        if (i === 0 && ctx.attempt === 1) {
          failFirst();
          throw new Error('once');
        }
        return i;
      },
      concurrency: 1,
      retry: { attempts: 2, backoffMs: 30 },
      batching,
    });
    // Each lane leaving its backoff: the moment the retry would start.
    const backoffsEnded: number[] = [];
    let backoffEnded = () => {};
    const inspect = (e: InspectionEvent) => {
      if (e.type !== '@xstate.snapshot' || !String((e.actorRef as { id?: string }).id).startsWith('lane-'))
        return;
      const value = (e.snapshot as { value?: unknown }).value;
      if (value === 'running' && (e.event as { type: string }).type.startsWith('xstate.after')) {
        backoffsEnded.push(Date.now());
        backoffEnded();
      }
    };
    const engine = createEngine({ jobs: [job], store: memoryStore(), logger: false, inspect });
    await engine.start();
    try {
      await engine.submit('flaky', 3, { id: 'b' });
      await firstRan;
      expect((await engine.pause('b')).status).toBe('PAUSED');
      if (backoffsEnded.length === 0) await new Promise<void>((r) => (backoffEnded = r));
      // Out of its backoff while paused: k0's second attempt did not start.
      await new Promise((r) => setImmediate(r));
      const k0 = () => attempts.filter((a) => a.startsWith('k0'));
      expect(k0()).toEqual(['k0#1']);
      // Its retry waits for resume(): pending, not running (a drain check on `running === 0` ends).
      const paused = await engine.get('b');
      expect(paused).toMatchObject({ status: 'PAUSED', running: 0, failed: 0 });
      expect(paused.pending).toBe(3 - paused.succeeded);
      // Its retry starts now, and may end the batch before resume() answers.
      expect(['PROCESSING', 'FINALIZING']).toContain((await engine.resume('b')).status);
      expect(await engine.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 3 });
      expect(k0()).toEqual(['k0#1', 'k0#2']);
    } finally {
      await engine.stop();
    }
  });

  it.each([
    ['throws', undefined],
    ['times out', 1_000],
  ])(
    'a partition that %s while paused and waits for its retry is pending: subscribers hear it, the store and another engine see it',
    async (_how, timeoutMs) => {
      const failing = deferred();
      const k0Started = deferred();
      const job = defineJob({
        name: 'flaky',
        partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
        handler: async (i: number, ctx) => {
          if (i === 0 && ctx.attempt === 1) {
            k0Started.resolve();
            if (timeoutMs) {
              // Answers nothing: its attempt ends by timing out (the engine aborts ctx.signal then).
              await new Promise((r) => ctx.signal.addEventListener('abort', r));
              return i;
            }
            await failing.promise;
            throw new Error('once');
          }
          return i;
        },
        concurrency: 1,
        timeoutMs,
        // Its backoff outlasts the test: the retry waits in `backoff`, never held, never run.
        retry: { attempts: 2, backoffMs: 600_000, maxBackoffMs: 600_000 },
        batching: false,
      });
      const path = sqlitePath();
      const engine = createEngine({ jobs: [job], store: sqliteStore({ path }), logger: false });
      const other = createEngine({ jobs: [job], store: sqliteStore({ path }), logger: false });
      await engine.start();
      try {
        await engine.submit('flaky', 3, { id: 'b' });
        await k0Started.promise;
        expect(await engine.pause('b')).toMatchObject({ status: 'PAUSED', running: 1, pending: 2 });
        // Subscribed while k0 runs; only a summary sent after its failure can say running 0.
        const drained = new Promise<BatchSummary>((resolve) => {
          const off = engine.subscribe('b', (s) => {
            if (s.running !== 0) return;
            queueMicrotask(() => off());
            resolve(s);
          });
        });
        failing.resolve();
        expect(await drained).toMatchObject({ status: 'PAUSED', running: 0, pending: 3, failed: 0 });
        // The stored summary too: another engine on the file reads it (a condition, polled).
        await other.start();
        await vi.waitFor(
          async () =>
            expect(await other.get('b')).toMatchObject({ status: 'PAUSED', running: 0, pending: 3 }),
          { timeout: 10_000, interval: 20 },
        );
      } finally {
        await other.stop();
        await engine.stop();
      }
    },
  );

  it('a partition whose start the yielder held back for a turn runs and drains on pause (running reaches 0)', async () => {
    // yieldAfterMs 0: every partition handed to a lane after the first waits for a turn of the
    // event loop before it starts. pause() is asked the moment k0 is counted, before k2 (already
    // k0's lane's, in the batch context) started: k2 is in flight and must finish while paused.
    // It used to start in PAUSED and be held until resume(), counted as running meanwhile.
    const g = gatedJob();
    const engine = createEngine({ jobs: [g.job], store: memoryStore(), logger: false, yieldAfterMs: 0 });
    await engine.start();
    try {
      await engine.submit('gated', 6, { id: 'b' });
      await g.whenStarted(0);
      await g.whenStarted(1);
      const paused = until(engine, 'b', (s) => s.succeeded === 1);
      const pausing = paused.then(() => engine.pause('b'));
      g.open(0);
      expect((await pausing).status).toBe('PAUSED');
      g.open(1);
      g.open(2);
      // Both lanes drain: k1 and k2 are counted, nothing else starts.
      const drained = await until(engine, 'b', (s) => s.status === 'PAUSED' && s.running === 0);
      expect(drained).toMatchObject({ succeeded: 3, running: 0, pending: 3 });
      expect([...g.started].sort()).toEqual([0, 1, 2]);
      for (let i = 3; i < 6; i++) g.open(i);
      await engine.resume('b');
      expect(await engine.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 6 });
    } finally {
      await engine.stop();
    }
  });

  it('a paused batch lets its partitions in flight finish, dispatches nothing more, and stays paused across a restart', async () => {
    const path = sqlitePath();
    const first = gatedJob();
    const a = createEngine({ jobs: [first.job], store: sqliteStore({ path }), logger: false });
    await a.start();
    const batch = await a.submit('gated', 6);
    await until(a, batch.id, (s) => s.running === 2);
    const paused = await a.pause(batch.id);
    expect(paused.status).toBe('PAUSED');
    expect(await a.pause(batch.id)).toMatchObject({ status: 'PAUSED' }); // idempotent
    first.open(0);
    first.open(1);
    await until(a, batch.id, (s) => s.succeeded === 2 && s.running === 0);
    expect(first.started).toEqual([0, 1]); // nothing more was dispatched
    expect((await a.get(batch.id)).status).toBe('PAUSED');
    await a.stop();

    // A new engine on the same file: the batch is still paused, and starts nothing.
    const second = gatedJob();
    const b = createEngine({ jobs: [second.job], store: sqliteStore({ path }), logger: false });
    await b.start();
    try {
      expect(await b.get(batch.id)).toMatchObject({ status: 'PAUSED', succeeded: 2 });
      expect(second.started).toEqual([]);
      const resumed = await b.resume(batch.id);
      expect(resumed.status).toBe('PROCESSING');
      await until(b, batch.id, (s) => s.running === 2);
      // Dispatched (running 2) is counted before a handler's first line runs: wait for both.
      await second.whenStarted(2);
      await second.whenStarted(3);
      expect([...second.started].sort()).toEqual([2, 3]);
      for (let i = 2; i < 6; i++) {
        await second.whenStarted(i);
        second.open(i);
      }
      expect(await b.wait(batch.id)).toMatchObject({ status: 'COMPLETED', succeeded: 6 });
      expect(await b.recount(batch.id)).toEqual({ total: 6, succeeded: 6, failed: 0 });
    } finally {
      await b.stop();
    }
  });

  it('a batch paused with nothing left in flight and nothing pending finishes; cancel works while paused', async () => {
    const g = gatedJob();
    const engine = createEngine({ jobs: [g.job], store: sqliteStore({ path: sqlitePath() }), logger: false });
    await engine.start();
    try {
      const one = await engine.submit('gated', 2);
      await until(engine, one.id, (s) => s.running === 2);
      await engine.pause(one.id);
      g.open(0);
      g.open(1);
      // Every partition settled while paused: nothing to wait for, so it finalizes.
      expect((await engine.wait(one.id)).status).toBe('COMPLETED');

      const two = await engine.submit('gated', 4);
      await until(engine, two.id, (s) => s.running === 2);
      await engine.pause(two.id);
      expect((await engine.cancel(two.id)).status).toBe('CANCELLED');
    } finally {
      await engine.stop();
    }
  });

  it('refuses to pause or resume a batch that is queued or final (CONFLICT), and resume of a running batch returns it', async () => {
    const g = gatedJob();
    const engine = createEngine({
      jobs: [g.job],
      store: sqliteStore({ path: sqlitePath() }),
      logger: false,
      maxConcurrentBatches: 1,
    });
    await engine.start();
    try {
      const running = await engine.submit('gated', 2);
      const queued = await engine.submit('gated', 2);
      await until(engine, running.id, (s) => s.running === 2);
      await expect(engine.pause(queued.id)).rejects.toMatchObject({ code: 'CONFLICT' });
      await expect(engine.resume(queued.id)).rejects.toMatchObject({ code: 'CONFLICT' });
      expect((await engine.resume(running.id)).status).toBe('PROCESSING');
      await expect(engine.pause('no-such-batch')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      g.open(0);
      g.open(1);
      await engine.wait(running.id);
      await expect(engine.pause(running.id)).rejects.toMatchObject({ code: 'CONFLICT' });
      await engine.cancel(queued.id);
    } finally {
      await engine.stop();
    }
  });
});
