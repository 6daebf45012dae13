import { afterEach, describe, expect, it } from 'vitest';
import type { InspectionEvent } from 'xstate';
import { type AnyJobDefinition, createEngine, defineJob, type Engine, memoryStore } from '../src/index.js';
import { collect } from './helpers.js';
import { untilSummary } from './support/until.js';

/**
 * Item batching's failure paths, on real worker threads and inline: a group whose task dies or
 * times out loses no member, and only the guilty partition fails; a cancel mid-group ends the batch.
 */

const scripted = new URL('./fixtures/workers/scripted.mjs', import.meta.url);
let engine: Engine | undefined;
afterEach(async () => {
  await engine?.stop();
  engine = undefined;
});

/** Partitions 0..n-1 in 'ctx' mode (they return their ctx), one of them in `guilty` mode. */
function partitions(n: number, guilty: number, mode: string) {
  return Array.from({ length: n }, (_, i) => ({
    key: `k${i}`,
    payload: { mode: i === guilty ? mode : 'ctx' },
  }));
}

/** Start an engine on `job`, recording the size of every group a lane is given. */
async function start(job: AnyJobDefinition) {
  const groups: number[] = [];
  const inspect = (ev: InspectionEvent) => {
    if (ev.type !== '@xstate.event' || ev.event.type !== 'RUN') return;
    groups.push((ev.event as { members?: unknown[] }).members?.length ?? 1);
  };
  engine = createEngine({
    jobs: [job],
    store: memoryStore(),
    logger: false,
    workers: { maxThreads: 2 },
    inspect,
  });
  await engine.start();
  return { engine, groups };
}

describe('item batching: a group that fails as a whole', () => {
  it('a hung member in a group of 50 times out alone; the other 49 succeed, redelivered at attempt 1', async () => {
    const job = defineJob({
      name: 'hung-member',
      partition: () => partitions(50, 17, 'busy'),
      worker: scripted,
      concurrency: 1,
      timeoutMs: 1500,
      batching: { maxItems: 50 },
    });
    const { engine, groups } = await start(job);
    const { id } = await engine.submit('hung-member', {});
    const summary = await engine.wait(id);
    expect(groups[0]).toBe(50);
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 49, failed: 1 });
    expect(summary.failures).toEqual([expect.objectContaining({ key: 'k17', attempts: 1 })]);
    expect(summary.failures[0]!.error.code).toBe('TIMEOUT');
    const parts = await collect(engine.partitions(id));
    for (const p of parts.filter((p) => p.status === 'succeeded')) {
      const ctx = (p.result as { ctx: { attempt: number; redelivered: boolean; key: string } }).ctx;
      // Each member its own partition: its key and idempotency key, its attempt.
      expect(ctx).toMatchObject({
        attempt: 1,
        redelivered: true,
        key: p.key,
        idempotencyKey: `${id}:${p.key}`,
      });
      expect(p.attempts).toBe(1);
    }
  });

  it('a member that kills its thread fails alone (WORKER_CRASHED); the others succeed', async () => {
    const job = defineJob({
      name: 'crashing-member',
      partition: () => partitions(30, 4, 'exit'),
      worker: scripted,
      concurrency: 1,
      retry: { attempts: 2, backoffMs: 1 },
      batching: { maxItems: 30 },
    });
    const { engine, groups } = await start(job);
    const { id } = await engine.submit('crashing-member', {});
    const summary = await engine.wait(id);
    expect(groups[0]).toBe(30);
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 29, failed: 1 });
    // Alone, it used its two attempts; the group's death cost nobody an attempt.
    expect(summary.failures).toEqual([expect.objectContaining({ key: 'k4', attempts: 2 })]);
    expect(summary.failures[0]!.error.code).toBe('WORKER_CRASHED');
  });

  it('inline: a hung member times out alone', async () => {
    const job = defineJob({
      name: 'inline-hung',
      partition: () => Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: (i: number, ctx) =>
        i === 7 ? new Promise<never>(() => {}) : { i, attempt: ctx.attempt, redelivered: ctx.redelivered },
      concurrency: 1,
      timeoutMs: 300,
      batching: { maxItems: 20 },
    });
    const { engine, groups } = await start(job);
    const { id } = await engine.submit('inline-hung', {});
    const summary = await engine.wait(id);
    expect(groups[0]).toBe(20);
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 19, failed: 1 });
    expect(summary.failures[0]).toMatchObject({ key: 'k7', attempts: 1 });
  });

  it('a cancel mid-group ends the batch CANCELLED and frees the thread', async () => {
    const job = defineJob({
      name: 'cancel-group',
      partition: () => partitions(40, 3, 'hang'),
      worker: scripted,
      concurrency: 1,
      batching: { maxItems: 40 },
    });
    const { engine, groups } = await start(job);
    const { id } = await engine.submit('cancel-group', {});
    await untilSummary(engine, id, (s) => s.running === 40);
    const cancelled = await engine.cancel(id, 'enough');
    expect(groups).toEqual([40]);
    expect(cancelled).toMatchObject({
      status: 'CANCELLED',
      succeeded: 0,
      failed: 0,
      running: 0,
      pending: 40,
    });
    // The thread the group held is free again: another batch runs.
    const again = defineJob({
      name: 'after',
      partition: () => [{ key: 'a', payload: { mode: 'ok' } }],
      worker: scripted,
    });
    await engine.stop();
    const next = createEngine({
      jobs: [again],
      store: memoryStore(),
      logger: false,
      workers: { maxThreads: 1 },
    });
    await next.start();
    try {
      const b = await next.submit('after', {});
      expect((await next.wait(b.id)).status).toBe('COMPLETED');
    } finally {
      await next.stop();
    }
  });
});

