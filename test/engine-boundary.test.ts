import { describe, expect, it } from 'vitest';
import {
  createEngine,
  defineJob,
  type Engine,
  MAX_ERROR_MESSAGE,
  memoryStore,
  type Store,
} from '../src/index.js';
import { storeKinds } from './support/stores.js';

// One definition of what a payload, a key and an id may be, identical on every store; numeric
// options bounded so timers never overflow; timed-out waits leave nothing behind.

const echo = defineJob({
  name: 'echo',
  partition: (items: Array<{ key: string; payload: unknown }>) => items,
  handler: (payload: unknown) => payload as never,
});

/** A generator that reuses one payload object between yields. */
const reusing = defineJob({
  name: 'reusing',
  partition: function* (n: number) {
    const p = { n: 0 };
    for (let i = 0; i < n; i++) {
      p.n = i;
      yield { key: `k${i}`, payload: p };
    }
  },
  handler: (payload: { n: number }, ctx) => ({ n: payload.n, key: ctx.key }),
  concurrency: 64,
});

const circular: Record<string, unknown> = { a: 1 };
circular.self = circular;

const badPayloads: Array<[string, unknown]> = [
  ['a function member', { f: () => 1 }],
  ['a BigInt', { n: 10n }],
  ['a cycle', circular],
  ['a Map', new Map([[1, 2]])],
  ['NaN', { x: Number.NaN }],
  ['a Date', { at: new Date(0) }],
  ['undefined in an array', [1, undefined]],
];

const kinds = await storeKinds('the boundary tests');

