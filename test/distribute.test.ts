import { afterEach, describe, expect, it } from 'vitest';
import {
  createEngine,
  defineJob,
  type Engine,
  memoryStore,
  postgresStore,
  type Store,
  sqliteStore,
  ValidationError,
} from '../src/index.js';
import { PG_URL, pgSchema, pgUnreachable, sqlitePath } from './support/stores.js';
import { deferred } from './support/until.js';

// One batch on many hosts (docs/scaling.md): a job with `distribute` offers its partitions in ranges
// that every engine with `help` claims and runs; the owner counts each outcome once.

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});

type Ran = { engine: string; key: string; attempt: number; redelivered: boolean };

/** The same job as each engine defines it: its handler says which engine ran what. */
function spreadJob(
  engine: string,
  ran: Ran[],
  opts: {
    wait?: Promise<void>;
    hook?: (key: string, attempt: number, signal: AbortSignal) => Promise<void> | void;
    timeoutMs?: number;
    rangeSize?: number;
    attempts?: number;
  } = {},
) {
  return defineJob({
    name: 'spread',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
    handler: async (i: number, ctx) => {
      ran.push({ engine, key: ctx.key, attempt: ctx.attempt, redelivered: ctx.redelivered });
      await opts.wait;
      await opts.hook?.(ctx.key, ctx.attempt, ctx.signal);
      return i * 2;
    },
    distribute: { rangeSize: opts.rangeSize ?? 20 },
    concurrency: 6,
    retry: { attempts: opts.attempts ?? 2, backoffMs: 1 },
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  });
}

async function kinds(): Promise<Array<[string, () => () => Store]>> {
  const out: Array<[string, () => () => Store]> = [
    [
      'sqlite file',
      () => {
        const path = sqlitePath();
        return () => sqliteStore({ path });
      },
    ],
  ];
  if (!(await pgUnreachable('distribute'))) {
    out.push([
      'postgres',
      () => {
        const schema = pgSchema();
        return () => postgresStore({ connectionString: PG_URL, schema });
      },
    ]);
  }
  return out;
}

for (const [kind, shared] of await kinds()) {
  describe(`distribute on ${kind}`, () => {
    function start(
      name: string,
      job: ReturnType<typeof spreadJob>,
      store: Store,
      help: boolean | { concurrency: number } = true,
    ) {
      const engine = createEngine({
        jobs: [job],
        store,
        logger: false,
        help,
        leaseTtlMs: 2_000,
        claimIntervalMs: 100,
        ownerId: `${name}/${process.pid}`,
      });
      engines.push(engine);
      return engine;
    }

    it('runs one batch on two engines and counts every outcome once', async () => {
      const open = shared();
      const ran: Ran[] = [];
      const helped = deferred();
      // A's partitions wait until B has run one: B must have claimed a range of A's batch.
      const a = start('a', spreadJob('a', ran, { wait: helped.promise }), open());
      const b = start('b', spreadJob('b', ran, { hook: () => helped.resolve() }), open());
      await a.start();
      await b.start();
      await a.submit('spread', 500, { id: 'one' });
      const summary = await a.wait('one');
      expect(summary).toMatchObject({ status: 'COMPLETED', total: 500, succeeded: 500, failed: 0 });
      expect(await a.recount('one')).toMatchObject({ succeeded: 500, failed: 0 });
      const results = new Map<string, unknown>();
      for await (const p of a.partitions('one')) results.set(p.key, p.result);
      expect(results.size).toBe(500);
      for (let i = 0; i < 500; i++) expect(results.get(`k${i}`)).toBe(i * 2);
      const split = { a: 0, b: 0 };
      for (const r of ran) split[r.engine as 'a' | 'b']++;
      expect(split.b).toBeGreaterThan(0);
      expect(split.a + split.b).toBeGreaterThanOrEqual(500);
      // B follows the batch it helped through the store, like any batch run elsewhere.
      expect((await b.wait('one')).succeeded).toBe(500);
    });

    it('retries, failures and timeouts are per member, and the owner counts each once', async () => {
      const open = shared();
      const ran: Ran[] = [];
      // k1..k9 fail once (retried in a later range), k10 always fails (no retry left), k20 hangs
      // on its first attempt until the holder's timeout stops it.
      const hook = async (key: string, attempt: number, signal: AbortSignal) => {
        const i = Number(key.slice(1));
        if (i >= 1 && i <= 9 && attempt === 1) throw new Error(`flaky ${key}`);
        if (i === 10) throw new Error('always');
        if (i === 20 && attempt === 1)
          await new Promise((_, reject) =>
            signal.addEventListener('abort', () => reject(new Error('stopped'))),
          );
      };
      const a = start('a', spreadJob('a', ran, { hook, timeoutMs: 300 }), open());
      const b = start('b', spreadJob('b', ran, { hook, timeoutMs: 300 }), open());
      await a.start();
      await b.start();
      await a.submit('spread', 60, { id: 'mixed' });
      const summary = await a.wait('mixed');
      expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 59, failed: 1 });
      const parts = new Map<
        string,
        { status: string; attempts: number; error?: { message: string; code?: string } }
      >();
      for await (const p of a.partitions('mixed')) parts.set(p.key, p as never);
      expect(parts.get('k10')).toMatchObject({ status: 'failed', attempts: 2, error: { message: 'always' } });
      for (let i = 1; i <= 9; i++)
        expect(parts.get(`k${i}`)).toMatchObject({ status: 'succeeded', attempts: 2 });
      expect(parts.get('k20')).toMatchObject({ status: 'succeeded', attempts: 2 });
      expect(parts.get('k0')).toMatchObject({ status: 'succeeded', attempts: 1 });
      expect(await a.recount('mixed')).toMatchObject({ succeeded: 59, failed: 1 });
    });

    it('an engine without `help` runs only its own ranges; cancel withdraws what is offered', async () => {
      const open = shared();
      const ran: Ran[] = [];
      const release = deferred();
      const running = deferred();
      const hook = async () => {
        running.resolve();
        await release.promise;
      };
      const a = start('a', spreadJob('a', ran, { hook }), open(), false);
      const c = start('c', spreadJob('c', ran, { hook }), open(), false);
      await a.start();
      await c.start();
      await a.submit('spread', 200, { id: 'mine' });
      await running.promise;
      const store = open();
      await store.open();
      try {
        const cancelled = await a.cancel('mine', 'enough');
        expect(cancelled.status).toBe('CANCELLED');
        expect(ran.every((r) => r.engine === 'a')).toBe(true);
        // Nothing of the batch is left offered.
        expect(await store.ranges!.claim('probe', { jobs: ['spread'] }, 1, 100)).toEqual([]);
      } finally {
        release.resolve();
        await store.close();
      }
    });
  });
}

