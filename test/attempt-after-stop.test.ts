import { BroadcastChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, sqliteStore } from '../src/index.js';
import { collect } from './helpers.js';
import { sqlitePath } from './support/stores.js';
import { deferred } from './support/until.js';

// A graceful stop interrupts a partition in its second attempt (a retry the lane started itself):
// after the restart it runs again at attempt 3, one higher than the interrupted one, and its stored
// attempts say 3 (docs/guide.md, `ctx.attempt`; docs/guarantees.md, "A graceful stop"). The batch
// context holds the attempt it dispatched (1); the stored state now holds the one the lane started.
// It used to re-run as attempt 2 again: with `maxAttempts` 2, a third run past the limit.

describe('the attempt after a graceful stop', () => {
  it.each([
    ['one partition per task', false as const, 1],
    ['a group', { maxItems: 2 }, 2],
  ])('a retry interrupted by stop() runs again one attempt higher (%s)', async (_name, batching, n) => {
    const path = sqlitePath();
    const seen: string[] = [];
    const secondStarted = deferred();
    let restarted = false;
    const job = defineJob({
      name: 'retried',
      partition: (count: number) => Array.from({ length: count }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: (i: number, ctx) => {
        seen.push(`k${i}#${ctx.attempt}${ctx.redelivered ? ' redelivered' : ''}`);
        if (ctx.attempt === 1) return Promise.reject(new Error('the first attempt fails'));
        if (ctx.attempt === 2 && !restarted) {
          secondStarted.resolve();
          // Until stop() aborts it.
          return new Promise<number>((_, reject) =>
            ctx.signal.addEventListener('abort', () => reject(new Error('stopped'))),
          );
        }
        return Promise.resolve(i);
      },
      retry: { attempts: 5, backoffMs: 1 },
      concurrency: 1,
      batching,
    });
    const first = createEngine({ jobs: [job], store: sqliteStore({ path }), logger: false });
    await first.start();
    await first.submit('retried', n, { id: 'b' });
    await secondStarted.promise;
    await first.stop();
    expect(seen.filter((s) => s.startsWith('k0'))).toEqual(['k0#1', 'k0#2']);

    seen.length = 0;
    restarted = true;
    const second = createEngine({ jobs: [job], store: sqliteStore({ path }), logger: false });
    await second.start();
    try {
      expect(await second.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: n });
      // Every member of a group is at the group's attempt: k1's second attempt had not begun.
      expect(seen).toEqual(Array.from({ length: n }, (_, i) => `k${i}#3 redelivered`));
      const stored = await collect(second.partitions('b'));
      expect(stored.map((p) => [p.key, p.attempts])).toEqual(
        Array.from({ length: n }, (_, i) => [`k${i}`, 3]),
      );
    } finally {
      await second.stop();
    }
  });
  it('a partition handed to a lane that had not begun when the engine stopped runs again at the same attempt', async () => {
    // Outside probe: k1 and k2, waiting for the rate limit when stop() came, ran after the restart
    // at attempt 2; at their last attempt then, a retryable error was final after one run.
    const path = sqlitePath();
    const seen: string[] = [];
    const k0Started = deferred();
    let restarted = false;
    // The second engine has no rate limit: what was waiting for it runs at once.
    const job = (limited: boolean) =>
      defineJob({
        name: 'limited',
        partition: (count: number) => Array.from({ length: count }, (_, i) => ({ key: `k${i}`, payload: i })),
        handler: (i: number, ctx) => {
          seen.push(`k${i}#${ctx.attempt}`);
          if (!restarted) {
            k0Started.resolve();
            return new Promise<number>((_, reject) =>
              ctx.signal.addEventListener('abort', () => reject(new Error('stopped'))),
            );
          }
          return Promise.resolve(i);
        },
        concurrency: 3,
        retry: { attempts: 2, backoffMs: 1 },
        ...(limited ? { rateLimit: { max: 1, perMs: 60_000 } } : {}),
      });
    const first = createEngine({ jobs: [job(true)], store: sqliteStore({ path }), logger: false });
    await first.start();
    await first.submit('limited', 3, { id: 'b' });
    await k0Started.promise;
    await first.stop();
    expect(seen).toEqual(['k0#1']);

    seen.length = 0;
    restarted = true;
    const second = createEngine({ jobs: [job(false)], store: sqliteStore({ path }), logger: false });
    await second.start();
    try {
      expect(await second.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 3 });
      expect([...seen].sort()).toEqual(['k0#2', 'k1#1', 'k2#1']);
    } finally {
      await second.stop();
    }
  });

  it("a worker job's groups that waited for a thread when the engine stopped run again at the same attempt", async () => {
    // One thread, three lanes of groups of two: the first group runs (k0 waits until stop()), the
    // other two wait for the thread. A group's start is reported (a job without `timeoutMs` is not
    // told of a single partition's), so only the first group's attempt counts as begun.
    const path = sqlitePath();
    const channel = `attempt-after-stop-${process.pid}-${Date.now()}`;
    const listen = new BroadcastChannel(channel);
    const k0Started = deferred();
    listen.onmessage = (e) => {
      if ((e as MessageEvent).data?.type === 'started' && (e as MessageEvent).data.key === 'k0')
        k0Started.resolve();
    };
    const job = (worker: string) =>
      defineJob({
        name: 'queued',
        partition: (count: number) =>
          Array.from({ length: count }, (_, i) => ({ key: `k${i}`, payload: { channel } })),
        worker: new URL(`./fixtures/workers/${worker}`, import.meta.url),
        concurrency: 3,
        retry: { attempts: 3, backoffMs: 1 },
        batching: { maxItems: 2 },
      });
    const first = createEngine({
      jobs: [job('controlled.mjs')],
      store: sqliteStore({ path }),
      logger: false,
      workers: { maxThreads: 1 },
    });
    await first.start();
    try {
      await first.submit('queued', 6, { id: 'b' });
      await k0Started.promise;
    } finally {
      await first.stop();
      listen.close();
    }
    const second = createEngine({ jobs: [job('noop.mjs')], store: sqliteStore({ path }), logger: false });
    await second.start();
    try {
      expect(await second.wait('b')).toMatchObject({ status: 'COMPLETED', succeeded: 6 });
      const stored = await collect(second.partitions('b'));
      // Before: every group at attempt 2, a retry spent by k2–k5, which never ran.
      expect(stored.map((p) => [p.key, p.attempts])).toEqual([
        ['k0', 2],
        ['k1', 2],
        ['k2', 1],
        ['k3', 1],
        ['k4', 1],
        ['k5', 1],
      ]);
    } finally {
      await second.stop();
    }
  });
});