describe.each(kinds)('the boundary on the %s store', (_kind, makeStore) => {
  async function engineOn(store: Store): Promise<Engine> {
    const engine = createEngine({ jobs: [echo, reusing], store, logger: false });
    await engine.start();
    return engine;
  }

  it('captures each payload when it is yielded: a reused object gives each partition its own', async () => {
    const engine = await engineOn(makeStore());
    try {
      const batch = await engine.submit('reusing', 2500);
      expect((await engine.wait(batch.id)).status).toBe('COMPLETED');
      let wrong = 0;
      for await (const p of engine.partitions<{ n: number; key: string }>(batch.id))
        if (`k${p.result!.n}` !== p.key) wrong++;
      expect(wrong).toBe(0);
    } finally {
      await engine.stop();
    }
  });

  it.each(badPayloads)('refuses a payload with %s (VALIDATION), storing nothing', async (_what, payload) => {
    const engine = await engineOn(makeStore());
    try {
      await expect(
        engine.submit(
          'echo',
          [
            { key: 'a', payload: 1 },
            { key: 'b', payload },
          ],
          { id: 'bad' },
        ),
      ).rejects.toMatchObject({ code: 'VALIDATION' });
      expect(await engine.list()).toEqual([]);
      await expect(engine.get('bad')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      await engine.stop();
    }
  });

  it.each([
    ['a NUL', 'a\u0000b'],
    ['a lone surrogate', 'a\ud800b'],
    ['nothing', ''],
    ['too many characters', 'k'.repeat(1025)],
  ])('refuses a key with %s (VALIDATION)', async (_what, key) => {
    const engine = await engineOn(makeStore());
    try {
      await expect(engine.submit('echo', [{ key, payload: 1 }])).rejects.toMatchObject({
        code: 'VALIDATION',
      });
      expect(await engine.list()).toEqual([]);
    } finally {
      await engine.stop();
    }
  });

  it('refuses an id with a NUL or a lone surrogate, and the ids . and .. that no URL can name (VALIDATION); keeps unicode keys exactly', async () => {
    const engine = await engineOn(makeStore());
    try {
      for (const id of ['x\u0000y', 'x\udc00', '.', '..'])
        await expect(engine.submit('echo', [], { id })).rejects.toMatchObject({ code: 'VALIDATION' });
      expect(await engine.list()).toEqual([]);
      // Dots within an id are kept: only a whole path segment of dots is what a URL drops.
      expect((await engine.submit('echo', [], { id: '...' })).id).toBe('...');
      const batch = await engine.submit('echo', [{ key: 'clé 🔑 ключ', payload: { s: 'a\ud800' } }]);
      await engine.wait(batch.id);
      const views = [];
      for await (const view of engine.partitions(batch.id)) views.push(view);
      expect(views[0]).toMatchObject({ key: 'clé 🔑 ключ', result: { s: 'a\ud800' } });
    } finally {
      await engine.stop();
    }
  });
});

describe('bounded options', () => {
  it('refuses wait timeouts, list limits and lease times that timers cannot hold', async () => {
    const engine = createEngine({ jobs: [echo], store: memoryStore(), logger: false });
    await engine.start();
    try {
      const batch = await engine.submit('echo', []);
      for (const timeoutMs of [Number.NaN, 'abc', 1e12, -1])
        await expect(engine.wait(batch.id, { timeoutMs } as never)).rejects.toMatchObject({
          code: 'VALIDATION',
        });
      for (const limit of [Number.NaN, -1, 1.5])
        await expect(engine.list({ limit })).rejects.toMatchObject({ code: 'VALIDATION' });
    } finally {
      await engine.stop();
    }
    expect(() => createEngine({ jobs: [echo], leaseTtlMs: 1e10 })).toThrow(
      expect.objectContaining({ code: 'VALIDATION' }),
    );
    expect(() =>
      defineJob({ name: 'x', partition: () => [], handler: () => 1, retry: { attempts: 2, backoffMs: 3e9 } }),
    ).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
  });
});

describe('arguments', () => {
  it('a partitions filter with an unknown status and a listener that is not a function are refused', async () => {
    const engine = createEngine({ jobs: [echo], store: memoryStore(), logger: false });
    await engine.start();
    try {
      const batch = await engine.wait((await engine.submit('echo', [{ key: 'a', payload: 1 }])).id);
      const read = async () => {
        for await (const _ of engine.partitions(batch.id, { status: 'faild' } as never));
      };
      await expect(read()).rejects.toMatchObject({ code: 'VALIDATION' });
      expect(() => engine.subscribe(batch.id, 5 as never)).toThrow(
        expect.objectContaining({ code: 'VALIDATION' }),
      );
    } finally {
      await engine.stop();
    }
  });
});

describe('wait() with a timeout', () => {
  it('leaves no waiter behind once it timed out', async () => {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = defineJob({
      name: 'slow',
      partition: () => [{ key: 'a', payload: 1 }],
      handler: () => gate,
    });
    const engine = createEngine({ jobs: [slow], store: memoryStore(), logger: false });
    await engine.start();
    try {
      const batch = await engine.submit('slow', undefined);
      const results = await Promise.allSettled(
        Array.from({ length: 2000 }, () => engine.wait(batch.id, { timeoutMs: 1 })),
      );
      expect(
        results.every((r) => r.status === 'rejected' && (r.reason as { code: string }).code === 'TIMEOUT'),
      ).toBe(true);
      expect((engine as unknown as { watchers: { pendingWaits: number } }).watchers.pendingWaits).toBe(0);
      release();
      expect((await engine.wait(batch.id)).status).toBe('COMPLETED');
    } finally {
      await engine.stop();
    }
  });
});

describe('large errors', () => {
  it('are cut to documented sizes, and the summary stays small', async () => {
    const big = 'x'.repeat(256 * 1024);
    const failing = defineJob({
      name: 'failing',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: (i: number) => {
        if (i % 2) throw new Error(big);
        return i;
      },
      concurrency: 32,
    });
    const store = memoryStore();
    const engine = createEngine({ jobs: [failing], store, logger: false });
    await engine.start();
    try {
      const batch = await engine.submit('failing', 1000);
      const summary = await engine.wait(batch.id);
      expect(summary).toMatchObject({ status: 'PARTIAL', failed: 500 });
      expect(JSON.stringify(summary).length).toBeLessThan(150_000);
      expect(JSON.stringify(await engine.get(batch.id)).length).toBeLessThan(150_000);
      const row = await store.loadBatch(batch.id);
      expect(JSON.stringify(row?.state).length).toBeLessThan(300_000);
      for await (const p of engine.partitions(batch.id, { status: 'failed' })) {
        expect(p.error!.message.length).toBeLessThanOrEqual(MAX_ERROR_MESSAGE + 100);
        expect(p.error!.message).toContain('cut by partita');
      }
    } finally {
      await engine.stop();
    }
  });
});
