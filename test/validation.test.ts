import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  createEngine,
  defineJob,
  memoryStore,
  NotFoundError,
  PartitaError,
  postgresStore,
  sqliteStore,
  type ValidationError,
} from '../src/index.js';
import { items, noopJob, scriptedJob, startEngine } from './helpers.js';
import { sqlitePath } from './support/stores.js';

async function codeOf(promise: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    expect(err).toBeInstanceOf(PartitaError);
    return (err as PartitaError).code;
  }
  return undefined;
}

describe('bad input is refused with a code and leaves nothing behind', () => {
  it('invalid input: VALIDATION naming the field; nothing stored', async () => {
    const store = memoryStore();
    const engine = await startEngine({ jobs: [noopJob()], store });
    const err = await engine.submit('noop', { n: 'ten' }, { id: 'bad-input' }).catch((e) => e);
    expect(err.code).toBe('VALIDATION');
    expect(err.message).toContain('n');
    expect(err.issues[0].path).toBe('n');
    expect(await store.loadBatch('bad-input')).toBeUndefined();
    expect(await engine.list()).toEqual([]);
  });

  it.each([
    ['memory', () => memoryStore()],
    ['sqlite', () => sqliteStore({ path: sqlitePath() })],
  ])(
    'a batch id that is not a non-empty string: VALIDATION from every method (%s store)',
    async (_name, store) => {
      const engine = await startEngine({ jobs: [noopJob()], store: store() });
      try {
        for (const id of [{}, null, undefined, 5, '', ['a']] as never[]) {
          for (const call of [
            () => engine.get(id),
            () => engine.wait(id),
            () => engine.cancel(id),
            () => engine.pause(id),
            () => engine.resume(id),
            () => engine.retryFailed(id),
            () => engine.recount(id),
            () => engine.partitions(id)[Symbol.asyncIterator]().next(),
            () => engine.subscribe(id, () => {}),
          ])
            expect(await codeOf(call)).toBe('VALIDATION');
        }
        const batch = await engine.submit('noop', { n: 1 });
        expect(await codeOf(engine.cancel(batch.id, { why: 'no' } as never))).toBe('VALIDATION');
        expect(await codeOf(engine.cancel(batch.id, 'x'.repeat(1001)))).toBe('VALIDATION');
        expect(await codeOf(() => engine.observe(null as never))).toBe('VALIDATION');
        expect((await engine.wait(batch.id)).status).toBe('COMPLETED');
      } finally {
        await engine.stop();
      }
    },
  );

  it('unknown job: UNKNOWN_JOB naming the known ones', async () => {
    const engine = await startEngine({ jobs: [noopJob()] });
    const err = await engine.submit('nope', {}).catch((e) => e);
    expect(err.code).toBe('UNKNOWN_JOB');
    expect(err.message).toContain('noop');
  });

  it('a job definition that is not the registered one, though of the same name: UNKNOWN_JOB; nothing stored', async () => {
    const store = memoryStore();
    const engine = await startEngine({ jobs: [noopJob()], store });
    const impostor = noopJob();
    const err = await engine.submit(impostor, { n: 2 }, { id: 'impostor' }).catch((e) => e);
    expect(err.code).toBe('UNKNOWN_JOB');
    expect(err.message).toContain('not the one this engine was created with');
    expect(await store.loadBatch('impostor')).toBeUndefined();
    const schedule = await engine
      .schedule({ name: 'nightly', job: impostor, cron: '0 3 * * *', input: { n: 1 } })
      .catch((e) => e);
    expect(schedule.code).toBe('UNKNOWN_JOB');
    expect(await engine.schedules()).toEqual([]);
  });

  it('a job that is neither a definition nor a name: VALIDATION', async () => {
    const engine = await startEngine({ jobs: [noopJob()] });
    for (const job of [null, undefined, 42, {}]) {
      const err = await engine.submit(job as never, { n: 1 }).catch((e) => e);
      expect(err.code).toBe('VALIDATION');
      expect(err.message).toContain('job must be a job definition given to createEngine, or its name');
    }
  });

  it('bad submit options, bad engine options, bad job definitions: VALIDATION', async () => {
    const engine = await startEngine({ jobs: [noopJob()] });
    expect(await codeOf(engine.submit('noop', { n: 1 }, { priority: 'high' as never }))).toBe('VALIDATION');
    expect(await codeOf(engine.submit('noop', { n: 1 }, { when: 'sometimes' as never }))).toBe('VALIDATION');
    // `{}` and no options skip zod (src/validation.ts, parseOptions); anything else is still checked.
    expect(await codeOf(engine.submit('noop', { n: 1 }, { colour: 'red' } as never))).toBe('VALIDATION');
    const inherited = Object.create({ priority: 'high' }) as never;
    expect(await codeOf(engine.submit('noop', { n: 1 }, inherited))).toBe('VALIDATION');
    expect(await codeOf(engine.submit('noop', { n: 1 }, [] as never))).toBe('VALIDATION');
    const plain = await engine.submit('noop', { n: 1 }, {});
    // -0 is a valid priority, stored and shown as 0 (it was shown as -0 by the memory store).
    expect((await engine.submit('noop', { n: 1 }, { priority: -0 })).priority).toBe(0);
    expect(await codeOf(engine.wait(plain.id, { timeout: 5 } as never))).toBe('VALIDATION');
    expect(await codeOf(engine.wait(plain.id, { timeoutMs: -1 }))).toBe('VALIDATION');
    expect((await engine.wait(plain.id, {})).status).toBe('COMPLETED');
    expect((await engine.submit('noop', { n: 2 }, null as never)).status).toMatch(/QUEUED|PROCESSING/);
    expect(await codeOf(engine.submit('noop', { n: 1 }, { meta: { note: 'x'.repeat(1001) } }))).toBe(
      'VALIDATION',
    );
    const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'v']));
    expect(await codeOf(engine.submit('noop', { n: 1 }, { meta: labels }))).toBe('VALIDATION');
    expect(await codeOf(engine.submit('noop', { n: 1 }, { meta: { '': 'v' } }))).toBe('VALIDATION');
    expect(
      (await engine.submit('noop', { n: 1 }, { meta: { note: 'x'.repeat(1000) } })).meta?.note,
    ).toHaveLength(1000);
    expect(
      await codeOf(() => createEngine({ jobs: [noopJob()], workers: { minThreads: 4, maxThreads: 1 } })),
    ).toBe('VALIDATION');
    // A misspelt limit would be no limit at all (an outside probe: `maxOldGenSizeMb` was accepted).
    expect(
      await codeOf(() =>
        createEngine({ jobs: [noopJob()], workers: { resourceLimits: { maxOldGenSizeMb: 10 } as never } }),
      ),
    ).toBe('VALIDATION');
    expect(
      await codeOf(() =>
        createEngine({ jobs: [noopJob()], workers: { resourceLimits: { maxOldGenerationSizeMb: -1 } } }),
      ),
    ).toBe('VALIDATION');
    expect(await codeOf(() => createEngine({ jobs: [noopJob()], maxConcurrentBatches: 0 }))).toBe(
      'VALIDATION',
    );
    expect(
      await codeOf(() => createEngine({ jobs: [noopJob()], store: memoryStore(), colour: 'red' } as never)),
    ).toBe('VALIDATION');
    expect(await codeOf(() => createEngine({ jobs: [noopJob(), noopJob()], store: memoryStore() }))).toBe(
      'VALIDATION',
    );
    expect(await codeOf(() => defineJob({ name: 'Bad Name', partition: () => [], handler: () => 1 }))).toBe(
      'VALIDATION',
    );
    expect(
      await codeOf(() => defineJob({ name: 'both', partition: () => [], handler: () => 1, worker: '/x.js' })),
    ).toBe('VALIDATION');
    expect(await codeOf(() => defineJob({ name: 'neither', partition: () => [] } as never))).toBe(
      'VALIDATION',
    );
    expect(await codeOf(() => defineJob({ name: 'rel', partition: () => [], worker: './x.js' }))).toBe(
      'VALIDATION',
    );
    expect(
      await codeOf(() => defineJob({ name: 'c', partition: () => [], handler: () => 1, concurrency: 0 })),
    ).toBe('VALIDATION');
  });

  it('a job that did not come from defineJob, a worker module that is a directory: VALIDATION', async () => {
    // It looks like a job (name, partition) but was never checked: it would be stored and never run.
    const lookalike = { name: 'Bad Name', partition: () => [{ key: 'a', payload: 1 }] };
    expect(await codeOf(() => createEngine({ jobs: [lookalike as never], store: memoryStore() }))).toBe(
      'VALIDATION',
    );
    const dir = new URL('./fixtures/', import.meta.url);
    expect(await codeOf(() => defineJob({ name: 'dir', partition: () => [], worker: dir }))).toBe(
      'VALIDATION',
    );
    // A job defined by another copy of partita (a nested node_modules) is still a job.
    const copy = Object.create(null);
    for (const [k, v] of Object.entries(noopJob())) copy[k] = v;
    Object.defineProperty(copy, Symbol.for('partita.job'), { value: true });
    expect(() => createEngine({ jobs: [copy], store: memoryStore() })).not.toThrow();
  });

  it('store factories refuse unknown, misspelt and mistyped options with VALIDATION', async () => {
    const path = sqlitePath();
    for (const bad of [
      () => sqliteStore({ path, pth: path } as never),
      () => sqliteStore({ path: '' }),
      () => sqliteStore({ path, busyTimeoutMs: -1 }),
      () => sqliteStore({ path, synchronous: 'OFF' as never }),
      () => sqliteStore(undefined as never),
      () => postgresStore({ url: 'postgres://x' } as never),
      () => postgresStore({ connectionString: 5 as never }),
      () => postgresStore({ pool: {} as never }),
      () => postgresStore({ schema: 'a-b' }),
    ])
      expect(await codeOf(bad)).toBe('VALIDATION');
    expect(await codeOf(() => sqliteStore({ path, synchronous: 'FULL', busyTimeoutMs: 0 }))).toBeUndefined();
    expect(
      await codeOf(() => postgresStore({ connectionString: 'postgres://x', schema: undefined })),
    ).toBeUndefined();
  });

  it('retry without attempts: one attempt, as documented', () => {
    const job = defineJob({ name: 'r', partition: () => [], handler: () => 1, retry: { backoffMs: 200 } });
    expect(job.retry).toEqual({ attempts: 1, backoffMs: 200, maxBackoffMs: 30_000 });
  });

  it('a partition without a key, duplicate keys, or a throwing partition(): VALIDATION and nothing stored', async () => {
    const store = memoryStore();
    const job = (name: string, partition: () => Iterable<{ key: string; payload: unknown }>) =>
      defineJob({ name, partition, handler: () => 1 });
    const engine = await startEngine({
      store,
      jobs: [
        job('no-key', () => [{ key: 'a', payload: 1 }, { payload: 2 } as never]),
        job('dup', () => [
          { key: 'a', payload: 1 },
          { key: 'a', payload: 2 },
        ]),
        job('throws', () => {
          throw new Error('boom');
        }),
      ],
    });
    for (const name of ['no-key', 'dup', 'throws']) {
      expect(await codeOf(engine.submit(name, {}, { id: name }))).toBe('VALIDATION');
      expect(await store.loadBatch(name)).toBeUndefined();
    }
  });

  it.each(['memory', 'sqlite'] as const)(
    'a sync source read without promises still awaits partitions given as promises, and an iterator that breaks the protocol is VALIDATION (%s)',
    async (kind) => {
      // An outside probe: `ids.map(async …)` worked while sync sources were read through `for await`;
      // the sync read must keep it, and must turn a result that is not an object into VALIDATION.
      const store = kind === 'memory' ? memoryStore() : sqliteStore({ path: sqlitePath() });
      let closed = 0;
      const broken = (next: () => unknown) => () =>
        ({
          [Symbol.iterator]: () => ({
            next,
            return: () => {
              closed++;
              return { done: true, value: undefined };
            },
          }),
        }) as never;
      const engine = await startEngine({
        store,
        jobs: [
          defineJob({
            name: 'promised',
            partition: (ids: string[]) =>
              ids.map(async (id) => {
                if (id === 'bad') throw new Error('lookup failed');
                return { key: id, payload: id };
              }) as never,
            handler: (id: string) => id,
          }),
          defineJob({ name: 'not-an-object', partition: broken(() => 5), handler: () => 1 }),
          defineJob({
            name: 'getter-throws',
            partition: broken(() => ({
              get done(): boolean {
                throw new Error('done getter');
              },
            })),
            handler: () => 1,
          }),
        ],
      });
      try {
        const ids = Array.from({ length: 2_500 }, (_, i) => `k${i}`);
        const ok = await engine.submit('promised', ids);
        expect(ok.total).toBe(2_500);
        expect((await engine.wait(ok.id)).succeeded).toBe(2_500);
        const errors: Array<{ code?: string; message?: string }> = [];
        for (const [name, input] of [
          ['promised', ['a', 'bad']],
          ['not-an-object', null],
          ['getter-throws', null],
        ] as const)
          errors.push(await engine.submit(name, input, { id: name }).catch((e) => e));
        expect(errors.map((e) => e.code)).toEqual(['VALIDATION', 'VALIDATION', 'VALIDATION']);
        expect(errors.map((e) => e.message)).toEqual([
          'job "promised": partition() threw: lookup failed',
          'job "not-an-object": partition() threw: Iterator result 5 is not an object',
          'job "getter-throws": partition() threw: done getter',
        ]);
        // As `for…of`: an iterator that broke the protocol is not closed.
        expect(closed).toBe(0);
        expect((await engine.list()).map((b) => b.id)).toEqual([ok.id]);
      } finally {
        await engine.stop();
      }
    },
  );

  it('partition() may be async and return its array; anything else that is not iterable is VALIDATION saying what it was', async () => {
    const store = memoryStore();
    const engine = await startEngine({
      store,
      jobs: [
        defineJob({
          name: 'async-array',
          partition: async (n: number) => {
            await new Promise((resolve) => setImmediate(resolve));
            return Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i }));
          },
          handler: (i: number) => i,
        }),
        defineJob({ name: 'number', partition: (() => 7) as never, handler: () => 1 }),
        defineJob({
          name: 'rejects',
          partition: async () => Promise.reject(new Error('no rows')),
          handler: () => 1,
        }),
      ],
    });
    try {
      await engine.submit('async-array', 3, { id: 'a' });
      expect(await engine.wait('a')).toMatchObject({ status: 'COMPLETED', total: 3, succeeded: 3 });
      await expect(engine.submit('number', 1, { id: 'n' })).rejects.toMatchObject({
        code: 'VALIDATION',
        message: expect.stringContaining('partition() returned a number, not an iterable'),
      });
      await expect(engine.submit('rejects', 1, { id: 'r' })).rejects.toMatchObject({
        code: 'VALIDATION',
        message: expect.stringContaining('partition() threw: no rows'),
      });
      for (const id of ['n', 'r']) expect(await store.loadBatch(id)).toBeUndefined();
    } finally {
      await engine.stop();
    }
  });

  it('a dependency on an unknown batch or on itself: VALIDATION', async () => {
    const engine = await startEngine({ jobs: [noopJob()] });
    expect(await codeOf(engine.submit('noop', { n: 1 }, { after: ['ghost'] }))).toBe('VALIDATION');
    expect(await codeOf(engine.submit('noop', { n: 1 }, { id: 'self', after: ['self'] }))).toBe('VALIDATION');
  });

  it("messages show anyone's control characters as escapes; the structured fields keep them exactly", async () => {
    const engine = await startEngine({ jobs: [noopJob()] });
    const id = 'report\u001b]0;pwned\u0007\u202egpj.exe';
    const missing = (await engine.get(id).catch((err: unknown) => err)) as NotFoundError;
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing.message).toBe('Batch "report\\u001b]0;pwned\\u0007\\u202egpj.exe" not found');
    expect(missing.batchId).toBe(id);
    const after = (await engine
      .submit('noop', { n: 1 }, { after: [id] })
      .catch((err: unknown) => err)) as ValidationError;
    expect(after.message).toContain('report\\u001b]0;pwned\\u0007\\u202egpj.exe');
    expect(after.issues[0]?.message).toContain(id);
  });

  it('get/wait/cancel of an unknown batch: NOT_FOUND; submit before start: ENGINE_STATE', async () => {
    const engine = await startEngine({ jobs: [noopJob()] });
    expect(await codeOf(engine.get('missing'))).toBe('NOT_FOUND');
    expect(await codeOf(engine.wait('missing'))).toBe('NOT_FOUND');
    expect(await codeOf(engine.cancel('missing'))).toBe('NOT_FOUND');
    const idle = createEngine({ jobs: [noopJob()], store: memoryStore(), logger: false });
    expect(await codeOf(idle.submit('noop', { n: 1 }))).toBe('ENGINE_STATE');
  });

  it('wait and cancel before start and after stop: ENGINE_STATE naming the method called', async () => {
    const idle = createEngine({ jobs: [noopJob()], store: memoryStore(), logger: false });
    const stopped = await startEngine({ jobs: [noopJob()] });
    await stopped.stop();
    for (const engine of [idle, stopped]) {
      for (const [what, call] of [
        ['wait', () => engine.wait('x')],
        ['cancel', () => engine.cancel('x')],
      ] as const) {
        const err = await call().catch((e) => e);
        expect(err.code).toBe('ENGINE_STATE');
        expect(err.message).toMatch(new RegExp(`^${what}\\(\\) needs a started engine`));
      }
    }
  });

  it('submitting an existing id returns that batch instead of creating another', async () => {
    const engine = await startEngine({ jobs: [scriptedJob()] });
    const a = await engine.submit(
      'scripted',
      { items: items('ok', 3) },
      { id: 'same', meta: { tenant: 't1' } },
    );
    expect(a.meta).toEqual({ tenant: 't1' });
    const b = await engine.submit('scripted', { items: items('ok', 9) }, { id: 'same' });
    expect(b.id).toBe('same');
    expect(b.total).toBe(3);
    // Whatever the input: one that the job's schema refuses still gets the batch that exists.
    const c = await engine.submit('scripted', { items: 'not a list' } as never, { id: 'same' });
    expect(c.total).toBe(3);
    await engine.wait(a.id);
    expect((await engine.list()).filter((s) => s.id === 'same')).toHaveLength(1);
  });

  it('job input schemas are zod schemas and their output is what partition() receives', async () => {
    let seen: unknown;
    const job = defineJob({
      name: 'coerce',
      input: z.object({ n: z.coerce.number() }),
      partition: (input) => {
        seen = input;
        return [];
      },
      handler: () => 1,
    });
    const engine = await startEngine({ jobs: [job] });
    await engine.wait((await engine.submit('coerce', { n: '3' })).id);
    expect(seen).toEqual({ n: 3 });
  });
});
