import { BroadcastChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, defineJob, type Engine, sqliteStore } from '../src/index.js';
import { sqlitePath } from './support/stores.js';
import { deferred, untilSummary } from './support/until.js';

// A batch's `progress` counts what its running partitions said of themselves with ctx.progress
// (docs/guide.md, "Watching batches"): a batch of a few long partitions no longer stands still
// until one of them ends.

const engines: Engine[] = [];
afterEach(async () => {
  for (const e of engines.splice(0)) await e.stop();
});

const start = async (engine: Engine) => {
  engines.push(engine);
  await engine.start();
  return engine;
};

describe("a batch's progress counts its running partitions' ctx.progress", () => {
  it('inline: settled partitions plus the fractions the running ones reported, then 1 at the end', async () => {
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const report = new Map<string, (done: unknown, total?: unknown) => void>();
    const reported = new Map(keys.map((key) => [key, deferred()]));
    const gates = new Map(keys.map((key) => [key, deferred()]));
    const job = defineJob({
      name: 'long',
      partition: (list: string[]) => list.map((key) => ({ key, payload: key })),
      handler: async (key: string, ctx) => {
        report.set(key, (done, total) => ctx.progress(done as number, total as number));
        reported.get(key)!.resolve();
        await gates.get(key)!.promise;
        return key;
      },
      concurrency: 5,
      batching: false,
    });
    const engine = await start(
      createEngine({ jobs: [job], store: sqliteStore({ path: sqlitePath() }), logger: false }),
    );
    const { id } = await engine.submit('long', keys);
    for (const p of reported.values()) await p.promise;
    expect((await engine.get(id)).progress).toBe(0);

    gates.get('a')!.resolve();
    await untilSummary(engine, id, (s) => s.succeeded === 1);
    report.get('b')!(1, 4); // a quarter of b
    report.get('c')!(3, 4);
    const heard = await untilSummary(engine, id, (s) => s.progress > 0.2);
    expect(heard.progress).toBe((1 + 0.25 + 0.75) / 5);
    expect((await engine.get(id)).progress).toBe(0.4);

    // a has answered: what its handler reports now counts for nothing (a timer it left behind).
    report.get('a')!(1, 1);
    // No total; after that, within 100 ms and not the last, dropped: neither counts.
    report.get('d')!(5);
    report.get('d')!(1, 2);
    // Past its total: counts as done, never more than the partition.
    report.get('e')!(9, 4);
    await untilSummary(engine, id, (s) => s.progress > 0.4);
    expect((await engine.get(id)).progress).toBe((1 + 0.25 + 0.75 + 1) / 5);

    // A partition that answers leaves the fraction it reported for its settled count.
    gates.get('c')!.resolve();
    await untilSummary(engine, id, (s) => s.succeeded === 2);
    expect((await engine.get(id)).progress).toBe((2 + 0.25 + 1) / 5);

    for (const key of ['b', 'd', 'e']) gates.get(key)!.resolve();
    expect(await engine.wait(id)).toMatchObject({ status: 'COMPLETED', progress: 1 });
  });

  it('on a worker thread: a failed attempt does not take progress back, and the stored summary counts settled partitions only', async () => {
    const channelName = `progress-${process.pid}-${Date.now()}`;
    const channel = new BroadcastChannel(channelName);
    const messages: Array<{ type: string; key: string; attempt: number }> = [];
    const waiters = new Set<() => void>();
    channel.onmessage = (event) => {
      messages.push((event as MessageEvent).data);
      for (const w of [...waiters]) w();
    };
    const until = (type: string, attempt: number) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (!messages.some((m) => m.type === type && m.attempt === attempt)) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      });
    const command = (attempt: number, action: string, extra: object = {}) =>
      channel.postMessage({ type: 'command', key: 'only', attempt, action, ...extra });
    try {
      const path = sqlitePath();
      const job = defineJob({
        name: 'controlled',
        worker: new URL('./fixtures/workers/controlled.mjs', import.meta.url),
        partition: () => [{ key: 'only', payload: { channel: channelName } }],
        retry: { attempts: 2, backoffMs: 1 },
        batching: false,
      });
      const engine = await start(
        createEngine({
          jobs: [job],
          store: sqliteStore({ path }),
          logger: false,
          workers: { maxThreads: 1 },
        }),
      );
      const { id } = await engine.submit('controlled', {});
      await until('started', 1);
      command(1, 'progress', { done: 2, total: 5 });
      expect((await untilSummary(engine, id, (s) => s.progress > 0)).progress).toBe(0.4);

      // Another engine reads the stored summary: what has settled, not what runs.
      const reader = await start(createEngine({ jobs: [job], store: sqliteStore({ path }), logger: false }));
      expect((await reader.get(id)).progress).toBe(0);
      await reader.stop();

      // The attempt fails: its 2/5 no longer counts, but the batch's progress does not go back.
      command(1, 'fail');
      await until('started', 2);
      expect((await engine.get(id)).progress).toBe(0.4);
      command(2, 'progress', { done: 4, total: 5 });
      expect((await untilSummary(engine, id, (s) => s.progress > 0.4)).progress).toBe(0.8);
      command(2, 'succeed');
      expect(await engine.wait(id)).toMatchObject({ status: 'COMPLETED', progress: 1 });
    } finally {
      channel.close();
    }
  });
});
