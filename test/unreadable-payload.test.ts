import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createEngine, defineJob, type JobOptions, sqliteStore } from '../src/index.js';
import { collect, fixture } from './helpers.js';
import { sqlitePath } from './support/stores.js';

const N = 20;
const DAMAGED = 15;

/** The job, by name, as one engine or the next defines it: `run` is how its partitions run. */
const job = (batching: JobOptions['batching'], run: Pick<JobOptions, 'handler' | 'worker'>) =>
  defineJob({
    name: 'dmg',
    partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
    concurrency: 2,
    batching,
    ...run,
  } as JobOptions);

const hang = {
  handler: (_p: unknown, ctx: { signal: AbortSignal }) =>
    new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)),
};

describe.each([
  ['inline, one partition a task', false, 'inline'],
  ['inline, groups of 5', { maxItems: 5 }, 'inline'],
  ['worker, one partition a task', false, 'worker'],
  ['worker, groups of 5', { maxItems: 5 }, 'worker'],
] as const)('a pending partition whose stored payload does not parse (%s)', (_name, batching, kind) => {
  it('fails alone with STORE, unrun and not retried; the rest of its page runs, and the row is left as it was', async () => {
    const path = sqlitePath();
    // An unfinished batch: its first partitions hang until the engine stops.
    const first = createEngine({ jobs: [job(batching, hang)], store: sqliteStore({ path }), logger: false });
    await first.start();
    const batch = await first.submit('dmg', N);
    await new Promise<void>((resolve) => {
      const off = first.subscribe(batch.id, (s) => {
        if (s.running > 0) {
          queueMicrotask(() => off());
          resolve();
        }
      });
    });
    await first.stop();
    const db = new Database(path);
    db.prepare('UPDATE partitions SET payload = ? WHERE batch_id = ? AND idx = ?').run(
      '{"no',
      batch.id,
      DAMAGED,
    );
    const before = db
      .prepare('SELECT * FROM partitions WHERE batch_id = ? AND idx = ?')
      .get(batch.id, DAMAGED);
    db.close();

    const ran: unknown[] = [];
    const run =
      kind === 'inline'
        ? {
            handler: (p: unknown) => {
              ran.push(p);
              return { ok: true };
            },
          }
        : { worker: fixture('noop.mjs') };
    const next = createEngine({ jobs: [job(batching, run)], store: sqliteStore({ path }), logger: false });
    await next.start();
    try {
      const done = await next.wait(batch.id, { timeoutMs: 20_000 });
      expect(done).toMatchObject({ status: 'PARTIAL', succeeded: N - 1, failed: 1 });
      expect(done.failures).toEqual([
        expect.objectContaining({
          key: `k${DAMAGED}`,
          attempts: 1,
          error: expect.objectContaining({
            code: 'STORE',
            message: expect.stringMatching(/holds invalid JSON/),
          }),
        }),
      ]);
      // Every other partition ran once here; the damaged one never reached the handler.
      if (kind === 'inline')
        expect([...ran].sort((a, b) => Number(a) - Number(b))).toEqual(
          Array.from({ length: N }, (_, i) => i).filter((i) => i !== DAMAGED),
        );
      const parts = await collect(next.partitions(batch.id, { status: 'succeeded' }));
      expect(parts.map((p) => p.key)).not.toContain(`k${DAMAGED}`);
    } finally {
      await next.stop();
    }
    const after = new Database(path);
    const row = after
      .prepare('SELECT payload, key FROM partitions WHERE batch_id = ? AND idx = ?')
      .get(batch.id, DAMAGED);
    after.close();
    expect(row).toMatchObject({ payload: (before as { payload: string }).payload, key: `k${DAMAGED}` });
  });
});