describe('distribute without a shared store, and its options', () => {
  it('runs where it is on a memoryStore', async () => {
    const ran: Ran[] = [];
    const engine = createEngine({
      jobs: [spreadJob('m', ran)],
      store: memoryStore(),
      logger: false,
      help: true,
    });
    engines.push(engine);
    await engine.start();
    await engine.submit('spread', 50, { id: 'local' });
    expect(await engine.wait('local')).toMatchObject({ status: 'COMPLETED', succeeded: 50 });
  });

  it('refuses bad options with VALIDATION', () => {
    const base = { name: 'd', partition: () => [], handler: () => 1 };
    expect(() => defineJob({ ...base, distribute: true, rateLimit: { max: 1, perMs: 10 } })).toThrow(
      ValidationError,
    );
    expect(() => defineJob({ ...base, distribute: { rangeSize: 0 } })).toThrow(/rangeSize|distribute/);
    expect(() => defineJob({ ...base, distribute: 'yes' as never })).toThrow(ValidationError);
    expect(defineJob({ ...base, distribute: true }).distribute).toEqual({ rangeSize: 100 });
    expect(defineJob({ ...base, distribute: false }).distribute).toBeUndefined();
    const job = defineJob(base);
    expect(() => createEngine({ jobs: [job], help: { concurrency: 0 } })).toThrow(ValidationError);
    expect(() => createEngine({ jobs: [job], help: 'always' as never })).toThrow(ValidationError);
  });
});

describe('a range read as spans of partitions close together', () => {
  it('reads members far apart without the rows between them, and members a few rows apart in one read', async () => {
    const { runsOf } = await import('../src/runtime/helping.js');
    expect(runsOf([5, 3, 4, 99_000, 10])).toEqual([
      [3, 8],
      [99_000, 1],
    ]);
    expect(runsOf([5, 3, 4, 99_000, 10], 0)).toEqual([
      [3, 3],
      [10, 1],
      [99_000, 1],
    ]);
    // A redriven batch's range: every other partition failed.
    expect(runsOf(Array.from({ length: 100 }, (_, k) => 1 + 2 * k))).toEqual([[1, 199]]);
    expect(runsOf([0, 40, 80], 32)).toEqual([
      [0, 1],
      [40, 1],
      [80, 1],
    ]);
    expect(runsOf([0, 1, 2, 3])).toEqual([[0, 4]]);
    expect(runsOf([7, 7])).toEqual([[7, 1]]);
  });
});
