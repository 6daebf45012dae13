import { describe, expect, it } from 'vitest';
import type { BatchSummary, PartitionView } from '../../src/index.js';
import { engineFor, gatedInput, postJson, problem, serve, until } from './support.js';

describe('GET /batches/:id', () => {
  it('is 202 with Retry-After and Location while the batch runs, then 200 once it is final', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine, { basePath: '/api', retryAfterSeconds: 3 });
    const { latch, input } = gatedInput(3);
    await engine.submit('gated', input, { id: 'slow one' });
    await latch.arrived(2);

    const running = await fetch(`${base}/batches/slow%20one`);
    expect(running.status).toBe(202);
    expect(running.headers.get('retry-after')).toBe('3');
    expect(running.headers.get('location')).toBe('/api/batches/slow%20one');
    expect(running.headers.get('cache-control')).toBe('no-store');
    expect(await running.json()).toMatchObject({
      id: 'slow one',
      status: 'PROCESSING',
      running: 2,
      pending: 1,
    });

    latch.open();
    await engine.wait('slow one');
    const done = await fetch(`${base}/batches/slow%20one`);
    expect(done.status).toBe(200);
    expect(done.headers.get('retry-after')).toBeNull();
    expect(await done.json()).toMatchObject({ status: 'COMPLETED', succeeded: 3 });
  });

  it('is 202 while QUEUED too', async () => {
    const engine = await engineFor({ maxConcurrentBatches: 1 });
    const { base } = await serve(engine);
    const first = gatedInput(1);
    await engine.submit('gated', first.input, { id: 'first' });
    await engine.submit('echo', ['a'], { id: 'second' });
    const queued = await fetch(`${base}/batches/second`);
    expect(queued.status).toBe(202);
    expect(((await queued.json()) as BatchSummary).status).toBe('QUEUED');
  });

  it('is 404 NOT_FOUND for an unknown id; HEAD answers without a body', async () => {
    const { base } = await serve(await engineFor());
    expect(await problem(await fetch(`${base}/batches/nope`))).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
      instance: '/batches/nope',
    });
    const head = await fetch(`${base}/batches/nope`, { method: 'HEAD' });
    expect(head.status).toBe(404);
    expect(await head.text()).toBe('');
  });
});

