import { describe, expect, it } from 'vitest';
import { createHandler } from '../../src/http/index.js';
import { createEngine, type Engine, memoryStore, PartitaError } from '../../src/index.js';
import { echo, engineFor, gated, later, postJson, problem, serve } from './support.js';

describe('errors as problem details', () => {
  it('answers 503 with Retry-After while the engine is not running, before start and after stop', async () => {
    const engine = createEngine({ jobs: [echo, gated], store: memoryStore(), logger: false });
    later(() => engine.stop());
    const { base } = await serve(engine, { retryAfterSeconds: 7 });
    const before = await fetch(`${base}/batches`);
    expect(await problem(before)).toMatchObject({
      status: 503,
      code: 'ENGINE_STATE',
      title: 'Service Unavailable',
    });
    expect(before.headers.get('retry-after')).toBe('7');
    expect((await postJson(`${base}/batches`, { job: 'echo', input: [] })).status).toBe(503);

    await engine.start();
    expect((await fetch(`${base}/batches`)).status).toBe(200);
    await engine.stop();
    expect(await problem(await fetch(`${base}/batches/x`))).toMatchObject({
      status: 503,
      code: 'ENGINE_STATE',
    });
  });

  it('answers 500 without the message or stack of an unexpected error, and tells onError', async () => {
    const engine = await engineFor();
    const broken = Object.assign(Object.create(engine) as Engine, {
      list: async () => {
        throw new Error('password=hunter2 at db.internal:5432');
      },
    });
    const reported: unknown[] = [];
    const { base } = await serve(broken, { onError: (err) => reported.push(err) });
    const res = await fetch(`${base}/batches`);
    const text = await res.text();
    expect(res.status).toBe(500);
    expect(text).not.toMatch(/hunter2|db\.internal|at /);
    expect(JSON.parse(text)).toMatchObject({ status: 500, code: 'INTERNAL', title: 'Internal Server Error' });
    expect(reported).toEqual([expect.objectContaining({ message: 'password=hunter2 at db.internal:5432' })]);
  });

  it('answers 404 NO_ROUTE outside the routes and outside the base path', async () => {
    const { base } = await serve(await engineFor(), { basePath: '/partita/' });
    expect(base.endsWith('/partita/')).toBe(true);
    const root = base.replace(/\/partita\/$/, '');
    expect(await problem(await fetch(`${root}/partita/nothing`))).toMatchObject({
      status: 404,
      code: 'NO_ROUTE',
    });
    expect(await problem(await fetch(`${root}/batches`))).toMatchObject({ status: 404, code: 'NO_ROUTE' });
    expect(await problem(await fetch(`${root}/partita/batches/a/b/c`))).toMatchObject({
      status: 404,
      code: 'NO_ROUTE',
    });
    expect((await fetch(`${root}/partita/batches`)).status).toBe(200);
    expect((await fetch(`${root}/partita/batches/`)).status).toBe(200);
  });

  it('sends the response authorize returns, and a 500 when authorize throws; nothing runs in either case', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine, {
      authorize: (req) => {
        const auth = req.headers.get('authorization');
        if (auth === 'explode') throw new Error('authorizer bug');
        if (!auth)
          return new Response(null, {
            status: 401,
            headers: { 'www-authenticate': 'Bearer realm="partita"' },
          });
        return auth === 'Bearer ok';
      },
    });
    const anonymous = await postJson(`${base}/batches`, { job: 'echo', input: ['a'] });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="partita"');
    const exploding = await postJson(
      `${base}/batches`,
      { job: 'echo', input: ['a'] },
      { authorization: 'explode' },
    );
    expect(await problem(exploding)).toMatchObject({ status: 500 });
    expect(await engine.list()).toEqual([]);
    expect((await fetch(`${base}/batches`, { headers: { authorization: 'Bearer ok' } })).status).toBe(200);
  });

  it('refuses bad options at once', () => {
    const engine = createEngine({ jobs: [echo], store: memoryStore(), logger: false });
    expect(() => createHandler(engine, { basePath: 'partita' })).toThrow(/basePath/);
    // Paths no request's URL carries as given: they would match nothing (an outside probe).
    for (const basePath of ['/é', '/ops console', '/p/../x', '/p?x=1', '/p#x', '/./p'])
      expect(() => createHandler(engine, { basePath })).toThrow(/basePath/);
    expect(() => createHandler(engine, { basePath: '/%C3%A9/ops%20console/' })).not.toThrow();
    expect(() => createHandler(engine, { maxBodyBytes: 0 })).toThrow(/maxBodyBytes/);
    expect(() => createHandler(engine, { retryAfterSeconds: 1.5 })).toThrow(/retryAfterSeconds/);
    // Each wrong type or unknown option is a VALIDATION error naming it, never a TypeError.
    for (const [options, field] of [
      [{ basePath: 5 }, 'basePath'],
      [{ metrics: 'no' }, 'metrics'],
      [{ authorize: true }, 'authorize'],
      [{ basepath: '/p' }, 'basepath'],
    ] as const) {
      const err = (() => {
        try {
          createHandler(engine, options as never);
        } catch (e) {
          return e as PartitaError;
        }
      })();
      expect(err).toBeInstanceOf(PartitaError);
      expect(err?.code).toBe('VALIDATION');
      expect(err?.message).toContain(field);
    }
    for (const notAnEngine of [{}, undefined, null]) {
      expect(() => createHandler(notAnEngine as never)).toThrow(/engine from createEngine/);
    }
  });

  it('works as a plain fetch handler, without any server', async () => {
    const engine = await engineFor();
    const handler = createHandler(engine, { basePath: '/p', metrics: false });
    const res = await handler(
      new Request('http://any.host/p/batches', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ job: 'echo', input: ['a'], id: 'direct' }),
      }),
    );
    expect(res.status).toBe(201);
    expect((await handler(new Request('http://any.host/p/metrics'))).status).toBe(404);
  });
});

describe('the dashboard under /ui', () => {
  it('is handed to the dashboard after authorize("ui"); a path it does not serve is 404', async () => {
    const asked: string[] = [];
    const { base } = await serve(await engineFor(), {
      basePath: '/partita',
      authorize: (req, action) => {
        asked.push(action);
        return req.headers.get('authorization') === 'yes';
      },
    });
    expect(await problem(await fetch(`${base}/ui`))).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    const page = await fetch(`${base}/ui`, { headers: { authorization: 'yes' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const missing = await fetch(`${base}/ui/no/such/page`, { headers: { authorization: 'yes' } });
    expect(await problem(missing)).toMatchObject({ status: 404, code: 'NO_ROUTE' });
    expect(asked).toEqual(['ui', 'ui', 'ui']);
  });
});
