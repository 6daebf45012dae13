import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SerializedError, ValidationError } from '../../src/errors.js';
import {
  type BatchRecord,
  type BatchState,
  type Fence,
  type OutcomeRecord,
  type PartitionInput,
  SCHEMA_VERSION,
  type Store,
} from '../../src/store/store.js';
import type { BatchStatus } from '../../src/summary.js';
import { MAX_ID_LENGTH, MAX_KEY_LENGTH } from '../../src/values.js';

/** What a store's test file hands to {@link storeContract}: a fresh, not yet opened store. */
export interface StoreHarness {
  store: Store;
  /** Removes what the store wrote (temp file, schema). Called after the suite closed the store. */
  cleanup: () => Promise<void>;
}

/**
 * The one contract every Store passes (DESIGN.md section 6). Each test opens a new store from
 * `make()` and closes it afterwards. Tests name everything with a per-test prefix, so the suite
 * also holds when several stores share one database (a PostgreSQL schema per test file).
 *
 * @example
 * ```ts
 * storeContract('memory', async () => ({ store: memoryStore(), cleanup: async () => {} }));
 * ```
 */
export function storeContract(name: string, make: () => Promise<StoreHarness>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    let ns: string;

    beforeEach(async () => {
      ({ store, cleanup } = await make());
      await store.open();
      await store.open(); // idempotent
      ns = Math.random().toString(36).slice(2, 10);
    });

    afterEach(async () => {
      await store.close();
      await store.close(); // idempotent
      await cleanup();
    });

    const id = (s: string) => `${ns}-${s}`;
    const job = (s = 'job') => `${ns}-${s}`;
    const record = (batchId: string, over: Partial<BatchRecord> = {}): BatchRecord =>
      batchRecord(batchId, { job: job(), total: 0, ...over });
    const lease = async (batchId: string, owner = 'engine-1'): Promise<Fence> => {
      const l = await store.acquireLease(batchId, owner, 60_000);
      if (!l) throw new Error(`test setup: lease on ${batchId} refused`);
      return { owner: l.owner, epoch: l.epoch };
    };
    const create = async (batchId: string, n: number, over: Partial<BatchRecord> = {}) => {
      const res = await store.createBatch(record(batchId, { total: n, ...over }), parts(n));
      expect(res).toEqual({ created: true });
    };
    const mine = (rows: { id: string }[]) => rows.map((r) => r.id).filter((x) => x.startsWith(`${ns}-`));

    describe('redrive', () => {
      it('moves failed outcomes to history, makes them pending, renumbers the journal, once', async () => {
        await create(id('r'), 5);
        const fence = await lease(id('r'));
        const err = { name: 'Error', message: 'boom', code: 'X' };
        await store.appendOutcomes(
          id('r'),
          [
            outcome(0, 'k0', 1),
            outcome(1, 'k1', 2, { status: 'failed', result: undefined, error: err, attempts: 2 }),
            outcome(2, 'k2', 3),
            outcome(3, 'k3', 4, { status: 'failed', result: undefined, error: err }),
            outcome(4, 'k4', 5),
          ],
          fence,
        );
        await store.saveState(id('r'), state('PARTIAL', 5), fence);
        // Not PARTIAL or FAILED: refused, nothing written.
        expect(await store.redrive(id('nope'), state('QUEUED', 3), 1)).toBe(false);

        expect(await store.redrive(id('r'), state('QUEUED', 3), 1)).toBe(true);
        expect(await store.redrive(id('r'), state('QUEUED', 3), 1)).toBe(false); // QUEUED now
        const row = await store.loadBatch(id('r'));
        expect(row).toMatchObject({ status: 'QUEUED', state: state('QUEUED', 3) });
        // Dispatch reads only the pending partitions' payloads.
        expect((await store.readPartitions(id('r'), 0, 10)).map((p) => p.payload !== undefined)).toEqual([
          false,
          true,
          false,
          true,
          false,
        ]);
        expect((await store.readPartitions(id('r'), 0, 10)).map((p) => p.status)).toEqual([
          'succeeded',
          'pending',
          'succeeded',
          'pending',
          'succeeded',
        ]);
        expect(await store.countOutcomes(id('r'))).toEqual({ succeeded: 3, failed: 0 });
        // The succeeded outcomes are the journal 1..3 (recovery replays only what comes after 3, so
        // their order among themselves does not matter; the SQL stores move k4 into k1's place).
        const journal = await collect(store.outcomesSince(id('r'), 0));
        expect(journal.map((o) => o.seq)).toEqual([1, 2, 3]);
        expect(journal.map((o) => o.key).sort()).toEqual(['k0', 'k2', 'k4']);
        const views = await collect(store.partitions(id('r')));
        expect(views[1]).toMatchObject({ key: 'k1', status: 'pending', attempts: 0 });
        expect(views[1]!.error).toBeUndefined();
        expect(views[1]!.history).toEqual([
          { run: 1, status: 'failed', error: err, attempts: 2, durationMs: 7, finishedAt: FINISHED },
        ]);
        expect(views[0]!.history).toBeUndefined();
        // Free for whoever admits it; the next run appends after seq 3.
        const next = await lease(id('r'), 'engine-2');
        await store.appendOutcomes(id('r'), [outcome(1, 'k1', 4, { status: 'failed', error: err })], next);
        await store.saveState(id('r'), state('FAILED', 4), next);
        expect(await store.redrive(id('r'), state('QUEUED', 3), 2)).toBe(true);
        const k1 = (await collect(store.partitions(id('r'))))[1]!;
        expect(k1.history?.map((h) => h.run)).toEqual([1, 2]);
      });

      it('makes the journal 1..n also from positions with holes, which no build writes', async () => {
        await create(id('h'), 4);
        const fence = await lease(id('h'));
        const err = { name: 'Error', message: 'boom' };
        await store.appendOutcomes(
          id('h'),
          [
            outcome(0, 'k0', 1),
            outcome(1, 'k1', 3, { status: 'failed', result: undefined, error: err }),
            outcome(2, 'k2', 6),
            outcome(3, 'k3', 8),
          ],
          fence,
        );
        await store.saveState(id('h'), state('PARTIAL', 8), fence);
        expect(await store.redrive(id('h'), state('QUEUED', 3), 1)).toBe(true);
        const journal = await collect(store.outcomesSince(id('h'), 0));
        expect(journal.map((o) => o.seq)).toEqual([1, 2, 3]);
        expect(journal.map((o) => o.key).sort()).toEqual(['k0', 'k2', 'k3']);
        expect(await store.countOutcomes(id('h'))).toEqual({ succeeded: 3, failed: 0 });
      });
    });

    describe('loadBatches', () => {
      it('reads the rows of the ids that exist, each once, as loadBatch reads them; more than one statement’s worth too', async () => {
        await create(id('l1'), 1);
        await create(id('l2'), 2);
        const ids = [id('l2'), id('missing'), id('l1'), id('l2')];
        const rows = await store.loadBatches!(ids);
        expect(rows.map((r) => r.id).sort()).toEqual([id('l1'), id('l2')].sort());
        for (const row of rows) expect(row).toEqual(await store.loadBatch(row.id));
        expect(await store.loadBatches!([])).toEqual([]);
        // Past one statement's 500 ids.
        const many = [...Array.from({ length: 1200 }, (_, i) => id(`none-${i}`)), id('l1')];
        expect((await store.loadBatches!(many)).map((r) => r.id)).toEqual([id('l1')]);
      });
    });

    describe('createBatch', () => {
      it('stores the batch row and its partitions, all pending', async () => {
        const rec = record(id('a'), { total: 3, priority: 5, meta: { team: 'pay' } });
        expect(await store.createBatch(rec, parts(3))).toEqual({ created: true });
        const row = await store.loadBatch(rec.id);
        expect(row).toMatchObject({
          id: rec.id,
          job: rec.job,
          status: 'QUEUED',
          priority: 5,
          createdAt: rec.createdAt,
        });
        expect(row?.record).toEqual(rec);
        expect(row?.state).toBeUndefined();
        expect(await store.readPartitions(rec.id, 0, 10)).toEqual([
          { index: 0, key: 'k0', payload: { n: 0 }, status: 'pending' },
          { index: 1, key: 'k1', payload: { n: 1 }, status: 'pending' },
          { index: 2, key: 'k2', payload: { n: 2 }, status: 'pending' },
        ]);
      });

      it('stores record.total as the number of partitions the iterator gave', async () => {
        await store.createBatch(record(id('streamed'), { total: 0 }), asyncParts(2345));
        expect((await store.loadBatch(id('streamed')))?.record).toEqual(
          record(id('streamed'), { total: 2345 }),
        );
        await store.createBatch(record(id('wrong'), { total: 99 }), parts(2));
        expect((await store.loadBatch(id('wrong')))?.record).toMatchObject({ total: 2 });
      });

      it('is idempotent on id: a second call returns created:false and writes nothing', async () => {
        await create(id('a'), 2);
        const again = await store.createBatch(
          record(id('a'), { job: job('other'), total: 5 }),
          parts(5, 'x'),
        );
        expect(again).toEqual({ created: false });
        expect((await store.loadBatch(id('a')))?.record).toEqual(record(id('a'), { total: 2 }));
        expect((await store.readPartitions(id('a'), 0, 10)).map((p) => p.key)).toEqual(['k0', 'k1']);
      });

      it('creates a batch once when two calls with the same id race', async () => {
        const results = await Promise.all([
          store.createBatch(record(id('a'), { total: 1500 }), asyncParts(1500)),
          store.createBatch(record(id('a'), { total: 1500 }), asyncParts(1500)),
        ]);
        expect(results.filter((r) => r.created)).toHaveLength(1);
        expect(await store.readPartitions(id('a'), 0, 2000)).toHaveLength(1500);
      });

      it('refuses duplicate keys with VALIDATION and stores nothing', async () => {
        const dup = [...parts(3), { key: 'k1', payload: 'again' }];
        await expect(store.createBatch(record(id('a')), dup)).rejects.toMatchObject({ code: 'VALIDATION' });
        expect(await store.loadBatch(id('a'))).toBeUndefined();
        expect(await store.readPartitions(id('a'), 0, 10)).toEqual([]);
        expect(mine(await store.listBatches())).toEqual([]);
        // Nothing was left behind: the id and the keys are free again.
        await create(id('a'), 3);
      });

      it('names the duplicate key of a long array, wherever it falls among the rows written together', async () => {
        // SQLite writes a chunk's rows a hundred to a statement; the refused statement's rows go again
        // one by one to find the key. Here it sits in the middle of the second chunk's fourth hundred.
        const rows = parts(2500);
        rows[1350] = { key: 'k17', payload: 'again' };
        await expect(store.createBatch(record(id('arr')), rows)).rejects.toMatchObject({
          code: 'VALIDATION',
          message: expect.stringContaining('"k17"'),
        });
        expect(await store.loadBatch(id('arr'))).toBeUndefined();
        expect(await store.readPartitions(id('arr'), 0, 10)).toEqual([]);
        await create(id('arr'), 3);
      });

      it('refuses a duplicate key far into a long async stream and stores nothing', async () => {
        async function* source() {
          yield* asyncParts(4999);
          yield { key: 'k3', payload: null };
        }
        await expect(store.createBatch(record(id('a')), source())).rejects.toMatchObject({
          code: 'VALIDATION',
        });
        expect(await store.loadBatch(id('a'))).toBeUndefined();
        expect(await store.readPartitions(id('a'), 0, 10)).toEqual([]);
      });

      it('refuses a duplicate key in a middle chunk, while later chunks are read, and stores nothing', async () => {
        // Chunks are written while the next is read (src/store/write-ahead.ts): the second chunk's
        // write fails while the third is being read, and that failure still ends the submit.
        async function* source() {
          yield* asyncParts(1500);
          yield { key: 'k7', payload: null };
          for (let i = 1501; i < 4000; i++) yield { key: `m${i}`, payload: i };
        }
        await expect(store.createBatch(record(id('mid')), source())).rejects.toMatchObject({
          code: 'VALIDATION',
        });
        expect(await store.loadBatch(id('mid'))).toBeUndefined();
        expect(await store.readPartitions(id('mid'), 0, 10)).toEqual([]);
        await create(id('mid'), 1);
      });

      it('reports a chunk whose write failed before its source threw, and stops reading a source once a write failed', async () => {
        // A duplicate key ends the 2,000th partition (a full chunk on every store: SQLite's chunks
        // are 1,000, PostgreSQL's 2,000); the source throws a little later, before the next chunk
        // is full: the duplicate came first, and is what the submit reports.
        async function* thenThrows() {
          yield* asyncParts(1999);
          yield { key: 'k3', payload: null };
          yield { key: 'more', payload: null };
          throw new Error('source broke');
        }
        await expect(store.createBatch(record(id('both')), thenThrows())).rejects.toMatchObject({
          code: 'VALIDATION',
        });
        expect(await store.loadBatch(id('both'))).toBeUndefined();
        // Then 5 ms an item: a whole further chunk would take 5 s or more, while the write of the
        // duplicate fails within milliseconds and ends the reading.
        let read = 0;
        async function* slow() {
          for (const p of [...Array.from({ length: 1999 }, (_, i) => i), 3]) {
            read++;
            yield { key: `k${p}`, payload: null };
          }
          for (let i = 0; i < 2000; i++) {
            await new Promise((r) => setTimeout(r, 5));
            read++;
            yield { key: `s${i}`, payload: null };
          }
        }
        await expect(store.createBatch(record(id('slow')), slow())).rejects.toMatchObject({
          code: 'VALIDATION',
        });
        expect(read).toBeLessThan(2500);
        expect(await store.loadBatch(id('slow'))).toBeUndefined();
        await create(id('slow'), 1);
      });

      it('accepts an AsyncIterable and a sync Iterable, indexed in iteration order', async () => {
        await store.createBatch(record(id('async')), asyncParts(3));
        function* sync() {
          yield { key: 'z', payload: 1 };
          yield { key: 'a', payload: 2 };
        }
        await store.createBatch(record(id('sync')), sync());
        expect((await store.readPartitions(id('async'), 0, 10)).map((p) => [p.index, p.key])).toEqual([
          [0, 'k0'],
          [1, 'k1'],
          [2, 'k2'],
        ]);
        expect((await store.readPartitions(id('sync'), 0, 10)).map((p) => [p.index, p.key])).toEqual([
          [0, 'z'],
          [1, 'a'],
        ]);
      });

      it('rejects with the error of a failing partition source and stores nothing', async () => {
        async function* source() {
          yield* asyncParts(2500);
          throw new Error('source broke');
        }
        await expect(store.createBatch(record(id('a')), source())).rejects.toThrow('source broke');
        expect(await store.loadBatch(id('a'))).toBeUndefined();
        expect(await store.readPartitions(id('a'), 0, 10)).toEqual([]);
        await create(id('a'), 1);
      });

      it('keeps a batch invisible until createBatch resolves', async () => {
        const { source, halfway, release } = gatedSource(2500);
        const pending = store.createBatch(record(id('a')), source);
        await halfway;
        expect(await store.loadBatch(id('a'))).toBeUndefined();
        expect(mine(await store.listBatches())).toEqual([]);
        expect(mine(await store.listBatches({ unfinished: true }))).toEqual([]);
        release();
        expect(await pending).toEqual({ created: true });
        expect(await store.loadBatch(id('a'))).toBeDefined();
        expect(await store.readPartitions(id('a'), 2500, 10)).toEqual([
          { index: 2500, key: 'last', payload: null, status: 'pending' },
        ]);
      });

      it('stores a batch of zero partitions', async () => {
        await create(id('empty'), 0);
        expect((await store.loadBatch(id('empty')))?.status).toBe('QUEUED');
        expect(await store.readPartitions(id('empty'), 0, 10)).toEqual([]);
        expect(await collect(store.partitions(id('empty')))).toEqual([]);
      });

      it('stores each payload as it was when yielded, even when the source reuses one object', async () => {
        // 2,500 partitions cross the chunk boundaries of every store (1,000 and 2,000).
        async function* reusing() {
          const payload: { n: number; tag?: string } = { n: -1 };
          for (let i = 0; i < 2500; i++) {
            payload.n = i;
            if (i % 700 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
            yield { key: `k${i}`, payload };
          }
          payload.tag = 'changed after the last yield';
        }
        await store.createBatch(record(id('reused')), reusing());
        const rows = await store.readPartitions(id('reused'), 0, 2500);
        expect(rows).toHaveLength(2500);
        expect(rows.every((r) => (r.payload as { n: number }).n === r.index)).toBe(true);
        expect(rows.some((r) => 'tag' in (r.payload as object))).toBe(false);
      });

      it('stores the JSON text taken at yield time when the partition carries one', async () => {
        const input: PartitionInput[] = [
          { key: 'a', payload: { stale: true }, json: '{"n":1}' },
          { key: 'b', payload: 'ignored', json: 'null' },
          { key: 'c', payload: { n: 3 } },
          { key: 'd', payload: undefined },
        ];
        await store.createBatch(record(id('json')), input);
        expect(await store.readPartitions(id('json'), 0, 10)).toEqual([
          { index: 0, key: 'a', payload: { n: 1 }, status: 'pending' },
          { index: 1, key: 'b', payload: null, status: 'pending' },
          { index: 2, key: 'c', payload: { n: 3 }, status: 'pending' },
          { index: 3, key: 'd', payload: undefined, status: 'pending' },
        ]);
      });

      it('returns payloads the caller cannot change, as JSON would', async () => {
        const payload = { when: new Date('2026-01-01T00:00:00.000Z'), list: [1, 2] };
        await store.createBatch(record(id('copy')), [{ key: 'a', payload }]);
        payload.list.push(3);
        const [row] = await store.readPartitions(id('copy'), 0, 1);
        expect(row?.payload).toEqual({ when: '2026-01-01T00:00:00.000Z', list: [1, 2] });
        (row!.payload as { list: number[] }).list.push(4);
        expect((await store.readPartitions(id('copy'), 0, 1))[0]?.payload).toEqual({
          when: '2026-01-01T00:00:00.000Z',
          list: [1, 2],
        });
      });

      it.each([
        ['empty', ''],
        ['NUL', 'a\u0000b'],
        ['lone high surrogate', 'a\uD800b'],
        ['lone low surrogate', '\uDC00'],
        ['too long', 'x'.repeat(MAX_KEY_LENGTH + 1)],
        ['not a string', 42 as unknown as string],
      ])('refuses a partition key that is %s with VALIDATION and stores nothing', async (_, key) => {
        async function* source() {
          yield* asyncParts(2500);
          yield { key, payload: 'bad' };
        }
        const err = await store.createBatch(record(id('a')), source()).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'VALIDATION' });
        expect(err).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).issues[0]?.path).toBe('partitions[2500].key');
        expect(await store.loadBatch(id('a'))).toBeUndefined();
        expect(await store.readPartitions(id('a'), 0, 10)).toEqual([]);
        expect(mine(await store.listBatches())).toEqual([]);
        await create(id('a'), 2);
      });

      it.each([
        ['empty', ''],
        ['NUL', 'a\u0000b'],
        ['lone surrogate', 'a\uD800'],
        ['too long', 'x'.repeat(MAX_ID_LENGTH + 1)],
      ])('refuses a batch id that is %s with VALIDATION and stores nothing', async (_, bad) => {
        const batchId = bad === '' ? bad : `${ns}-${bad}`;
        await expect(store.createBatch(record(batchId), parts(3))).rejects.toMatchObject({
          code: 'VALIDATION',
        });
        expect(mine(await store.listBatches())).toEqual([]);
      });

      it('accepts the longest key and id, and any well-formed Unicode', async () => {
        const longId = `${ns}-${'i'.repeat(MAX_ID_LENGTH - ns.length - 1)}`;
        const keys = ['k'.repeat(MAX_KEY_LENGTH), '🙂\u{10FFFF}', '\uFFFD', ' '];
        await store.createBatch(
          record(longId),
          keys.map((key) => ({ key, payload: null })),
        );
        expect((await store.loadBatch(longId))?.id).toBe(longId);
        expect((await store.readPartitions(longId, 0, 10)).map((p) => p.key)).toEqual(keys);
      });

      it('answers empty for an unknown batch', async () => {
        expect(await store.loadBatch(id('nope'))).toBeUndefined();
        expect(await store.readPartitions(id('nope'), 0, 10)).toEqual([]);
        expect(await collect(store.partitions(id('nope')))).toEqual([]);
        expect(await collect(store.outcomesSince(id('nope'), 0))).toEqual([]);
        expect(await store.countOutcomes(id('nope'))).toEqual({ succeeded: 0, failed: 0 });
        expect(await store.acquireLease(id('nope'), 'engine-1', 1000)).toBeUndefined();
        expect(await store.leaseOf(id('nope'))).toBeUndefined();
      });
    });

    describe('listBatches', () => {
      const at = (i: number) => `2026-02-0${i}T00:00:00.000Z`;
      const setStatus = async (batchId: string, status: BatchStatus) => {
        expect(await store.saveState(batchId, state(status, 0), await lease(batchId))).toBe(true);
      };
      beforeEach(async () => {
        await create(id('b1'), 1, { job: job('x'), createdAt: at(1) });
        await create(id('b2'), 1, { job: job('y'), createdAt: at(2) });
        await create(id('b3'), 1, { job: job('x'), createdAt: at(3) });
        await create(id('b4'), 1, { job: job('x'), createdAt: at(4) });
        await setStatus(id('b1'), 'COMPLETED');
        await setStatus(id('b2'), 'PROCESSING');
        await setStatus(id('b4'), 'FAILED');
      });
      const ids = (...names: string[]) => names.map(id);

      it('lists newest first by default', async () => {
        expect(mine(await store.listBatches())).toEqual(ids('b4', 'b3', 'b2', 'b1'));
        expect(mine(await store.listBatches({}))).toEqual(ids('b4', 'b3', 'b2', 'b1'));
      });

      it('filters by one status or several', async () => {
        expect(mine(await store.listBatches({ status: 'COMPLETED' }))).toEqual(ids('b1'));
        expect(mine(await store.listBatches({ status: ['QUEUED', 'PROCESSING'] }))).toEqual(ids('b3', 'b2'));
        expect(mine(await store.listBatches({ status: [] }))).toEqual([]);
      });

      it('filters by job and limits', async () => {
        expect(mine(await store.listBatches({ job: job('x') }))).toEqual(ids('b4', 'b3', 'b1'));
        expect(mine(await store.listBatches({ job: job('x'), limit: 2 }))).toEqual(ids('b4', 'b3'));
        expect(await store.listBatches({ limit: 2 })).toHaveLength(2);
        expect(await store.listBatches({ job: job('none') })).toEqual([]);
      });

      it('lists unfinished batches oldest first', async () => {
        expect(mine(await store.listBatches({ unfinished: true }))).toEqual(ids('b2', 'b3'));
        expect(mine(await store.listBatches({ unfinished: true, job: job('x') }))).toEqual(ids('b3'));
        expect(mine(await store.listBatches({ unfinished: true, job: job('x'), limit: 1 }))).toEqual(
          ids('b3'),
        );
      });

      it.each([
        ['NaN', Number.NaN],
        ['Infinity', Number.POSITIVE_INFINITY],
        ['negative', -1],
        ['not a number', '2' as unknown as number],
      ])('refuses a limit that is %s with VALIDATION', async (_, limit) => {
        await expect(store.listBatches({ limit })).rejects.toMatchObject({ code: 'VALIDATION' });
        await expect(store.listBatches({ limit, unfinished: true })).rejects.toMatchObject({
          code: 'VALIDATION',
        });
      });

      it('treats limit 0 as none and a fractional limit as its whole part', async () => {
        expect(await store.listBatches({ limit: 0 })).toEqual([]);
        expect(mine(await store.listBatches({ job: job('x'), limit: 2.9 }))).toEqual(ids('b4', 'b3'));
      });

      it('returns rows with record, state and the status column', async () => {
        const [b1] = await store.listBatches({ job: job('x'), status: 'COMPLETED' });
        expect(b1).toMatchObject({
          id: id('b1'),
          job: job('x'),
          status: 'COMPLETED',
          priority: 0,
          createdAt: at(1),
        });
        expect(b1?.record).toEqual(record(id('b1'), { job: job('x'), total: 1, createdAt: at(1) }));
        expect(b1?.state).toEqual(state('COMPLETED', 0));
      });
    });

    describe('partitions', () => {
      it('pages readPartitions by index with the current status', async () => {
        await create(id('a'), 25);
        const fence = await lease(id('a'));
        await store.appendOutcomes(
          id('a'),
          [outcome(3, 'k3', 1), outcome(12, 'k12', 2, { status: 'failed' })],
          fence,
        );
        const page1 = await store.readPartitions(id('a'), 0, 10);
        const page2 = await store.readPartitions(id('a'), 10, 10);
        const page3 = await store.readPartitions(id('a'), 20, 10);
        expect(page1.map((p) => p.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect(page2.map((p) => p.index)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
        expect(page3.map((p) => p.key)).toEqual(['k20', 'k21', 'k22', 'k23', 'k24']);
        expect(await store.readPartitions(id('a'), 25, 10)).toEqual([]);
        expect(page1[3]).toEqual({ index: 3, key: 'k3', payload: undefined, status: 'succeeded' });
        expect(page1[4]).toEqual({ index: 4, key: 'k4', payload: { n: 4 }, status: 'pending' });
        expect(page2[2]?.status).toBe('failed');
        expect(page1[4]?.status).toBe('pending');
      });

      it('iterates partitions() in index order with outcomes, filtered by status', async () => {
        await create(id('a'), 5);
        const fence = await lease(id('a'));
        const err: SerializedError = {
          name: 'Error',
          message: 'boom',
          code: 'E_BOOM',
          stack: 'Error: boom\n    at x',
        };
        await store.appendOutcomes(
          id('a'),
          [
            outcome(4, 'k4', 1, { result: { rows: 4 }, attempts: 2 }),
            outcome(1, 'k1', 2, { status: 'failed', result: undefined, error: err, attempts: 3 }),
            outcome(0, 'k0', 3, { result: 'zero' }),
          ],
          fence,
        );
        const all = await collect(store.partitions(id('a')));
        expect(all.map((p) => [p.index, p.key, p.status])).toEqual([
          [0, 'k0', 'succeeded'],
          [1, 'k1', 'failed'],
          [2, 'k2', 'pending'],
          [3, 'k3', 'pending'],
          [4, 'k4', 'succeeded'],
        ]);
        expect(all[0]).toEqual({
          index: 0,
          key: 'k0',
          status: 'succeeded',
          result: 'zero',
          attempts: 1,
          durationMs: 7,
          finishedAt: FINISHED,
        });
        expect(all[1]).toMatchObject({ status: 'failed', error: err, attempts: 3 });
        expect(all[1]?.result).toBeUndefined();
        expect(all[2]).toMatchObject({ index: 2, key: 'k2', status: 'pending', attempts: 0 });
        expect(all[2]?.result).toBeUndefined();
        expect(all[2]?.error).toBeUndefined();
        expect(all[4]).toMatchObject({ result: { rows: 4 }, attempts: 2 });
        const failed = await collect(store.partitions(id('a'), { status: 'failed' }));
        expect(failed.map((p) => p.key)).toEqual(['k1']);
        const pending = await collect(store.partitions(id('a'), { status: 'pending' }));
        expect(pending.map((p) => p.key)).toEqual(['k2', 'k3']);
        const succeeded = await collect(store.partitions(id('a'), { status: 'succeeded' }));
        expect(succeeded.map((p) => p.key)).toEqual(['k0', 'k4']);
      });
    });

    describe('appendOutcomes and the journal', () => {
      it('records one outcome per partition; a second is refused and never counted', async () => {
        await create(id('a'), 4);
        const fence = await lease(id('a'));
        const first = await store.appendOutcomes(
          id('a'),
          [outcome(0, 'k0', 1), outcome(1, 'k1', 2, { status: 'failed' })],
          fence,
        );
        expect(first).toEqual({ accepted: 2 });
        const again = await store.appendOutcomes(
          id('a'),
          [
            outcome(1, 'k1', 3, { status: 'succeeded' }),
            outcome(2, 'k2', 4),
            outcome(2, 'k2', 5, { status: 'failed' }),
          ],
          fence,
        );
        expect(again).toEqual({ accepted: 1 });
        expect(await store.countOutcomes(id('a'))).toEqual({ succeeded: 2, failed: 1 });
        const rows = await store.readPartitions(id('a'), 0, 4);
        expect(rows.map((p) => p.status)).toEqual(['succeeded', 'failed', 'succeeded', 'pending']);
        const journal = await collect(store.outcomesSince(id('a'), 0));
        expect(journal.map((o) => [o.index, o.seq])).toEqual([
          [0, 1],
          [1, 2],
          [2, 4],
        ]);
        expect(await store.appendOutcomes(id('a'), [], fence)).toEqual({ accepted: 0 });
      });

      it('commit (when a store has it) writes the outcomes and the state together, fenced', async () => {
        if (!store.commit) return;
        await create(id('a'), 2);
        const fence = await lease(id('a'));
        const done = await store.commit(id('a'), [outcome(0, 'k0', 1)], state('PROCESSING', 1), fence);
        expect(done).toEqual({ accepted: 1, saved: true });
        expect(await store.countOutcomes(id('a'))).toEqual({ succeeded: 1, failed: 0 });
        expect((await store.loadBatch(id('a')))?.status).toBe('PROCESSING');
        const stale = { ...fence, epoch: fence.epoch - 1 };
        await expect(
          store.commit(id('a'), [outcome(1, 'k1', 2)], state('COMPLETED', 2), stale),
        ).rejects.toMatchObject({ code: 'LEASE_LOST' });
        expect(await store.countOutcomes(id('a'))).toEqual({ succeeded: 1, failed: 0 });
        expect((await store.loadBatch(id('a')))?.status).toBe('PROCESSING');
      });

      it('refuses an outcome whose key does not match its index, or an index out of range', async () => {
        await create(id('a'), 2);
        const fence = await lease(id('a'));
        const res = await store.appendOutcomes(id('a'), [outcome(0, 'k1', 1), outcome(7, 'k7', 2)], fence);
        expect(res).toEqual({ accepted: 0 });
        expect(await store.countOutcomes(id('a'))).toEqual({ succeeded: 0, failed: 0 });
      });

      it('replays outcomesSince in seq order, with every field', async () => {
        await create(id('a'), 6);
        const fence = await lease(id('a'));
        const err: SerializedError = { name: 'TimeoutError', message: 'late', code: 'TIMEOUT' };
        const o3 = outcome(3, 'k3', 1, { result: [1, 2] });
        const o0 = outcome(0, 'k0', 2, {
          status: 'failed',
          result: undefined,
          error: err,
          attempts: 2,
          durationMs: 1.5,
        });
        const o5 = outcome(5, 'k5', 3);
        const o1 = outcome(1, 'k1', 4, { result: null });
        await store.appendOutcomes(id('a'), [o3, o0], fence);
        await store.appendOutcomes(id('a'), [o1, o5], fence);
        const all = await collect(store.outcomesSince(id('a'), 0));
        expect(all).toEqual([o3, o0, o5, o1]);
        expect(all[3]?.result).toBeNull();
        expect(await collect(store.outcomesSince(id('a'), 2))).toEqual([o5, o1]);
        expect(await collect(store.outcomesSince(id('a'), 4))).toEqual([]);
      });
    });

    describe('saveState', () => {
      it('is a compare-and-set on journalSeq and updates the status column', async () => {
        await create(id('a'), 1);
        const fence = await lease(id('a'));
        expect(await store.saveState(id('a'), state('PROCESSING', 5, { snapshot: { v: 5 } }), fence)).toBe(
          true,
        );
        expect(await store.saveState(id('a'), state('QUEUED', 3, { snapshot: { v: 3 } }), fence)).toBe(false);
        let row = await store.loadBatch(id('a'));
        expect(row?.status).toBe('PROCESSING');
        expect(row?.state).toEqual(state('PROCESSING', 5, { snapshot: { v: 5 } }));
        // The same journal position may be saved again (a status change with no new outcome).
        expect(await store.saveState(id('a'), state('FINALIZING', 5), fence)).toBe(true);
        expect(
          await store.saveState(id('a'), state('COMPLETED', 9, { summary: { done: true } }), fence),
        ).toBe(true);
        row = await store.loadBatch(id('a'));
        expect(row?.status).toBe('COMPLETED');
        expect(row?.state).toEqual(state('COMPLETED', 9, { summary: { done: true } }));
        expect(mine(await store.listBatches({ status: 'COMPLETED' }))).toEqual([id('a')]);
        expect(mine(await store.listBatches({ unfinished: true }))).toEqual([]);
      });
    });

    describe('prunable and deleteBatches (optional: engine.prune)', () => {
      const ended = (status: BatchStatus, finishedAt: string) =>
        state(status, 2, { summary: { status, finishedAt } });
      const end = async (batchId: string, status: BatchStatus, finishedAt: string, createdAt: string) => {
        await create(batchId, 2, { createdAt });
        const fence = await lease(batchId);
        expect(await store.saveState(batchId, ended(status, finishedAt), fence)).toBe(true);
      };

      it('selects ended batches by end, status and job, oldest first, keeping what unfinished batches wait for', async (ctx) => {
        if (!store.prunable || !store.deleteBatches) return ctx.skip();
        await end(id('c2'), 'FAILED', '2026-01-03T00:00:00.000Z', '2026-01-02T00:00:00.000Z');
        await end(id('c1'), 'COMPLETED', '2026-01-02T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
        await end(id('parent'), 'COMPLETED', '2026-01-02T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
        // Created before the cutoff, ended after it.
        await end(id('late'), 'CANCELLED', '2026-02-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
        await create(id('waits'), 1, { after: [id('parent')], createdAt: '2026-01-01T00:00:00.000Z' });
        const filter = { endedBefore: '2026-01-15T00:00:00.000Z', status: FINAL, job: job() };

        expect(await store.prunable(filter, 10)).toEqual([id('c1'), id('c2')]);
        expect(await store.prunable(filter, 1)).toEqual([id('c1')]);
        expect(await store.prunable({ ...filter, status: ['FAILED'] }, 10)).toEqual([id('c2')]);
        expect(await store.prunable({ ...filter, job: job('other') }, 10)).toEqual([]);
        expect(await store.prunable({ ...filter, endedBefore: '2026-03-01T00:00:00.000Z' }, 10)).toEqual([
          id('c1'),
          id('late'),
          id('c2'),
        ]);
      });

      it('deletes an ended batch with its partitions and history; an unfinished one is left whole', async (ctx) => {
        if (!store.prunable || !store.deleteBatches) return ctx.skip();
        await end(id('done'), 'COMPLETED', '2026-01-02T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
        await create(id('open'), 2);
        await lease(id('open'));

        expect(await store.deleteBatches([id('done'), id('open'), id('never-was')])).toBe(1);
        expect(await store.loadBatch(id('done'))).toBeUndefined();
        expect(await store.readPartitions(id('done'), 0, 10)).toEqual([]);
        expect(await store.countOutcomes(id('done'))).toEqual({ succeeded: 0, failed: 0 });
        if (store.leaseHistory) expect(await store.leaseHistory(id('done'))).toEqual([]);
        expect((await store.loadBatch(id('open')))?.status).toBe('QUEUED');
        expect(await store.readPartitions(id('open'), 0, 10)).toHaveLength(2);
        if (store.leaseHistory) expect(await store.leaseHistory(id('open'))).toHaveLength(1);
        // The id is free again.
        await create(id('done'), 1);
        expect(await store.deleteBatches([])).toBe(0);
      });
    });

    describe('watch', () => {
      it('tells a watcher about every new status saved, until it unsubscribes', async (ctx) => {
        if (!store.watch) return ctx.skip();
        const seen: { batchId: string; status: BatchStatus }[] = [];
        const stop = store.watch((event) => {
          if (event.batchId.startsWith(`${ns}-`)) seen.push(event);
        });
        // A throwing watcher must not fail the write or starve the others.
        const stopThrowing = store.watch(() => {
          throw new Error('watcher broke');
        });
        await create(id('a'), 1);
        const fence = await lease(id('a'));
        expect(await store.saveState(id('a'), state('PROCESSING', 0), fence)).toBe(true);
        expect(await store.saveState(id('a'), state('COMPLETED', 1), fence)).toBe(true);
        await until(() => seen.some((e) => e.status === 'COMPLETED'));
        expect(seen).toContainEqual({ batchId: id('a'), status: 'PROCESSING' });
        expect(seen).toContainEqual({ batchId: id('a'), status: 'COMPLETED' });
        stop();
        stopThrowing();
        stop(); // idempotent
        seen.length = 0;
        expect(await store.saveState(id('a'), state('FAILED', 2), fence)).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(seen).toEqual([]);
      });
    });

    describe('schedules', () => {
      const mineNamed = (rows: { name: string }[]) =>
        rows.map((r) => r.name).filter((x) => x.startsWith(`${ns}-`));
      const def = (cron: string) => ({
        schemaVersion: 1,
        cron,
        job: 'j',
        input: { kind: 'json', value: [1, 'a'] },
      });

      it('saves, lists by name, loads and deletes a schedule', async () => {
        expect(await store.loadSchedule(id('nope'))).toBeUndefined();
        await store.saveSchedule(id('b'), def('0 * * * *'), 1_000);
        await store.saveSchedule(id('a'), def('* * * * *'), 2_000);
        expect(mineNamed(await store.listSchedules())).toEqual([id('a'), id('b')]);
        const row = await store.loadSchedule(id('b'));
        expect(row).toEqual({ name: id('b'), definition: def('0 * * * *'), createdAt: 1_000 });
        expect(row?.lastFireAt).toBeUndefined();
        expect(row?.lastBatchId).toBeUndefined();
        expect(await store.deleteSchedule(id('b'))).toBe(true);
        expect(await store.deleteSchedule(id('b'))).toBe(false);
        expect(mineNamed(await store.listSchedules())).toEqual([id('a')]);
      });

      it('saving an existing name replaces the definition and keeps createdAt and the last fire', async () => {
        await store.saveSchedule(id('s'), def('0 * * * *'), 1_000);
        expect(await store.recordFire(id('s'), 5_000, id('s@5'))).toBe(true);
        await store.saveSchedule(id('s'), def('30 * * * *'), 9_000);
        expect(await store.loadSchedule(id('s'))).toEqual({
          name: id('s'),
          definition: def('30 * * * *'),
          createdAt: 1_000,
          lastFireAt: 5_000,
          lastBatchId: id('s@5'),
        });
      });

      it('recordFire only moves forward; the same fire time may add its batch, a skip keeps the last batch', async () => {
        await store.saveSchedule(id('s'), def('* * * * *'), 0);
        expect(await store.recordFire(id('nope'), 1_000, 'x')).toBe(false);
        expect(await store.recordFire(id('s'), 2_000, 'b2')).toBe(true);
        // An engine that is late records an older fire: refused, nothing moves back.
        expect(await store.recordFire(id('s'), 1_000, 'b1')).toBe(false);
        expect(await store.loadSchedule(id('s'))).toMatchObject({ lastFireAt: 2_000, lastBatchId: 'b2' });
        // A skipped fire moves the time and keeps the batch of the last fire that submitted one.
        expect(await store.recordFire(id('s'), 3_000, undefined)).toBe(true);
        expect(await store.loadSchedule(id('s'))).toMatchObject({ lastFireAt: 3_000, lastBatchId: 'b2' });
        // Two engines on one fire: one skipped it, the other submitted its batch; the batch is kept.
        expect(await store.recordFire(id('s'), 3_000, undefined)).toBe(false);
        expect(await store.recordFire(id('s'), 3_000, 'b3')).toBe(true);
        expect(await store.loadSchedule(id('s'))).toMatchObject({ lastFireAt: 3_000, lastBatchId: 'b3' });
        // Racing records of many fire times end at the latest, whatever the order they land in.
        const times = Array.from({ length: 20 }, (_, i) => 4_000 + i * 1_000).reverse();
        await Promise.all(times.map((t) => store.recordFire(id('s'), t, `b${t}`)));
        expect(await store.loadSchedule(id('s'))).toMatchObject({
          lastFireAt: 23_000,
          lastBatchId: 'b23000',
        });
      });
    });

    describe('leases', () => {
      it('grants a free lease, refuses another owner while it is held, and bumps the epoch', async () => {
        await create(id('a'), 1);
        const a = await store.acquireLease(id('a'), 'A', 60_000);
        // With the batch's stored status and journal position at that moment.
        expect(a).toMatchObject({ owner: 'A', status: 'QUEUED', journalSeq: 0 });
        expect(a!.expiresAt).toBeGreaterThan(Date.now() + 30_000);
        const { status: _s, journalSeq: _j, ...held } = a!;
        expect(await store.leaseOf(id('a'))).toEqual(held);
        expect(await store.acquireLease(id('a'), 'B', 60_000)).toBeUndefined();
        const again = await store.acquireLease(id('a'), 'A', 60_000);
        expect(again?.epoch).toBeGreaterThan(a!.epoch);
        expect(await store.leaseOf(id('a'))).toMatchObject({ owner: 'A', epoch: again!.epoch });
      });

      it('grants an expired lease, or one held by the owner named in takeoverFrom', async () => {
        await create(id('a'), 1);
        await create(id('b'), 1);
        const a = await store.acquireLease(id('a'), 'A', 0); // expires at once
        const b = await store.acquireLease(id('a'), 'B', 60_000);
        expect(b?.epoch).toBeGreaterThan(a!.epoch);
        const held = await store.acquireLease(id('b'), 'A', 60_000);
        expect(await store.acquireLease(id('b'), 'C', 60_000, 'someone-else')).toBeUndefined();
        const c = await store.acquireLease(id('b'), 'C', 60_000, 'A');
        expect(c).toMatchObject({ owner: 'C' });
        expect(c!.epoch).toBeGreaterThan(held!.epoch);
      });

      it('refuses writes with a stale epoch (LEASE_LOST) and writes nothing', async () => {
        await create(id('a'), 2);
        const stale = await lease(id('a'), 'A');
        await store.saveState(id('a'), state('PROCESSING', 1), stale);
        const fresh = await store.acquireLease(id('a'), 'B', 60_000, 'A');
        await expect(store.appendOutcomes(id('a'), [outcome(0, 'k0', 2)], stale)).rejects.toMatchObject({
          code: 'LEASE_LOST',
        });
        await expect(store.appendOutcomes(id('a'), [], stale)).rejects.toMatchObject({ code: 'LEASE_LOST' });
        await expect(store.saveState(id('a'), state('FAILED', 7), stale)).rejects.toMatchObject({
          code: 'LEASE_LOST',
        });
        const wrongOwner = { owner: 'A', epoch: fresh!.epoch };
        await expect(store.saveState(id('a'), state('FAILED', 7), wrongOwner)).rejects.toMatchObject({
          code: 'LEASE_LOST',
        });
        expect(await store.countOutcomes(id('a'))).toEqual({ succeeded: 0, failed: 0 });
        expect(await collect(store.outcomesSince(id('a'), 0))).toEqual([]);
        const row = await store.loadBatch(id('a'));
        expect(row?.status).toBe('PROCESSING');
        expect(row?.state).toEqual(state('PROCESSING', 1));
        // The new holder writes normally.
        expect(await store.appendOutcomes(id('a'), [outcome(0, 'k0', 2)], fresh!)).toEqual({ accepted: 1 });
      });

      it('refuses writes to a batch nobody leased', async () => {
        await create(id('a'), 1);
        const fence = { owner: 'A', epoch: 1 };
        await expect(store.appendOutcomes(id('a'), [outcome(0, 'k0', 1)], fence)).rejects.toMatchObject({
          code: 'LEASE_LOST',
        });
        await expect(store.saveState(id('a'), state('FAILED', 1), fence)).rejects.toMatchObject({
          code: 'LEASE_LOST',
        });
        expect((await store.loadBatch(id('a')))?.status).toBe('QUEUED');
      });

      it('renews and releases only with the current fence', async () => {
        await create(id('a'), 1);
        const a = await store.acquireLease(id('a'), 'A', 1_000);
        expect(await store.renewLease(id('a'), a!, 60_000)).toBe(true);
        expect((await store.leaseOf(id('a')))!.expiresAt).toBeGreaterThan(a!.expiresAt);
        expect(await store.renewLease(id('a'), { owner: 'A', epoch: a!.epoch + 1 }, 60_000)).toBe(false);
        expect(await store.renewLease(id('a'), { owner: 'B', epoch: a!.epoch }, 60_000)).toBe(false);
        await store.releaseLease(id('a'), { owner: 'A', epoch: a!.epoch - 1 });
        expect(await store.acquireLease(id('a'), 'B', 60_000)).toBeUndefined();
        await store.releaseLease(id('a'), a!);
        const b = await store.acquireLease(id('a'), 'B', 60_000);
        expect(b?.epoch).toBeGreaterThan(a!.epoch);
        expect(await store.renewLease(id('a'), a!, 60_000)).toBe(false);
      });
    });

    it('round-trips payloads, results, errors, records and states as JSON', async () => {
      const weird = {
        text: 'ünïcødé ✓ 🙂 "quoted" \\ back\nslash \u0000 nul',
        nested: { list: [1, -2.5, 1e21, true, false, null, '', [], {}], deep: { a: { b: { c: 'd' } } } },
        big: 'x'.repeat(100_000),
      };
      const rec = record(id('a'), {
        total: 3,
        after: [id('p1'), id('p2')],
        when: 'settled',
        meta: { ключ: 'значение' },
      });
      const input: PartitionInput[] = [
        { key: 'ключ-🙂', payload: weird },
        { key: 'null', payload: null },
        { key: 'scalar', payload: 42 },
      ];
      await store.createBatch(rec, input);
      expect(await store.readPartitions(id('a'), 0, 3)).toEqual([
        { index: 0, key: 'ключ-🙂', payload: json(weird), status: 'pending' },
        { index: 1, key: 'null', payload: null, status: 'pending' },
        { index: 2, key: 'scalar', payload: 42, status: 'pending' },
      ]);
      const fence = await lease(id('a'));
      const error: SerializedError = {
        name: 'WorkerCrashedError',
        message: weird.text,
        code: 'WORKER_CRASHED',
        stack: 'WorkerCrashedError: x\n    at y (file:///z.js:1:2)',
        cause: { name: 'Error', message: 'inner', cause: { name: 'TypeError', message: 'innermost' } },
      };
      const outs = [
        outcome(0, 'ключ-🙂', 1, { result: weird }),
        outcome(2, 'scalar', 2, { status: 'failed', result: undefined, error }),
      ];
      await store.appendOutcomes(id('a'), outs, fence);
      const st = state('PROCESSING', 2, {
        snapshot: { context: weird, children: {} },
        summary: { failures: [error] },
      });
      await store.saveState(id('a'), st, fence);

      const row = await store.loadBatch(id('a'));
      expect(row?.record).toEqual(json(rec));
      expect(row?.state).toEqual(json(st));
      // Once settled, a partition's payload is not read for dispatch.
      expect(await store.readPartitions(id('a'), 0, 3)).toEqual([
        { index: 0, key: 'ключ-🙂', payload: undefined, status: 'succeeded' },
        { index: 1, key: 'null', payload: null, status: 'pending' },
        { index: 2, key: 'scalar', payload: undefined, status: 'failed' },
      ]);
      expect(await collect(store.outcomesSince(id('a'), 0))).toEqual(json(outs));
      const views = await collect(store.partitions(id('a')));
      expect(views[0]?.result).toEqual(json(weird));
      expect(views[2]?.error).toEqual(json(error));
    });

    it('round-trips a 20,000-partition batch', async () => {
      const n = 20_000;
      expect(await store.createBatch(record(id('big'), { total: n }), asyncParts(n))).toEqual({
        created: true,
      });
      const fence = await lease(id('big'));
      let index = 0;
      while (index < n) {
        const rows = await store.readPartitions(id('big'), index, 1000);
        expect(rows).toHaveLength(1000);
        expect(rows[0]).toEqual({ index, key: `k${index}`, payload: { n: index }, status: 'pending' });
        const outs = rows.map((p) =>
          outcome(
            p.index,
            p.key,
            p.index + 1,
            p.index % 4 === 0
              ? { status: 'failed', result: undefined, error: { name: 'E', message: `m${p.index}` } }
              : { result: p.index },
          ),
        );
        expect(await store.appendOutcomes(id('big'), outs, fence)).toEqual({ accepted: 1000 });
        index += rows.length;
      }
      expect(await store.readPartitions(id('big'), n, 1000)).toEqual([]);
      expect(await store.countOutcomes(id('big'))).toEqual({ succeeded: 15_000, failed: 5_000 });
      const failed = await collect(store.partitions(id('big'), { status: 'failed' }));
      expect(failed).toHaveLength(5_000);
      expect(failed.every((p, i) => p.index === i * 4 && p.error?.message === `m${i * 4}`)).toBe(true);
      let count = 0;
      let lastSeq = 0;
      for await (const o of store.outcomesSince(id('big'), 0)) {
        expect(o.seq).toBe(lastSeq + 1);
        lastSeq = o.seq;
        count++;
      }
      expect(count).toBe(n);
      expect(await collect(store.outcomesSince(id('big'), n - 10))).toHaveLength(10);
      let viewed = 0;
      for await (const p of store.partitions(id('big'))) {
        if (p.index !== viewed || p.status === 'pending')
          throw new Error(`unexpected partition ${JSON.stringify(p)}`);
        viewed++;
      }
      expect(viewed).toBe(n);
    });
  });
}

const FINISHED = '2026-03-01T12:00:00.000Z';

function parts(n: number, prefix = 'k'): PartitionInput[] {
  return Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}`, payload: { n: i } }));
}

async function* asyncParts(n: number): AsyncGenerator<PartitionInput> {
  for (let i = 0; i < n; i++) {
    // Yield to the event loop now and then, as a real streaming source (a cursor, a file) would.
    if (i % 500 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    yield { key: `k${i}`, payload: { n: i } };
  }
}

/** A batch record of job `job` with two partitions, for the stores' own tests. */
const FINAL: BatchStatus[] = ['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED'];

export function batchRecord(id: string, over: Partial<BatchRecord> = {}): BatchRecord {
  return {
    schemaVersion: SCHEMA_VERSION,
    id,
    job: 'job',
    total: 2,
    priority: 0,
    after: [],
    when: 'succeeded',
    createdAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

/**
 * A source that yields `n` partitions (payload `{ n: i }`), says so through `halfway`, and waits for
 * `release()` before its last one (`last`): a createBatch provably in the middle of its stream.
 */
export function gatedSource(n: number) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reached!: () => void;
  const halfway = new Promise<void>((resolve) => {
    reached = resolve;
  });
  async function* source() {
    yield* asyncParts(n);
    reached();
    await gate;
    yield { key: 'last', payload: null };
  }
  return { source: source(), halfway, release };
}

function outcome(index: number, key: string, seq: number, over: Partial<OutcomeRecord> = {}): OutcomeRecord {
  return {
    index,
    key,
    status: 'succeeded',
    result: { ok: index },
    attempts: 1,
    durationMs: 7,
    seq,
    finishedAt: FINISHED,
    ...over,
  };
}

export function state(status: BatchStatus, journalSeq: number, over: Partial<BatchState> = {}): BatchState {
  return {
    schemaVersion: SCHEMA_VERSION,
    machineVersion: 1,
    status,
    journalSeq,
    snapshot: { status },
    summary: { status },
    ...over,
  };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** Waits until `done()` holds, for what a store does in the background (notifications). */
export async function until(done: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** What a value looks like after a trip through JSON (undefined properties dropped). */
function json<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
