import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, memoryStore, type Store, sqliteStore } from '../src/index.js';
import { collect, items, scriptedJob } from './helpers.js';
import { untilSummary as until } from './support/until.js';

// 3,000 partitions; one of them hangs at its first attempt, so that a group surely began and is
// still in flight at the stop (a worker job's batch has 8 lanes on 2 threads: what else was in
// flight may not have begun, and comes back at the same attempt).
const scripts = items('ok', 3000).map((s, i) => (i === 500 ? { ...s, mode: 'hang-first' as const } : s));

async function runTwice(store: Store, stopAt: number) {
  const first = createEngine({ jobs: [scriptedJob()], store, logger: false, workers: { maxThreads: 2 } });
  await first.start();
  const batch = await first.submit('scripted', { items: scripts }, { id: 'resume-me' });
  await until(first, batch.id, (s) => s.progress >= stopAt);
  await first.stop();
  await store.open(); // stop() closed it; read what the first engine left
  const stopped = await store.loadBatch(batch.id);
  expect(stopped?.status).toBe('PROCESSING');

  const second = createEngine({ jobs: [scriptedJob()], store, logger: false, workers: { maxThreads: 2 } });
  await second.start();
  const summary = await second.wait(batch.id);
  const recount = await second.recount(batch.id);
  const parts = await collect(second.partitions(batch.id));
  await second.stop();
  return { summary, recount, parts };
}

const dir = mkdtempSync(join(tmpdir(), 'partita-stop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const stores: Array<[string, () => Store]> = [
  ['memory', () => memoryStore()],
  ['sqlite', () => sqliteStore({ path: join(dir, `stop-${Math.random().toString(36).slice(2)}.db`) })],
];

describe.each(stores)('graceful stop in the middle of a batch, then start (%s store)', (_name, makeStore) => {
  it('resumes: every partition counted exactly once and recount equals the summary', async () => {
    const { summary, recount, parts } = await runTwice(makeStore(), 0.3);
    expect(summary).toMatchObject({ status: 'COMPLETED', total: 3000, succeeded: 3000, failed: 0 });
    expect(recount).toEqual({ total: 3000, succeeded: 3000, failed: 0 });
    expect(parts.every((p) => p.status === 'succeeded')).toBe(true);
    expect(new Set(parts.map((p) => p.key)).size).toBe(3000);
    // Partitions in flight at the stop ran again: the one that hung (it had begun), with attempt 2.
    expect(parts.find((p) => p.key === 'ok-500')?.attempts).toBe(2);
  });

  it('a queued batch stays queued across a restart and then runs', async () => {
    const store = makeStore();
    const first = createEngine({ jobs: [scriptedJob()], store, logger: false, maxConcurrentBatches: 1 });
    await first.start();
    const a = await first.submit('scripted', { items: items('hang', 1) });
    const b = await first.submit('scripted', { items: items('ok', 3) });
    expect((await first.get(b.id)).status).toBe('QUEUED');
    await first.stop();
    const second = createEngine({ jobs: [scriptedJob()], store, logger: false, maxConcurrentBatches: 2 });
    await second.start();
    expect((await second.wait(b.id)).status).toBe('COMPLETED');
    expect((await second.cancel(a.id)).status).toBe('CANCELLED');
    await second.stop();
  });
});
