import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { createEngine, defineJob, memoryStore, sqliteStore } from '../src/index.js';
import { sqlitePath } from './support/stores.js';

// Job triggers: when a batch of a job ends, each matching trigger submits its child batch, id
// `${parentId}>${job}`, exactly once (also across a crash between the parent's end and the submit).

const parts = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i }));

describe('job triggers', () => {
  it('A → B when succeeded → C when settled; a failed parent fires only "failed" triggers', async () => {
    const ran: string[] = [];
    const a = defineJob({
      name: 'a',
      partition: parts,
      handler: (i: number) => i,
      triggers: [
        { job: 'b', when: 'succeeded', input: (s) => s.succeeded },
        { job: 'report', when: 'failed', input: () => 1 },
      ],
    });
    const b = defineJob({
      name: 'b',
      partition: parts,
      handler: (i: number, ctx) => {
        ran.push(ctx.batchId);
        if (i === 1) throw new Error('b fails once');
        return i;
      },
      triggers: [{ job: 'c', when: 'settled', input: () => 1 }],
    });
    const c = defineJob({ name: 'c', partition: parts, handler: (i: number) => i });
    const report = defineJob({ name: 'report', partition: parts, handler: (i: number) => i });
    const engine = createEngine({ jobs: [a, b, c, report], store: memoryStore(), logger: false });
    await engine.start();
    try {
      const parent = await engine.wait((await engine.submit('a', 3, { id: 'a1' })).id);
      expect(parent.status).toBe('COMPLETED');
      expect(parent.triggered).toEqual([{ job: 'b', id: 'a1>b' }]);
      const child = await engine.wait('a1>b');
      expect(child).toMatchObject({ job: 'b', status: 'PARTIAL', total: 3 });
      expect(child.triggered).toEqual([{ job: 'c', id: 'a1>b>c' }]);
      expect((await engine.wait('a1>b>c')).status).toBe('COMPLETED');
      await expect(engine.get('a1>report')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect((await engine.get('a1')).triggered).toEqual([{ job: 'b', id: 'a1>b' }]);
    } finally {
      await engine.stop();
    }
  });

  it('an id or schedule name too long to leave room for the children ids is refused up front (VALIDATION), nothing stored', async () => {
    const child = defineJob({ name: 'child', partition: parts, handler: (i: number) => i });
    const parent = defineJob({
      name: 'parent',
      partition: parts,
      handler: (i: number) => i,
      triggers: [{ job: 'child', when: 'settled', input: () => 1 }],
    });
    // A child id is `${id}>child`, and `#NNNN` after a retryFailed: at most 200 characters.
    const most = 200 - '>child#NNNN'.length;
    const store = memoryStore();
    const engine = createEngine({ jobs: [parent, child], store, logger: false });
    await engine.start();
    try {
      const long = 'p'.repeat(most + 1);
      await expect(engine.submit('parent', 1, { id: long })).rejects.toMatchObject({
        code: 'VALIDATION',
        issues: [{ path: 'id' }],
      });
      expect(await store.loadBatch(long)).toBeUndefined();
      // A child job with no triggers takes the longest id.
      expect((await engine.submit('child', 1, { id: long })).id).toBe(long);
      const fits = 'q'.repeat(most);
      expect((await engine.wait((await engine.submit('parent', 1, { id: fits })).id)).triggered).toEqual([
        { job: 'child', id: `${fits}>child` },
      ]);
      expect((await engine.wait(`${fits}>child`)).status).toBe('COMPLETED');
      // A schedule's batch ids are `${name}@${ISO time}` (25 more characters).
      const name = 's'.repeat(most - 25 + 1);
      await expect(
        engine.schedule({ name, cron: '0 3 * * *', job: 'parent', input: 1 }),
      ).rejects.toMatchObject({ code: 'VALIDATION', issues: [{ path: 'name' }] });
      expect(await engine.schedules()).toEqual([]);
    } finally {
      await engine.stop();
    }
    expect(() => defineJob({ name: 'j'.repeat(101), partition: parts, handler: (i: number) => i })).toThrow(
      expect.objectContaining({ code: 'VALIDATION' }),
    );
  });

  it("the id limit covers a chain: a → b → c leaves room for c's ids below b's (VALIDATION at the submit, not at b's end)", async () => {
    const c = defineJob({ name: 'c', partition: parts, handler: (i: number) => i });
    const b = defineJob({
      name: 'b',
      partition: parts,
      handler: (i: number) => i,
      triggers: [{ job: 'c', when: 'settled', input: () => 1 }],
    });
    const a = defineJob({
      name: 'a',
      partition: parts,
      handler: (i: number) => i,
      triggers: [{ job: 'b', when: 'settled', input: () => 1 }],
    });
    const most = 200 - '>b#NNNN'.length - '>c#NNNN'.length;
    const engine = createEngine({ jobs: [a, b, c], store: memoryStore(), logger: false });
    await engine.start();
    try {
      // One longer was accepted before, and b's end recorded c refused (VALIDATION) on b.
      await expect(engine.submit('a', 1, { id: 'x'.repeat(most + 1) })).rejects.toMatchObject({
        code: 'VALIDATION',
        issues: [{ path: 'id' }],
      });
      const fits = 'y'.repeat(most);
      await engine.wait((await engine.submit('a', 1, { id: fits })).id);
      const middle = await engine.wait(`${fits}>b`);
      expect(middle.triggered).toEqual([{ job: 'c', id: `${fits}>b>c` }]);
      expect((await engine.wait(`${fits}>b>c`)).status).toBe('COMPLETED');
      await expect(
        engine.schedule({ name: 's'.repeat(most - 25 + 1), cron: '0 3 * * *', job: 'a', input: 1 }),
      ).rejects.toMatchObject({ code: 'VALIDATION', issues: [{ path: 'name' }] });
    } finally {
      await engine.stop();
    }
    // A chain so long that even a generated id (36 characters) leaves no room: refused up front.
    // Three triggers below names of 60 characters: 3 × 66 leave 2 characters for the first id.
    const chain = Array.from({ length: 4 }, (_, i) =>
      defineJob({
        name: `${'n'.repeat(59)}${i}`,
        partition: parts,
        handler: (k: number) => k,
        triggers: i < 3 ? [{ job: `${'n'.repeat(59)}${i + 1}`, when: 'settled', input: () => 1 }] : [],
      }),
    );
    expect(() => createEngine({ jobs: chain, store: memoryStore(), logger: false })).toThrow(
      expect.objectContaining({ code: 'VALIDATION', message: expect.stringContaining('too long') }),
    );
  });

  it('an async trigger input is awaited; two triggers of one child job that fire together are refused', async () => {
    const seen: unknown[] = [];
    const child = defineJob({
      name: 'child',
      partition: (n: number) => parts(n),
      handler: (i: number) => {
        seen.push(i);
        return i;
      },
    });
    const trigger = (when: 'succeeded' | 'failed' | 'settled', input: () => unknown) => ({
      job: 'child',
      when,
      input,
    });
    const parent = defineJob({
      name: 'parent',
      partition: parts,
      handler: (i: number) => i,
      // Mutually exclusive: allowed, though both name `child`.
      triggers: [trigger('succeeded', async () => 3), trigger('failed', () => 1)],
    });
    const engine = createEngine({ jobs: [parent, child], store: memoryStore(), logger: false });
    await engine.start();
    try {
      await engine.wait((await engine.submit('parent', 1, { id: 'p' })).id);
      // The promise was not the input (a schema-less job got it, and made no partition).
      expect((await engine.wait('p>child')).total).toBe(3);
    } finally {
      await engine.stop();
    }
    for (const [w1, w2] of [
      ['succeeded', 'settled'],
      ['settled', 'failed'],
      ['failed', 'failed'],
    ] as const) {
      const both = defineJob({
        name: 'parent',
        partition: parts,
        handler: (i: number) => i,
        triggers: [trigger(w1, () => 1), trigger(w2, () => 2)],
      });
      expect(() => createEngine({ jobs: [both, child], store: memoryStore(), logger: false })).toThrow(
        expect.objectContaining({ code: 'VALIDATION', message: expect.stringContaining('share the id') }),
      );
    }
  });

  it('a trigger whose input throws or is refused is recorded on the parent; nothing else is affected', async () => {
    const a = defineJob({
      name: 'a',
      partition: parts,
      handler: (i: number) => i,
      triggers: [
        {
          job: 'b',
          when: 'settled',
          input: () => {
            throw new Error('no input for b');
          },
        },
        { job: 'c', when: 'settled', input: () => -1 }, // c's input schema refuses it
        { job: 'd', when: 'settled', input: () => 2 },
      ],
    });
    const { z } = await import('zod');
    const b = defineJob({ name: 'b', partition: parts, handler: (i: number) => i });
    const c = defineJob({ name: 'c', input: z.number().min(0), partition: parts, handler: (i: number) => i });
    const d = defineJob({ name: 'd', partition: parts, handler: (i: number) => i });
    const engine = createEngine({ jobs: [a, b, c, d], store: memoryStore(), logger: false });
    await engine.start();
    try {
      const parent = await engine.wait((await engine.submit('a', 1, { id: 'p' })).id);
      expect(parent.status).toBe('COMPLETED');
      expect(parent.triggered).toEqual([
        { job: 'b', id: 'p>b', error: expect.objectContaining({ message: 'no input for b' }) },
        { job: 'c', id: 'p>c', error: expect.objectContaining({ code: 'VALIDATION' }) },
        { job: 'd', id: 'p>d' },
      ]);
      expect((await engine.wait('p>d')).status).toBe('COMPLETED');
      await expect(engine.get('p>b')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      await engine.stop();
    }
  });

  it("a child's id already taken by a batch of another job is recorded as CONFLICT, not as the child", async () => {
    const load = defineJob({ name: 'load', partition: parts, handler: (i: number) => i });
    const audit = defineJob({ name: 'audit', partition: parts, handler: (i: number) => i });
    const extract = defineJob({
      name: 'extract',
      partition: parts,
      handler: (i: number) => i,
      triggers: [{ job: 'load', when: 'succeeded', input: () => 1 }],
    });
    const engine = createEngine({ jobs: [extract, load, audit], store: memoryStore(), logger: false });
    await engine.start();
    try {
      await engine.wait((await engine.submit('audit', 1, { id: 'x1>load' })).id);
      const parent = await engine.wait((await engine.submit('extract', 1, { id: 'x1' })).id);
      expect(parent.status).toBe('COMPLETED');
      expect(parent.triggered).toEqual([
        { job: 'load', id: 'x1>load', error: expect.objectContaining({ code: 'CONFLICT' }) },
      ]);
      expect((await engine.get('x1>load')).job).toBe('audit');
    } finally {
      await engine.stop();
    }
  });

  it('an unknown job in a trigger, or a cycle of triggers, is refused by createEngine', () => {
    const one = (name: string, to: string) =>
      defineJob({
        name,
        partition: parts,
        handler: (i: number) => i,
        triggers: [{ job: to, when: 'settled', input: () => 1 }],
      });
    expect(() => createEngine({ jobs: [one('a', 'nope')], logger: false })).toThrow(
      expect.objectContaining({ code: 'VALIDATION' }),
    );
    expect(() =>
      createEngine({ jobs: [one('a', 'b'), one('b', 'c'), one('c', 'a')], logger: false }),
    ).toThrow(expect.objectContaining({ code: 'VALIDATION', message: expect.stringContaining('cycle') }));
    expect(() =>
      defineJob({
        name: 'x',
        partition: parts,
        handler: () => 1,
        triggers: [{ job: 'y', when: 'always' } as never],
      }),
    ).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
  });

  it('SIGKILL between the parent’s last outcome and the child’s submit: B and C each run once after a restart', async () => {
    const path = sqlitePath();
    const script = fileURLToPath(new URL('./fixtures/trigger-crash.mjs', import.meta.url));
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('triggering')) child.kill('SIGKILL');
      });
      child.on('error', reject);
      child.on('exit', () => resolve());
    });
    const runs = new Map<string, number>();
    const count = (_: number, ctx: { batchId: string }) => {
      runs.set(ctx.batchId, (runs.get(ctx.batchId) ?? 0) + 1);
      return 1;
    };
    const a = defineJob({
      name: 'a',
      partition: parts,
      handler: count,
      triggers: [{ job: 'b', when: 'succeeded', input: () => 2 }],
    });
    const b = defineJob({
      name: 'b',
      partition: parts,
      handler: count,
      triggers: [{ job: 'c', when: 'settled', input: () => 1 }],
    });
    const c = defineJob({ name: 'c', partition: parts, handler: count });
    const engine = createEngine({ jobs: [a, b, c], store: sqliteStore({ path }), logger: false });
    await engine.start();
    try {
      expect((await engine.wait('a1')).status).toBe('COMPLETED');
      expect((await engine.wait('a1>b')).status).toBe('COMPLETED');
      expect((await engine.wait('a1>b>c')).status).toBe('COMPLETED');
      // b and c were created once: their partitions ran once each (2 and 1), a's none again.
      expect(runs.get('a1>b')).toBe(2);
      expect(runs.get('a1>b>c')).toBe(1);
      expect(runs.get('a1') ?? 0).toBe(0);
      const all = await engine.list();
      expect(all.map((s) => s.id).sort()).toEqual(['a1', 'a1>b', 'a1>b>c']);
    } finally {
      await engine.stop();
    }
  }, 30_000);

  it('the final state waits for the triggers: stored neither by the journal timer nor by stop() while they submit', async () => {
    const path = sqlitePath();
    const Database = (await import('better-sqlite3')).default;
    const statusInStore = () => {
      const db = new Database(path, { readonly: true });
      try {
        return (db.prepare('SELECT status FROM batches WHERE id = ?').get('a1') as { status: string }).status;
      } finally {
        db.close();
      }
    };
    const seen: string[] = [];
    let stopping: Promise<void> | undefined;
    let stopCalled!: () => void;
    const stopCall = new Promise<void>((resolve) => {
      stopCalled = resolve;
    });
    // flushDelayMs 0: the journal's timer would store the final state at the first turn of the loop.
    const engineWith = (onSecond: (engine: ReturnType<typeof createEngine>) => void) => {
      const a = defineJob({
        name: 'a',
        partition: parts,
        handler: (i: number) => i,
        triggers: [1, 2, 3].map((n) => ({
          job: `b${n}`,
          when: 'settled' as const,
          input: () => {
            // What a SIGKILL now would leave: the parent must not be final before every trigger is in.
            seen.push(statusInStore());
            if (n === 2) onSecond(engine);
            return n;
          },
        })),
      });
      const bs = [1, 2, 3].map((n) =>
        defineJob({ name: `b${n}`, partition: parts, handler: (i: number) => i }),
      );
      const engine = createEngine({
        jobs: [a, ...bs],
        store: sqliteStore({ path }),
        logger: false,
        flushDelayMs: 0,
      });
      return engine;
    };
    const engine = engineWith((e) => {
      stopping = e.stop();
      stopCalled();
    });
    await engine.start();
    await engine.submit('a', 2, { id: 'a1' });
    await stopCall;
    await stopping;
    expect(seen.every((s) => s !== 'COMPLETED')).toBe(true);
    expect(statusInStore()).not.toBe('COMPLETED');

    // Restarted: finalization runs again, and each trigger's batch is submitted once, none refused.
    const second = engineWith(() => {});
    await second.start();
    try {
      const parent = await second.wait('a1');
      expect(parent.status).toBe('COMPLETED');
      expect(parent.triggered).toEqual([1, 2, 3].map((n) => ({ job: `b${n}`, id: `a1>b${n}` })));
      for (const n of [1, 2, 3]) expect((await second.wait(`a1>b${n}`)).status).toBe('COMPLETED');
      expect(seen.every((s) => s !== 'COMPLETED')).toBe(true);
      expect((await second.list()).map((s) => s.id).sort()).toEqual(['a1', 'a1>b1', 'a1>b2', 'a1>b3']);
    } finally {
      await second.stop();
    }
  }, 30_000);

  describe('a cancel while a trigger computes its input (outside probe: it hung, or ended COMPLETED)', () => {
    for (const kind of ['sqlite', 'memory'] as const) {
      it(`${kind}: ends the batch CANCELLED; the triggers not yet submitted never are, even an input that never settles`, async () => {
        const started: string[] = [];
        let inputStarted!: () => void;
        const inputRunning = new Promise<void>((resolve) => {
          inputStarted = resolve;
        });
        let releaseSlow!: (n: number) => void;
        const a = defineJob({
          name: 'a',
          partition: parts,
          handler: (i: number) => i,
          triggers: [
            { job: 'b1', when: 'settled', input: () => 1 },
            {
              job: 'b2',
              when: 'settled',
              // Answers only when the test says so, after the cancel.
              input: () =>
                new Promise<number>((resolve) => {
                  releaseSlow = resolve;
                  inputStarted();
                }),
            },
            { job: 'b3', when: 'settled', input: () => 3 },
          ],
        });
        const never = defineJob({
          name: 'never',
          partition: parts,
          handler: (i: number) => i,
          triggers: [{ job: 'b1', when: 'settled', input: () => new Promise<number>(() => {}) }],
        });
        const bs = [1, 2, 3].map((n) =>
          defineJob({
            name: `b${n}`,
            partition: parts,
            handler: (i: number, ctx) => {
              started.push(ctx.batchId);
              return i;
            },
          }),
        );
        const store = kind === 'sqlite' ? sqliteStore({ path: sqlitePath() }) : memoryStore();
        const engine = createEngine({ jobs: [a, never, ...bs], store, logger: false });
        await engine.start();
        try {
          await engine.submit('a', 2, { id: 'p' });
          await inputRunning;
          expect((await engine.get('p')).status).toBe('FINALIZING');
          const cancelled = await engine.cancel('p', 'changed my mind');
          expect(cancelled).toMatchObject({ status: 'CANCELLED', succeeded: 2, failed: 0 });
          releaseSlow(2);
          // The first trigger had submitted before the cancel, and its batch runs; b2 and b3 never do.
          expect((await engine.wait('p>b1')).status).toBe('COMPLETED');
          await expect(engine.get('p>b2')).rejects.toMatchObject({ code: 'NOT_FOUND' });
          await expect(engine.get('p>b3')).rejects.toMatchObject({ code: 'NOT_FOUND' });
          // The parent lists the child it submitted before the cancel.
          expect(await engine.get('p')).toMatchObject({
            status: 'CANCELLED',
            triggered: [{ job: 'b1', id: 'p>b1' }],
          });

          await engine.submit('never', 1, { id: 'n' });
          await vi.waitFor(async () => expect((await engine.get('n')).status).toBe('FINALIZING'));
          expect(await engine.cancel('n')).toMatchObject({ status: 'CANCELLED', succeeded: 1 });
          await expect(engine.get('n>b1')).rejects.toMatchObject({ code: 'NOT_FOUND' });
          expect(started.sort()).toEqual(['p>b1']);
        } finally {
          await engine.stop();
        }
      });
    }
  });
});
