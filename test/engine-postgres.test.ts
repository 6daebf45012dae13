import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, postgresStore } from '../src/index.js';
import { collect, items, scriptedJob } from './helpers.js';
import { PG_URL, pgUnreachable } from './support/stores.js';

// The engine end to end on PostgreSQL: a batch with failures, then a stop in the middle and a resume.
const URL = PG_URL;
const SCHEMA = `partita_engine_${process.pid}_${Date.now().toString(36)}`;
const unreachable = await pgUnreachable('the engine-on-PostgreSQL tests');

describe.skipIf(unreachable !== undefined)('the engine on postgresStore', () => {
  afterAll(async () => {
    const admin = new pg.Client({ connectionString: URL });
    await admin.connect();
    await admin.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(SCHEMA)} CASCADE`);
    await admin.end();
  });

  const engineOn = () =>
    createEngine({
      jobs: [scriptedJob({ concurrency: 16 })],
      store: postgresStore({ connectionString: URL, schema: SCHEMA }),
      logger: false,
      workers: { maxThreads: 2 },
    });

  it('runs a batch to PARTIAL with exact counts, and resumes one stopped half way', async () => {
    const first = engineOn();
    await first.start();
    const partial = await first.wait(
      (
        await first.submit(
          'scripted',
          { items: [...items('ok', 40), ...items('fail', 3)] },
          { id: 'pg-partial' },
        )
      ).id,
    );
    expect(partial).toMatchObject({ status: 'PARTIAL', succeeded: 40, failed: 3 });
    expect(await first.recount('pg-partial')).toEqual({ total: 43, succeeded: 40, failed: 3 });

    const big = await first.submit('scripted', { items: items('ok', 600) }, { id: 'pg-resume' });
    await new Promise<void>((resolve) => {
      const off = first.subscribe(big.id, (s) => {
        if (s.progress >= 0.3) {
          queueMicrotask(() => off());
          resolve();
        }
      });
    });
    await first.stop();

    const second = engineOn();
    await second.start();
    try {
      const summary = await second.wait('pg-resume');
      expect(summary).toMatchObject({ status: 'COMPLETED', total: 600, succeeded: 600 });
      expect(await second.recount('pg-resume')).toEqual({ total: 600, succeeded: 600, failed: 0 });
      const parts = await collect(second.partitions('pg-resume'));
      expect(new Set(parts.map((p) => p.key)).size).toBe(600);
      expect((await second.get('pg-partial')).status).toBe('PARTIAL');
    } finally {
      await second.stop();
    }
  });
  it('observe() hears each status of a batch once, in order, while the claim sweep meets batches being submitted (outside probe: QUEUED twice)', async () => {
    const engine = createEngine({
      jobs: [scriptedJob({ concurrency: 4 })],
      store: postgresStore({ connectionString: URL, schema: SCHEMA }),
      logger: false,
      workers: { maxThreads: 2 },
    });
    const heard = new Map<string, string[]>();
    engine.observe((e) => {
      if (e.type !== 'batch') return;
      const list = heard.get(e.batchId) ?? [];
      list.push(e.status);
      heard.set(e.batchId, list);
    });
    await engine.start();
    try {
      // Eight submitters at a time: the store's notice of each new batch reaches this engine's own
      // claim sweep while the submit that made it is still queueing it (24 of 1,500 heard QUEUED twice).
      const ids: string[] = [];
      let next = 0;
      const submitter = async () => {
        while (next < 400) {
          const n = next++;
          const s = await engine.submit('scripted', { items: items('ok', 1 + (n % 3)) }, { id: `obs-${n}` });
          ids.push(s.id);
          await engine.wait(s.id);
        }
      };
      await Promise.all(Array.from({ length: 8 }, submitter));
      const odd = ids.filter((id) => heard.get(id)?.join('>') !== 'QUEUED>PROCESSING>FINALIZING>COMPLETED');
      expect(odd.map((id) => `${id}: ${heard.get(id)?.join('>')}`)).toEqual([]);
    } finally {
      await engine.stop();
    }
  }, 120_000);
});