describe('GET /batches', () => {
  it.each([3, 5, 12])(
    'pages through every older batch when %i batches are created between two pages',
    async (fresh) => {
      // Outside probe: with 3 created between pages of 2, the last batch shown was found past the
      // rows read, the page ended without a next cursor, and the 2 oldest were never listed; with
      // more than limit + 1 created, paging fell back to the offset and listed newer ones again.
      const engine = await engineFor();
      const { base } = await serve(engine);
      const tick = () => new Promise((r) => setTimeout(r, 2));
      const old = Array.from({ length: 6 }, (_, i) => `old-${i}`);
      for (const id of old) {
        await engine.submit('echo', ['a'], { id });
        await tick();
      }
      const page = async (q: string) =>
        (await (await fetch(`${base}/batches?limit=2${q}`)).json()) as {
          items: BatchSummary[];
          nextCursor?: string;
        };
      let p = await page('');
      const seen = p.items.map((s) => s.id);
      for (let i = 0; i < fresh; i++) {
        await engine.submit('echo', ['a'], { id: `new-${i}` });
        await tick();
      }
      while (p.nextCursor) {
        p = await page(`&cursor=${p.nextCursor}`);
        seen.push(...p.items.map((s) => s.id));
      }
      expect(seen).toEqual([...old].reverse());
    },
  );

  it('lists newest first, filters by status and job, and pages with an opaque cursor', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine);
    for (let i = 0; i < 5; i++)
      await engine.wait((await engine.submit('echo', ['a', 'fail'], { id: `p${i}` })).id);
    await engine.wait((await engine.submit('echo', ['a'], { id: 'ok' })).id);

    const all = (await (await fetch(`${base}/batches`)).json()) as {
      items: BatchSummary[];
      nextCursor?: string;
    };
    expect(all.items.map((s) => s.id)).toEqual(['ok', 'p4', 'p3', 'p2', 'p1', 'p0']);
    expect(all.nextCursor).toBeUndefined();

    const partial = (await (await fetch(`${base}/batches?status=PARTIAL&job=echo&limit=2`)).json()) as {
      items: BatchSummary[];
      nextCursor?: string;
    };
    expect(partial.items.map((s) => s.id)).toEqual(['p4', 'p3']);
    expect(partial.nextCursor).toEqual(expect.any(String));

    // A batch created meanwhile does not shift the next page.
    await engine.wait((await engine.submit('echo', ['a', 'fail'], { id: 'newer' })).id);
    const ids: string[] = [];
    let cursor = partial.nextCursor;
    while (cursor) {
      const page = (await (
        await fetch(`${base}/batches?status=PARTIAL&limit=2&cursor=${cursor}`)
      ).json()) as {
        items: BatchSummary[];
        nextCursor?: string;
      };
      ids.push(...page.items.map((s) => s.id));
      cursor = page.nextCursor;
    }
    expect(ids).toEqual(['p2', 'p1', 'p0']);

    const many = (await (await fetch(`${base}/batches?status=COMPLETED,PARTIAL`)).json()) as {
      items: BatchSummary[];
    };
    expect(many.items).toHaveLength(7);
    const none = (await (await fetch(`${base}/batches?job=other`)).json()) as { items: BatchSummary[] };
    expect(none.items).toEqual([]);
  });

  it('leaves out output and error stacks unless include=output', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine);
    await engine.wait((await engine.submit('echo', ['a', 'fail'], { id: 'with-output' })).id);
    await engine.wait((await engine.submit('broken', ['a'], { id: 'with-error' })).id);
    type Listing = { items: BatchSummary[] };
    const [error, output] = ((await (await fetch(`${base}/batches`)).json()) as Listing).items;
    expect(output!.output).toBeUndefined();
    expect(output!.failures[0]!.error).toMatchObject({ name: 'Error', message: 'boom' });
    expect(error!.error).toMatchObject({ message: 'finalize broke' });
    expect(error!.error!.stack).toBeUndefined();
    const [fullError, fullOutput] = (
      (await (await fetch(`${base}/batches?include=output`)).json()) as Listing
    ).items;
    expect(fullOutput!.output).toEqual({ done: 1 });
    expect(fullError!.error!.stack).toMatch(/finalize broke/);
    // The batch itself shows everything.
    const one = (await (await fetch(`${base}/batches/with-output`)).json()) as BatchSummary;
    expect(one.output).toEqual({ done: 1 });
    expect(((await (await fetch(`${base}/batches/with-error`)).json()) as BatchSummary).error!.stack).toMatch(
      /finalize broke/,
    );
  });

  it('refuses bad parameters with 400 VALIDATION naming them', async () => {
    const { base } = await serve(await engineFor());
    for (const [query, param] of [
      ['limit=0', 'limit'],
      ['limit=1001', 'limit'],
      ['limit=ten', 'limit'],
      ['limit=0x10', 'limit'],
      ['limit=1e2', 'limit'],
      ['limit=%205', 'limit'],
      ['cursor=not-a-cursor', 'cursor'],
      ['include=everything', 'include'],
    ]) {
      const p = await problem(await fetch(`${base}/batches?${query}`));
      expect(p).toMatchObject({ status: 400, code: 'VALIDATION' });
      expect(p.issues).toEqual([expect.objectContaining({ path: param })]);
    }
    expect(await problem(await fetch(`${base}/batches?status=DONE`))).toMatchObject({
      status: 400,
      code: 'VALIDATION',
    });
  });
});

