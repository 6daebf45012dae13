import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, defineJob, type Engine, sqliteStore } from '../src/index.js';
import { BATCH_MACHINE_VERSION } from '../src/machines/batch.js';
import { parseState } from '../src/runtime/records.js';
import { collect, items, scriptedJob } from './helpers.js';
import { serve } from './http/support.js';

type Snapshot = { context: Record<string, unknown> } & Record<string, unknown>;

const dir = mkdtempSync(join(tmpdir(), 'partita-records-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const engineOn = (path: string) =>
  createEngine({
    jobs: [scriptedJob({ concurrency: 2 })],
    store: sqliteStore({ path }),
    logger: false,
    workers: { maxThreads: 2 },
  });

/** Leave three batches unfinished in a file: stop an engine while they run. */
async function threeUnfinished(path: string) {
  const engine = engineOn(path);
  await engine.start();
  for (const id of ['healthy', 'future', 'corrupt'])
    await engine.submit(
      'scripted',
      { items: [...items('hang', 2, `${id}-h`), ...items('ok', 3, `${id}-o`)] },
      { id },
    );
  await engine.stop();
}

describe('stored records are versioned and validated on load', () => {
  it('a future-version or corrupt row is reported by list(), left untouched, and every other batch keeps running', async () => {
    const path = join(dir, 'mixed.db');
    await threeUnfinished(path);
    const db = new Database(path);
    const future = db.prepare('select state from batches where id = ?').get('future') as { state: string };
    const state = JSON.parse(future.state);
    db.prepare('update batches set state = ? where id = ?').run(
      JSON.stringify({ ...state, schemaVersion: 99 }),
      'future',
    );
    db.prepare('update batches set record = ? where id = ?').run('{"schemaVersion": 1, "id": tru', 'corrupt');
    const before = db.prepare('select id, record, state, status from batches order by id').all();
    db.close();

    const engine: Engine = engineOn(path);
    await engine.start();
    try {
      const list = await engine.list();
      const byId = Object.fromEntries(list.map((s) => [s.id, s]));
      expect(byId.future!.error).toMatchObject({ code: 'SNAPSHOT_VERSION' });
      expect(byId.corrupt!.error).toMatchObject({ code: 'STORE' });
      expect(byId.healthy!.error).toBeUndefined();
      await expect(engine.get('future')).rejects.toMatchObject({ code: 'SNAPSHOT_VERSION' });
      await expect(engine.get('corrupt')).rejects.toMatchObject({ code: 'STORE', corrupt: true });
      // Over HTTP: no 503 with Retry-After (a client would retry for good), and the reason shown.
      const { base } = await serve(engine);
      for (const [id, code, detail] of [
        ['future', 'SNAPSHOT_VERSION', /schemaVersion/],
        ['corrupt', 'STORE', /stored record is not valid JSON/],
      ] as const) {
        const res = await fetch(`${base}/batches/${id}`);
        expect(res.status).toBe(500);
        expect(res.headers.get('retry-after')).toBeNull();
        const body = (await res.json()) as { code: string; detail: string };
        expect(body.code).toBe(code);
        expect(body.detail).toMatch(detail);
      }
      // The healthy batch resumed; its hanging partitions are cancelled so it can end.
      expect((await engine.get('healthy')).status).toBe('PROCESSING');
      expect((await engine.cancel('healthy')).status).toBe('CANCELLED');
    } finally {
      await engine.stop();
    }
    const after = new Database(path);
    const rows = after
      .prepare('select id, record, state, status from batches order by id')
      .all() as typeof before;
    after.close();
    expect(rows.filter((r) => (r as { id: string }).id !== 'healthy')).toEqual(
      before.filter((r) => (r as { id: string }).id !== 'healthy'),
    );
  });

  it.each([
    ['no snapshot', (_s: Snapshot) => null],
    ['a value that names no state', (s: Snapshot) => ({ ...s, value: 'nonexistent' })],
    ['no context', (s: Snapshot) => ({ ...s, context: undefined })],
    ['a negative count', (s: Snapshot) => ({ ...s, context: { ...s.context, succeeded: -5 } })],
    ['more outcomes than partitions', (s: Snapshot) => ({ ...s, context: { ...s.context, failed: 99 } })],
    ['lanes missing from inFlight', (s: Snapshot) => ({ ...s, context: { ...s.context, inFlight: [] } })],
  ])(
    'an unfinished batch whose stored snapshot has %s is reported (STORE), left untouched, and every other batch keeps running',
    async (_name, damage) => {
      const path = join(dir, `damaged-${_name.replaceAll(' ', '-')}.db`);
      await threeUnfinished(path);
      const db = new Database(path);
      const row = db.prepare('select state from batches where id = ?').get('corrupt') as { state: string };
      const state = JSON.parse(row.state);
      db.prepare('update batches set state = ? where id = ?').run(
        JSON.stringify({ ...state, snapshot: damage(state.snapshot) }),
        'corrupt',
      );
      const before = db.prepare("select * from batches where id = 'corrupt'").get();
      db.close();

      const errors: unknown[] = [];
      const engine = createEngine({
        jobs: [scriptedJob({ concurrency: 2 })],
        store: sqliteStore({ path }),
        logger: false,
        workers: { maxThreads: 2 },
        onError: (err) => errors.push(err),
      });
      await engine.start();
      try {
        await expect(engine.get('corrupt')).rejects.toMatchObject({ code: 'STORE' });
        await expect(engine.wait('corrupt')).rejects.toMatchObject({ code: 'STORE' });
        await expect(engine.cancel('corrupt')).rejects.toMatchObject({ code: 'STORE' });
        // A listener hears what list() shows of it, with the error (it heard nothing at all).
        const heard = await new Promise<{ error?: unknown; status: string }>((resolve) => {
          const off = engine.subscribe('corrupt', (s) => {
            queueMicrotask(() => off());
            resolve(s);
          });
        });
        expect(heard.error).toMatchObject({ code: 'STORE' });
        const listed = (await engine.list()).find((b) => b.id === 'corrupt');
        expect(listed?.error).toMatchObject({ code: 'STORE' });
        // Its record is intact: its size is known (its counts are not).
        expect(listed).toMatchObject({ total: 5, succeeded: 0, failed: 0, pending: 5 });
        // The others resumed: one cancelled here, one finished after its hanging partitions are cancelled.
        expect((await engine.cancel('healthy')).status).toBe('CANCELLED');
        expect((await engine.cancel('future')).status).toBe('CANCELLED');
        for (const err of errors) expect(err).toMatchObject({ code: 'STORE' });
      } finally {
        await engine.stop();
      }
      const after = new Database(path);
      expect(after.prepare("select * from batches where id = 'corrupt'").get()).toEqual(before);
      after.close();
    },
  );

  it.each([
    ['the JSON text null', "'null'", /stored state is corrupt \(null\)/],
    [
      'SQL NULL while its status is PROCESSING',
      'NULL',
      /stored state is missing \(its status is PROCESSING\)/,
    ],
  ])(
    'an unfinished batch whose whole stored state is %s is reported (STORE), not shown QUEUED and never run',
    async (name, value, message) => {
      const path = join(dir, `no-state-${name.replaceAll(' ', '-')}.db`);
      await threeUnfinished(path);
      const db = new Database(path);
      db.prepare(`update batches set state = ${value} where id = 'corrupt'`).run();
      const before = db.prepare("select * from batches where id = 'corrupt'").get();
      db.close();

      const engine = engineOn(path);
      await engine.start();
      try {
        await expect(engine.get('corrupt')).rejects.toMatchObject({ code: 'STORE', message });
        await expect(engine.wait('corrupt')).rejects.toMatchObject({ code: 'STORE' });
        const listed = (await engine.list()).find((b) => b.id === 'corrupt');
        expect(listed?.error).toMatchObject({ code: 'STORE' });
        expect((await engine.cancel('healthy')).status).toBe('CANCELLED');
      } finally {
        await engine.stop();
      }
      const after = new Database(path);
      expect(after.prepare("select * from batches where id = 'corrupt'").get()).toEqual(before);
      after.close();
    },
  );

  it('a future machine snapshot names its machineVersion', () => {
    const row = {
      id: 'b',
      job: 'j',
      status: 'PROCESSING' as const,
      priority: 0,
      createdAt: '2026-01-01T00:00:00.000Z',
      record: {},
      state: {
        schemaVersion: 1,
        status: 'PROCESSING',
        journalSeq: 0,
        machineVersion: 99,
        snapshot: {},
        summary: {},
      },
    };
    expect(() => parseState(row)).toThrow(/has machineVersion 99; this partita reads up to/);
  });

  it('an unfinished batch of a job this engine does not know is reported and left for an engine that knows it', async () => {
    const path = join(dir, 'unknown-job.db');
    await threeUnfinished(path);
    const other = defineJob({ name: 'other', partition: () => [], handler: () => 1 });
    const engine = createEngine({ jobs: [other], store: sqliteStore({ path }), logger: false });
    await engine.start();
    try {
      const list = await engine.list();
      expect(list).toHaveLength(3);
      for (const s of list)
        expect(s).toMatchObject({ job: 'scripted', status: 'PROCESSING', error: { code: 'UNKNOWN_JOB' } });
      // Not broken for good: another engine sharing the store may run it. Its stored summary, marked.
      expect(await engine.get('healthy')).toMatchObject({
        status: 'PROCESSING',
        error: { code: 'UNKNOWN_JOB' },
      });
      expect((await engine.wait((await engine.submit('other', {})).id)).status).toBe('COMPLETED');
    } finally {
      await engine.stop();
    }
    // An engine that knows the job resumes them.
    const knowing = engineOn(path);
    await knowing.start();
    try {
      expect((await knowing.get('healthy')).status).toBe('PROCESSING');
    } finally {
      await knowing.stop();
    }
  });

  it.each([
    ['partita.db', 'batch machine version 1, migrated on load'],
    ['machine-2.db', 'batch machine version 2'],
    ['machine-3.db', 'batch machine version 3, before item batching'],
  ])('loads the committed fixture %s written by record schema version 1 (%s)', async (file) => {
    const path = join(dir, `fixture-${file}`);
    copyFileSync(new URL(`./fixtures/v1/${file}`, import.meta.url), path);
    const engine = engineOn(path);
    await engine.start();
    try {
      const done = await engine.get('v1-partial');
      expect(done).toMatchObject({
        status: 'PARTIAL',
        total: 4,
        succeeded: 3,
        failed: 1,
        errorSummary: '1 of 4 partitions failed',
      });
      const failed = await collect(engine.partitions('v1-partial', { status: 'failed' }));
      expect(failed).toMatchObject([{ key: 'fail-0', error: { code: 'E_SCRIPTED' } }]);
      // The unfinished batch of the fixture resumes and finishes.
      const resumed = await engine.wait('v1-unfinished');
      expect(resumed).toMatchObject({ status: 'COMPLETED', total: 6, succeeded: 6 });
      expect((await engine.wait('v1-queued')).status).toBe('COMPLETED');
    } finally {
      await engine.stop();
    }
  });
});

/** A stored PROCESSING batch of 4 partitions on one lane, its machine snapshot at `machineVersion`. */
function snapshotRow(machineVersion: number, context: Record<string, unknown>) {
  return {
    id: 'b',
    job: 'j',
    status: 'PROCESSING',
    priority: 0,
    created_at: '2026-11-29T00:00:00.000Z',
    record: '{}',
    state: JSON.stringify({
      schemaVersion: 1,
      machineVersion,
      status: 'PROCESSING',
      journalSeq: 0,
      snapshot: {
        status: 'active',
        value: 'processing',
        context: {
          config: { batchId: 'b', job: 'j', total: 4, lanes: 1 },
          cursor: 4,
          loaded: 4,
          loading: false,
          succeeded: 0,
          failed: 0,
          running: 0,
          inFlight: [null],
          redeliver: [],
          settledAhead: [],
          failures: [],
          ...context,
        },
      },
      summary: {},
    }),
  };
}

describe('batch machine version 3 → 4 (item batching)', () => {
  it('keeps what a version 3 snapshot meant: a partition to redeliver runs at its next attempt', () => {
    const row = snapshotRow(3, { succeeded: 3, redeliver: [{ index: 3, attempt: 1 }] });
    const state = parseState(row as never)!;
    expect(state.machineVersion).toBe(BATCH_MACHINE_VERSION);
    const context = (state.snapshot as { context: Record<string, unknown> }).context;
    // Version 3 stored the attempt that was interrupted; version 4 stores the attempt to run.
    expect(context.redeliver).toEqual([{ index: 3, attempt: 2 }]);
    expect(context.groupSize).toBe(1);
  });
});

describe('batch machine version 4 → 5 (groups redelivered whole)', () => {
  const rowAt = (machineVersion: number, redeliver: unknown[], inFlight: unknown[] = [null]) =>
    snapshotRow(machineVersion, { redeliver, inFlight, groupSize: 4 });

  it('reads a version 4 snapshot as it was: its entries to redeliver, one partition each', () => {
    const redeliver = [0, 1, 2, 3].map((index) => ({ index, attempt: 2 }));
    const state = parseState(rowAt(4, redeliver) as never)!;
    expect(state.machineVersion).toBe(BATCH_MACHINE_VERSION);
    expect((state.snapshot as { context: { redeliver: unknown } }).context.redeliver).toEqual(redeliver);
  });

  it('refuses, as corrupt, a group to redeliver or in flight whose members are not partitions of the batch', () => {
    for (const [redeliver, inFlight] of [
      [[{ index: 0, attempt: 2, more: 5 }], [null]],
      [[{ index: 0, attempt: 2, more: [1, 9] }], [null]],
      [[{ index: 'x', attempt: 2 }], [null]],
      [[null], [null]],
      [[], [{ index: 0, attempt: 1, more: 7 }]],
    ] as const) {
      expect(() => parseState(rowAt(5, [...redeliver], [...inFlight]) as never)).toThrow(
        expect.objectContaining({ code: 'STORE', corrupt: true }),
      );
    }
    // A group is fine.
    expect(parseState(rowAt(5, [{ index: 0, attempt: 2, more: [1, 2, 3] }]) as never)).toBeDefined();
  });

  it('refuses, as corrupt, partitions in flight or to redeliver that do not add up', () => {
    const corrupt = (redeliver: unknown[], inFlight: unknown[], running = 0, cursor = 4) => {
      const row = rowAt(5, redeliver, inFlight);
      const state = JSON.parse(row.state);
      Object.assign(state.snapshot.context, {
        running,
        cursor,
        config: { ...state.snapshot.context.config, lanes: inFlight.length },
      });
      return () => parseState({ ...row, state: JSON.stringify(state) } as never);
    };
    const refused = expect.objectContaining({ code: 'STORE', corrupt: true });
    // A member listed twice, in a group or across a lane and `redeliver`.
    expect(corrupt([{ index: 0, attempt: 2, more: [1, 1] }], [null])).toThrow(refused);
    expect(corrupt([{ index: 1, attempt: 2 }], [{ index: 0, attempt: 1, more: [1] }], 2)).toThrow(refused);
    expect(
      corrupt(
        [],
        [
          { index: 0, attempt: 1 },
          { index: 0, attempt: 1 },
        ],
        2,
      ),
    ).toThrow(refused);
    // One past the cursor: never dispatched, so never in flight.
    expect(corrupt([{ index: 2, attempt: 2 }], [null], 0, 2)).toThrow(refused);
    // `running` that is not the partitions on the lanes (the batch would never end, or end early).
    expect(corrupt([], [{ index: 0, attempt: 1, more: [1] }], 1)).toThrow(refused);
    expect(corrupt([], [null], 1)).toThrow(refused);
    // What adds up is read.
    expect(
      corrupt([{ index: 2, attempt: 2, more: [3] }], [{ index: 0, attempt: 1, more: [1] }], 2)(),
    ).toBeDefined();
  });
});

describe('partitions settled ahead of the cursor', () => {
  const rowWith = (settledAhead: unknown[], cursor = 1) =>
    snapshotRow(BATCH_MACHINE_VERSION, { cursor, loaded: 1, groupSize: 1, settledAhead });
  const contextOf = (state: unknown) =>
    (state as { snapshot: { context: Record<string, unknown> } }).snapshot.context;

  it('are read ascending, as dispatch steps over them (earlier builds kept a restart’s in the journal’s order)', () => {
    expect(contextOf(parseState(rowWith([3, 1, 2]) as never)).settledAhead).toEqual([1, 2, 3]);
  });

  it('are refused, as corrupt, when listed twice, before the cursor or past the batch (the batch would end early or never)', () => {
    const refused = expect.objectContaining({ code: 'STORE', corrupt: true });
    for (const settledAhead of [[2, 2], [0, 2], [1, 4], [1.5], ['2'], [null]])
      expect(() => parseState(rowWith(settledAhead) as never)).toThrow(refused);
  });
});
