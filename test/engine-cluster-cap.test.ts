import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, expect, it } from 'vitest';
import {
  type AnyJobDefinition,
  createEngine,
  defineJob,
  type Engine,
  memoryStore,
  postgresStore,
  sqliteStore,
  ValidationError,
} from '../src/index.js';
import { PG_URL, pgSchema, pgUnreachable, sqlitePath } from './support/stores.js';

// clusterMaxConcurrentBatches (docs/scaling.md): three engines on one store, each allowed 4 batches,
// the cluster 2. The batches' partitions count how many batches run at once, cluster-wide.

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});

const pgDown = await pgUnreachable('the cluster-wide cap');
const kinds: Array<[string, () => () => ReturnType<typeof sqliteStore>]> = [
  [
    'sqlite file',
    () => {
      const path = sqlitePath();
      return () => sqliteStore({ path });
    },
  ],
];
if (!pgDown)
  kinds.push([
    'postgres',
    () => {
      const schema = pgSchema();
      return () => postgresStore({ connectionString: PG_URL, schema });
    },
  ]);

/** Three engines on one store, each allowed 4 batches, the cluster 2. */
async function startThree(job: AnyJobDefinition, open: () => ReturnType<typeof sqliteStore>) {
  for (let i = 0; i < 3; i++) {
    const engine = createEngine({
      jobs: [job],
      store: open(),
      logger: false,
      maxConcurrentBatches: 4,
      clusterMaxConcurrentBatches: 2,
      claimIntervalMs: 100,
    });
    engines.push(engine);
    await engine.start();
  }
}

for (const [kind, shared] of kinds)
  it(`${kind}: three engines never run more than the cluster's cap of batches at once`, async () => {
    const open = shared();
    const running = new Set<string>();
    let most = 0;
    const job = defineJob({
      name: 'capped',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: async (_i: number, ctx) => {
        running.add(ctx.batchId);
        most = Math.max(most, running.size);
        await sleep(30); // the work
        running.delete(ctx.batchId);
      },
      concurrency: 1,
      batching: false,
    });
    await startThree(job, open);
    // Submitted on all three, so that each would run 4 without the cap.
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await engines[i % 3]!.submit('capped', 3, { id: `b${i}` })).id);
    for (const id of ids) expect((await engines[0]!.wait(id)).status).toBe('COMPLETED');
    expect(most).toBe(2);
  });

for (const [kind, shared] of kinds)
  it(`${kind}: a slot freed anywhere goes to the highest priority batch of the cluster`, async () => {
    const open = shared();
    const started = new Map<string, number>();
    let tick = 0;
    // The batches that start first hold their slots until the highs are queued: no slot frees while
    // they are being submitted (a low admitted then, before a high existed, did not overtake it).
    let release!: () => void;
    const highsQueued = new Promise<void>((resolve) => {
      release = resolve;
    });
    const job = defineJob({
      name: 'ordered',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: async (_i: number, ctx) => {
        if (!started.has(ctx.batchId)) started.set(ctx.batchId, ++tick);
        await highsQueued;
        await sleep(20); // the work
      },
      concurrency: 1,
      batching: false,
    });
    await startThree(job, open);
    // Low-priority batches on every engine fill the cluster's two slots and queue behind them;
    // then two high-priority ones are submitted on the third engine.
    const lows: string[] = [];
    for (let i = 0; i < 8; i++) lows.push((await engines[i % 3]!.submit('ordered', 3, { id: `low${i}` })).id);
    const highs: string[] = [];
    for (let i = 0; i < 2; i++)
      highs.push((await engines[2]!.submit('ordered', 3, { id: `high${i}`, priority: 10 })).id);
    const queuedAt = tick;
    release();
    for (const id of [...lows, ...highs]) expect((await engines[0]!.wait(id)).status).toBe('COMPLETED');
    // No low batch started after the highs were queued until both highs had started.
    const lastHigh = Math.max(...highs.map((id) => started.get(id)!));
    const overtaking = lows.filter((id) => started.get(id)! > queuedAt && started.get(id)! < lastHigh);
    expect(overtaking, `start order ${JSON.stringify([...started])}`).toEqual([]);
  });

it('is refused on a store without acquireLeaseWithin, and checked like every option', async () => {
  const job = defineJob({ name: 'x', partition: () => [], handler: () => 1 });
  const store = memoryStore();
  // A store that lacks the method (as a store written before it would).
  const bare = Object.create(store, { kind: { value: 'custom' }, acquireLeaseWithin: { value: undefined } });
  const engine = createEngine({ jobs: [job], store: bare, logger: false, clusterMaxConcurrentBatches: 2 });
  await expect(engine.start()).rejects.toBeInstanceOf(ValidationError);
  expect(() => createEngine({ jobs: [job], clusterMaxConcurrentBatches: 0 })).toThrow(ValidationError);
});