describe('GET /batches/:id/partitions', () => {
  it('pages partitions in index order, filters by status, and shows results only with include=result', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine);
    const input = Array.from({ length: 7 }, (_, i) => (i % 3 === 2 ? 'fail' : `v${i}`));
    await engine.wait((await engine.submit('echo', input, { id: 'parts' })).id);

    type Page = { items: PartitionView[]; nextCursor?: string };
    const first = (await (await fetch(`${base}/batches/parts/partitions?limit=3`)).json()) as Page;
    expect(first.items.map((p) => p.index)).toEqual([0, 1, 2]);
    expect(first.items[0]).not.toHaveProperty('result');
    expect(first.items[0]).not.toHaveProperty('payload');
    expect(first.items[2]).toMatchObject({ key: 'k2', status: 'failed', error: { message: 'boom' } });
    const rest: PartitionView[] = [];
    let cursor = first.nextCursor;
    while (cursor) {
      const page = (await (
        await fetch(`${base}/batches/parts/partitions?limit=3&cursor=${cursor}`)
      ).json()) as Page;
      rest.push(...page.items);
      cursor = page.nextCursor;
    }
    expect(rest.map((p) => p.index)).toEqual([3, 4, 5, 6]);

    const failed = (await (await fetch(`${base}/batches/parts/partitions?status=failed`)).json()) as Page;
    expect(failed.items.map((p) => p.key)).toEqual(['k2', 'k5']);
    expect(failed.nextCursor).toBeUndefined();
    const results = (await (
      await fetch(`${base}/batches/parts/partitions?status=succeeded&include=result&limit=1`)
    ).json()) as Page;
    expect(results.items).toEqual([expect.objectContaining({ key: 'k0', result: { x: 'v0' } })]);
    expect(results.nextCursor).toEqual(expect.any(String));
  });

  it('is 404 for an unknown batch and 400 for a bad status or limit', async () => {
    const { base } = await serve(await engineFor());
    expect(await problem(await fetch(`${base}/batches/nope/partitions`))).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
    });
    await postJson(`${base}/batches`, { job: 'echo', input: ['a'], id: 'x' });
    expect(await problem(await fetch(`${base}/batches/x/partitions?status=done`))).toMatchObject({
      status: 400,
      code: 'VALIDATION',
    });
    expect(await problem(await fetch(`${base}/batches/x/partitions?limit=5000`))).toMatchObject({
      status: 400,
      code: 'VALIDATION',
    });
  });
});

describe('POST /batches/:id/cancel', () => {
  it('cancels a running batch with the reason given and answers with the CANCELLED summary', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine);
    const { latch, input } = gatedInput(4);
    await engine.submit('gated', input, { id: 'c1' });
    await latch.arrived(2);
    const res = await postJson(`${base}/batches/c1/cancel`, { reason: 'operator asked' });
    expect(res.status).toBe(200);
    const summary = (await res.json()) as BatchSummary;
    expect(summary).toMatchObject({
      status: 'CANCELLED',
      error: { code: 'CANCELLED', message: 'operator asked' },
    });
    // Without a body; a final batch is returned as it is.
    const again = await fetch(`${base}/batches/c1/cancel`, { method: 'POST' });
    expect(again.status).toBe(200);
    expect(((await again.json()) as BatchSummary).status).toBe('CANCELLED');
  });

  it('is 404 for an unknown batch, 400 for a bad body, and does nothing when authorize refuses', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine, { authorize: (_req, action) => action !== 'cancel' });
    const { latch, input } = gatedInput(1);
    await engine.submit('gated', input, { id: 'kept' });
    await latch.arrived(1);
    expect(await problem(await postJson(`${base}/batches/kept/cancel`, {}))).toMatchObject({
      status: 403,
      code: 'FORBIDDEN',
    });
    expect((await engine.get('kept')).status).toBe('PROCESSING');

    const open = await serve(engine);
    expect(await problem(await postJson(`${open.base}/batches/nope/cancel`, {}))).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
    });
    expect(await problem(await postJson(`${open.base}/batches/kept/cancel`, { reason: 42 }))).toMatchObject({
      status: 400,
      code: 'VALIDATION',
    });
    expect(await problem(await postJson(`${open.base}/batches/kept/cancel`, '{'))).toMatchObject({
      status: 400,
      code: 'VALIDATION',
    });
    expect((await engine.get('kept')).status).toBe('PROCESSING');
    latch.open();
    await until(engine, 'kept', (s) => s.status === 'COMPLETED');
  });
});