describe('item batching: every lane gets a group', () => {
  it('four lanes, groups of up to 8: each lane gets a group at once (running counts partitions, not lanes)', async () => {
    const job = defineJob({
      name: 'four-lanes',
      partition: () =>
        Array.from({ length: 32 }, (_, i) => ({ key: `k${i}`, payload: { mode: 'sleep', ms: 20 } })),
      worker: scripted,
      concurrency: 4,
      batching: { maxItems: 8 },
    });
    const { engine, groups } = await start(job);
    const { id } = await engine.submit('four-lanes', {});
    let most = 0;
    engine.subscribe(id, (s) => {
      most = Math.max(most, s.running);
    });
    expect(await engine.wait(id)).toMatchObject({ status: 'COMPLETED', succeeded: 32 });
    // The last groups share what is left between the pool's 2 threads: 8 left, so the fourth has 4.
    expect(groups.slice(0, 4)).toEqual([8, 8, 8, 4]);
    expect(most).toBe(28);
  });
});

describe("item batching: what 'auto' aims at", () => {
  it("a worker job's groups aim at 10 ms of work, an inline handler's at 2 (it holds the host's event loop)", async () => {
    const targets = new Map<string, unknown>();
    engine = createEngine({
      jobs: [
        defineJob({ name: 'on-pool', partition: () => partitions(2, -1, 'ctx'), worker: scripted }),
        defineJob({ name: 'inline', partition: () => [{ key: 'a', payload: 1 }], handler: (x) => x }),
      ],
      store: memoryStore(),
      logger: false,
      workers: { maxThreads: 1 },
      inspect: (ev) => {
        if (ev.type !== '@xstate.snapshot') return;
        // The batch actors' snapshots (a lane's context has no config).
        const config = (
          ev.snapshot as { context?: { config?: { job?: string; batching?: { targetMs?: number } } } }
        ).context?.config;
        if (config?.job && !targets.has(config.job)) targets.set(config.job, config.batching?.targetMs);
      },
    });
    await engine.start();
    for (const job of ['on-pool', 'inline']) {
      const { id } = await engine.submit(job, {});
      expect((await engine.wait(id)).status).toBe('COMPLETED');
    }
    expect(Object.fromEntries(targets)).toEqual({ 'on-pool': 10, inline: 2 });
  });
});

describe('item batching: the option', () => {
  const base = { name: 'opt', partition: () => [], handler: () => 1 };
  it("defaults to 'auto' (up to 64 members), and `false` or { maxItems: 1 } turn it off", () => {
    expect(defineJob(base).batching).toEqual({ maxItems: 64, auto: true });
    expect(defineJob({ ...base, batching: false }).batching).toBeUndefined();
    expect(defineJob({ ...base, batching: { maxItems: 1 } }).batching).toBeUndefined();
    expect(defineJob({ ...base, batching: { maxItems: 8 } }).batching).toEqual({ maxItems: 8, auto: false });
  });

  it('refuses a bad setting with VALIDATION naming `batching`, and fixed groups with a rate limit', () => {
    for (const batching of ['yes', { maxItems: 0 }, { maxItems: 10_001 }, { maxItems: 2, extra: 1 }, true])
      expect(() => defineJob({ ...base, batching } as never)).toThrow(
        expect.objectContaining({ code: 'VALIDATION', message: expect.stringContaining('batching') }),
      );
    const limited = { ...base, rateLimit: { max: 1, perMs: 10 } };
    expect(() => defineJob({ ...limited, batching: { maxItems: 4 } })).toThrow(/rateLimit/);
    // Under 'auto' a rate-limited job is simply not grouped: its limit counts starts.
    expect(defineJob(limited).batching).toBeUndefined();
  });
});
