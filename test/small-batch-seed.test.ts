import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, defineJob, memoryStore, type Store, sqliteStore } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'partita-seed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/**
 * A small batch submitted here keeps its partitions as they were stored (src/runtime/feeder.ts,
 * `Seed`): its first page is not read back from the store, and what the handler gets is what the
 * store holds. Only on a store that commits outcomes with their state (SQLite; not the memory store).
 */
function spied(store: Store) {
  const reads: Array<{ batchId: string; from: number }> = [];
  const readPartitions = store.readPartitions.bind(store);
  store.readPartitions = (batchId, from, limit) => {
    reads.push({ batchId, from });
    return readPartitions(batchId, from, limit);
  };
  return { store, reads };
}

/** The payloads as the SQLite file holds them (dispatch reads only pending ones back). */
function storedPayloads(path: string, batchId: string): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    const rows = db
      .prepare('SELECT payload FROM partitions WHERE batch_id = ? ORDER BY idx')
      .all(batchId) as Array<{ payload: string | null }>;
    return rows.map((r) => (r.payload === null ? undefined : JSON.parse(r.payload)));
  } finally {
    db.close();
  }
}

const sqliteFile = () => join(dir, `${++files}.db`);

async function run(payloads: unknown[], make: (() => Store) | 'sqlite' = 'sqlite') {
  const path = make === 'sqlite' ? sqliteFile() : undefined;
  const { store, reads } = spied(path ? sqliteStore({ path }) : (make as () => Store)());
  const seen: unknown[] = [];
  // One payload object reused between yields: what was yielded first must not change afterwards.
  const reused: { value?: unknown } = {};
  const job = defineJob({
    name: 'small',
    partition: function* (items: unknown[]) {
      for (const [i, value] of items.entries()) {
        reused.value = value;
        yield { key: `k${i}`, payload: value === undefined ? undefined : reused };
      }
    },
    handler: (payload: unknown) => {
      seen.push(payload);
      return null;
    },
  });
  const engine = createEngine({ jobs: [job], store, logger: false });
  await engine.start();
  try {
    const batch = await engine.submit('small', payloads);
    const done = await engine.wait(batch.id);
    const ran = reads.filter((r) => r.batchId === batch.id);
    const stored = path ? storedPayloads(path, batch.id) : undefined;
    return { done, seen, stored, reads: ran };
  } finally {
    await engine.stop();
  }
}

describe('a small batch submitted here', () => {
  it('runs without reading its partitions back; the handler gets the payloads as stored', async () => {
    const payloads = [{ a: [1, { b: null }], s: 'x' }, undefined, 'text', 0];
    const { done, seen, stored, reads } = await run(payloads);
    expect(done).toMatchObject({ status: 'COMPLETED', total: 4, succeeded: 4 });
    expect(reads).toEqual([]);
    expect(stored).toEqual([{ value: payloads[0] }, undefined, { value: 'text' }, { value: 0 }]);
    // Handlers may run in any order: compare as sets of their JSON.
    const json = (xs: unknown[]) => xs.map((x) => JSON.stringify(x) ?? 'undefined').sort();
    expect(json(seen)).toEqual(json(stored!));
  });

  it('a batch of more partitions reads them from the store, as before', async () => {
    const { done, reads } = await run([1, 2, 3, 4, 5]);
    expect(done).toMatchObject({ status: 'COMPLETED', succeeded: 5 });
    expect(reads.map((r) => r.from)).toEqual([0]);
  });

  it('on a store without Store.commit (memory) reads them, as before', async () => {
    const { done, reads } = await run([1, 2], memoryStore);
    expect(done).toMatchObject({ status: 'COMPLETED', succeeded: 2 });
    expect(reads.map((r) => r.from)).toEqual([0]);
  });
});