describe('pause, resume and retry-failed', () => {
  it('are 404 while the engine has no such method, and routed to it when it has', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine);
    await engine.wait((await engine.submit('echo', ['a', 'fail'], { id: 'r1' })).id);
    // An engine without retryFailed (an older partita): its route is 404.
    const older = Object.assign(Object.create(engine) as typeof engine, { retryFailed: undefined });
    const old = await serve(older);
    expect(
      await problem(await fetch(`${old.base}/batches/r1/retry-failed`, { method: 'POST' })),
    ).toMatchObject({
      status: 404,
      code: 'NO_ROUTE',
    });
    // This one has it: the PARTIAL batch runs its failed partition again (run 2).
    const retried = await fetch(`${base}/batches/r1/retry-failed`, { method: 'POST' });
    expect(retried.status).toBe(200);
    expect(((await retried.json()) as BatchSummary).run).toBe(2);
    expect(await engine.wait('r1')).toMatchObject({ status: 'PARTIAL', run: 2 });
    // The engine has pause and resume: a final batch can do neither (409 CONFLICT).
    for (const op of ['pause', 'resume'])
      expect(await problem(await fetch(`${base}/batches/r1/${op}`, { method: 'POST' }))).toMatchObject({
        status: 409,
        code: 'CONFLICT',
      });

    const calls: string[] = [];
    const later = Object.assign(Object.create(engine) as typeof engine, {
      pause: async (id: string) => {
        calls.push(`pause ${id}`);
        return engine.get(id);
      },
      resume: async (id: string) => {
        calls.push(`resume ${id}`);
        return engine.get(id);
      },
      retryFailed: async (id: string) => {
        calls.push(`retry ${id}`);
        return engine.get(id);
      },
    });
    const actions: string[] = [];
    const newer = await serve(later, {
      authorize: (_r, action) => {
        actions.push(action);
        return true;
      },
    });
    for (const op of ['pause', 'resume', 'retry-failed']) {
      const res = await fetch(`${newer.base}/batches/r1/${op}`, { method: 'POST' });
      expect(res.status).toBe(200);
      expect(((await res.json()) as BatchSummary).id).toBe('r1');
    }
    expect(calls).toEqual(['pause r1', 'resume r1', 'retry r1']);
    expect(actions).toEqual(['pause', 'resume', 'retry']);
    expect((await fetch(`${newer.base}/batches/r1/pause`)).status).toBe(405);
  });
});

describe('DELETE /batches (engine.prune)', () => {
  it('deletes the batches that ended before `before`, by status, job and limit; 400 for a bad parameter', async () => {
    const engine = await engineFor();
    const seen: string[] = [];
    const { base } = await serve(engine, {
      authorize: (_req, action) => {
        seen.push(action);
        return true;
      },
    });
    for (const id of ['e1', 'e2', 'e3']) await engine.wait((await engine.submit('echo', ['a'], { id })).id);
    await engine.wait((await engine.submit('echo', ['fail'], { id: 'f1' })).id);
    const before = new Date(Date.now() + 1).toISOString();
    while (Date.now() <= Date.parse(before)) await new Promise((resolve) => setImmediate(resolve));
    const { latch, input } = gatedInput(1);
    await engine.submit('gated', input, { id: 'running' });

    const prune = (query: string) => fetch(`${base}/batches?${query}`, { method: 'DELETE' });
    for (const [query, param] of [
      ['', 'before'],
      ['before=yesterday', 'before'],
      ['before=1e3', 'before'],
      [`before=${before}&limit=0`, 'limit'],
      [`before=${before}&olderThan=3`, 'olderThan'],
    ] as const)
      expect(await problem(await prune(query))).toMatchObject({
        status: 400,
        code: 'VALIDATION',
        issues: [{ path: param }],
      });
    expect(await problem(await prune(`before=${before}&status=QUEUED`))).toMatchObject({
      status: 400,
      code: 'VALIDATION',
    });

    const failedOnly = await prune(`before=${encodeURIComponent(before)}&status=PARTIAL,FAILED`);
    expect(failedOnly.status).toBe(200);
    expect(await failedOnly.json()).toEqual({ deleted: 1 });
    expect(await (await prune(`before=${Date.parse(before)}&job=echo&limit=2`)).json()).toEqual({
      deleted: 2,
    });
    expect(await (await prune(`before=2020-01-01`)).json()).toEqual({ deleted: 0 });
    expect((await engine.list()).map((s) => s.id).sort()).toEqual(['e3', 'running']);
    expect(seen.filter((a) => a === 'prune')).toHaveLength(9);
    latch.open();
    await engine.wait('running');
  });
});
