import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, type Engine, memoryStore, type Store } from '../src/index.js';
import { latch } from './helpers.js';
import { faultyStore } from './support/faulty-store.js';

/** Partitions that finish only on engine B (A's never answer until aborted). */
const job = (blockOn: Set<string>) =>
  defineJob({
    name: 'held',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
    handler: async (i: number, ctx) => {
      if (blockOn.has(ctx.batchId))
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      return i;
    },
    concurrency: 2,
    // One partition per task: partitions wait for the test one by one (a group would hold back
    // the outcomes of its finished members until its gated one ends).
    batching: false,
  });

const running = (engine: Engine, id: string) =>
  new Promise<void>((resolve) => {
    const off = engine.subscribe(id, (s) => {
      if (s.running > 0) {
        queueMicrotask(() => off());
        resolve();
      }
    });
  });

/**
 * Engine A runs a batch; its lease renewals are held (as if A were paused by SIGSTOP). Another
 * owner takes the lease over; then A's renewals go through again and find the lease gone.
 */
async function setUp() {
  const base = memoryStore();
  const faulty = faultyStore(base);
  const blocked = new Set<string>();
  const errors: Error[] = [];
  const a = createEngine({
    jobs: [job(blocked)],
    store: faulty.store,
    logger: false,
    leaseTtlMs: 150,
    ownerId: 'test-host/1/engine-a',
    onError: (err) => errors.push(err),
  });
  await a.start();
  // Blocked before it is submitted: submit() may already have started its partitions.
  blocked.add('held-1');
  const batch = await a.submit('held', 4, { id: 'held-1' });
  await running(a, batch.id);
  faulty.hold('renewLease');
  return { base, faulty, a, id: batch.id, errors, blocked };
}

/** Engine B, which takes the batch over. */
const engineB = (store: Store) =>
  createEngine({ jobs: [job(new Set())], store, logger: false, ownerId: 'test-host/2/engine-b' });

describe('a lost lease', () => {
  it('settles wait() with the final state another engine stored', async () => {
    const { base, faulty, a, id, blocked } = await setUp();
    const waiting = a.wait(id);
    // B takes the batch over (as when A's lease has expired) and finishes it.
    expect(await base.acquireLease(id, 'test-host/2/engine-b', 10_000, 'test-host/1/engine-a')).toBeDefined();
    const b = engineB(base);
    await b.start();
    expect((await b.wait(id)).status).toBe('COMPLETED');
    await b.stop();
    faulty.release('renewLease');
    const summary = await waiting;
    expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: 4 });
    expect((await a.get(id)).status).toBe('COMPLETED');
    blocked.clear();
    await a.stop();
  });

  it('rejects wait() with LEASE_LOST when the batch is not final yet, and stops A writing', async () => {
    const { base, faulty, a, id, errors } = await setUp();
    const waiting = a.wait(id);
    const subscribed: string[] = [];
    a.subscribe(id, (s) => subscribed.push(s.status));
    expect(await base.acquireLease(id, 'test-host/2/engine-b', 60_000, 'test-host/1/engine-a')).toBeDefined();
    faulty.release('renewLease');
    await expect(waiting).rejects.toMatchObject({ code: 'LEASE_LOST' });
    expect(errors.some((e) => (e as { code?: string }).code === 'LEASE_LOST')).toBe(true);
    // Listeners got the last state stored (not final: nobody finished the batch).
    expect(['QUEUED', 'PROCESSING']).toContain(subscribed.at(-1));
    await a.stop();
    expect((await base.leaseOf(id))?.owner).toBe('test-host/2/engine-b');
  });

  it('a listener on the engine that lost the lease follows the batch to its end through the store', async () => {
    const { base, faulty, a, id } = await setUp();
    const waiting = a.wait(id);
    const heard: string[] = [];
    const { promise: final, open: ended } = latch();
    a.subscribe(id, (s) => {
      heard.push(s.status);
      if (s.status === 'COMPLETED') ended();
    });
    expect(await base.acquireLease(id, 'test-host/2/engine-b', 60_000, 'test-host/1/engine-a')).toBeDefined();
    faulty.release('renewLease');
    await expect(waiting).rejects.toMatchObject({ code: 'LEASE_LOST' });
    // B runs it to its end; A's listener hears it (before: dropped in silence at the lost lease).
    const b = engineB(base);
    await b.start();
    try {
      expect((await b.wait(id)).status).toBe('COMPLETED');
      await final;
      expect(heard.at(-1)).toBe('COMPLETED');
    } finally {
      await b.stop();
      await a.stop();
    }
  });

  // A store outage longer than the lease (a database failover, a disk full): renewals fail with
  // errors, not refusals. The lease is kept: nothing more starts until a renewal answers, and the
  // store then says it is still this engine's. Before, the lease counted as lost at its time to
  // live: the batch was given up, its outcomes in memory dropped, and the same engine took it over
  // again and ran its partitions a second time (an outside probe: 3,700 re-runs after a 45 s lock).
  it('renewals failing for longer than the lease: the lease is kept, nothing is given up or run twice', async () => {
    const base = memoryStore();
    const faulty = faultyStore(base);
    const gate = latch();
    const runs = new Map<string, number>();
    const errors: Error[] = [];
    let failedRenewals = 0;
    let outageLong: () => void = () => {};
    const longEnough = new Promise<void>((resolve) => {
      outageLong = resolve;
    });
    const gated = defineJob({
      name: 'gated',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: async (i: number, ctx) => {
        runs.set(ctx.key, (runs.get(ctx.key) ?? 0) + 1);
        await gate.promise;
        return i;
      },
      concurrency: 2,
      batching: false,
    });
    const a = createEngine({
      jobs: [gated],
      store: faulty.store,
      logger: false,
      leaseTtlMs: 150,
      onError: (err) => {
        errors.push(err);
        // Heartbeats every 50 ms: ten failed renewals span more than three times the lease.
        if (err.message === 'store unreachable' && ++failedRenewals === 10) outageLong();
      },
    });
    await a.start();
    try {
      const batch = await a.submit('gated', 6, { id: 'outage' });
      await running(a, batch.id);
      faulty.failNext('renewLease', Number.MAX_SAFE_INTEGER, () => new Error('store unreachable'));
      await longEnough;
      faulty.failNext('renewLease', 0);
      gate.open();
      const final = await a.wait(batch.id);
      expect(final).toMatchObject({ status: 'COMPLETED', succeeded: 6, failed: 0 });
      expect([...runs.values()]).toEqual(Array(6).fill(1));
      expect(errors.filter((e) => (e as { code?: unknown }).code === 'LEASE_LOST')).toEqual([]);
      expect(await a.recount(batch.id)).toEqual({ total: 6, succeeded: 6, failed: 0 });
    } finally {
      gate.open();
      await a.stop();
    }
  });

  it('a renewal that fails with an error reaches onError', async () => {
    const base = memoryStore();
    const faulty = faultyStore(base);
    const blocked = new Set<string>();
    let reported: (err: Error) => void = () => {};
    const error = new Promise<Error>((resolve) => {
      reported = resolve;
    });
    const a = createEngine({
      jobs: [job(blocked)],
      store: faulty.store,
      logger: false,
      leaseTtlMs: 300,
      onError: (err) => reported(err),
    });
    await a.start();
    blocked.add('held-2');
    await a.submit('held', 2, { id: 'held-2' });
    faulty.failNext('renewLease', 1, () => new Error('connection reset'));
    expect((await error).message).toBe('connection reset');
    blocked.clear();
    await a.stop();
  });
});
