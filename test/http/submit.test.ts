import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { engineFor, postJson, problem, serve } from './support.js';

describe('POST /batches', () => {
  it('creates a batch (201 with its summary and Location), and answers 200 with the same batch for a known id', async () => {
    const { base, engine } = await serve(await engineFor(), { basePath: '/partita' });
    const res = await postJson(`${base}/batches`, {
      job: 'echo',
      input: ['a', 'b'],
      id: 'b-1',
      priority: 3,
      meta: { by: 'test' },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe('/partita/batches/b-1');
    const created = await res.json();
    expect(created).toMatchObject({ id: 'b-1', job: 'echo', total: 2, priority: 3, meta: { by: 'test' } });
    expect((await engine.wait('b-1')).status).toBe('COMPLETED');

    const again = await postJson(`${base}/batches`, {
      job: 'echo',
      input: ['something', 'else', 'entirely'],
      id: 'b-1',
    });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ id: 'b-1', total: 2, status: 'COMPLETED' });
    expect((await engine.list()).length).toBe(1);
  });

  it('gives a new id when none is given', async () => {
    const { base } = await serve(await engineFor());
    const res = await postJson(`${base}/batches`, { job: 'echo', input: [] });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { id: string };
    expect(body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('location')).toBe(`/batches/${body.id}`);
  });

  it('answers 400 VALIDATION for malformed JSON, a body that is not an object, unknown fields and bad options', async () => {
    const { base, engine } = await serve(await engineFor());
    const malformed = await problem(await postJson(`${base}/batches`, '{"job": "echo", '));
    expect(malformed).toMatchObject({
      status: 400,
      code: 'VALIDATION',
      type: 'urn:partita:problem:validation',
    });
    expect(malformed.detail).toMatch(/not valid JSON/);

    for (const body of [[1, 2], 'plain', { input: [] }, { job: 'echo', input: [], colour: 'red' }]) {
      const p = await problem(await postJson(`${base}/batches`, JSON.stringify(body)));
      expect(p).toMatchObject({ status: 400, code: 'VALIDATION' });
      expect(Array.isArray(p.issues)).toBe(true);
    }
    const badPriority = await problem(
      await postJson(`${base}/batches`, { job: 'echo', input: [], priority: 'high' }),
    );
    expect(badPriority).toMatchObject({ status: 400, code: 'VALIDATION' });
    expect(badPriority.issues).toEqual([expect.objectContaining({ path: 'priority' })]);
    const badInput = await problem(
      await postJson(`${base}/batches`, { job: 'echo', input: { not: 'an array' } }),
    );
    expect(badInput).toMatchObject({ status: 400, code: 'VALIDATION' });
    expect(await engine.list()).toEqual([]);
  });

  it('answers 400 UNKNOWN_JOB for a job the engine does not have', async () => {
    const { base } = await serve(await engineFor());
    const p = await problem(await postJson(`${base}/batches`, { job: 'no-such-job', input: [] }));
    expect(p).toMatchObject({ status: 400, code: 'UNKNOWN_JOB', title: 'Bad Request', instance: '/batches' });
  });

  it('answers 415 for a body that is not JSON', async () => {
    const { base } = await serve(await engineFor());
    const res = await fetch(`${base}/batches`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{"job":"echo","input":[]}',
    });
    expect(await problem(res)).toMatchObject({ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
  });

  it('answers 413 for a body over maxBodyBytes, declared or streamed, and stores nothing', async () => {
    const { base, engine } = await serve(await engineFor(), { maxBodyBytes: 1024 });
    const huge = JSON.stringify({ job: 'echo', input: Array.from({ length: 200_000 }, () => 'x') });
    const declared = await postJson(`${base}/batches`, huge);
    expect(await problem(declared)).toMatchObject({ status: 413, code: 'BODY_TOO_LARGE' });

    // Chunked, with no Content-Length: cut off while streaming.
    const chunks = [huge.slice(0, 800), huge.slice(800, 1600), huge.slice(1600)];
    const streamed = await fetch(`${base}/batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        pull(controller) {
          const next = chunks.shift();
          if (next === undefined) controller.close();
          else controller.enqueue(new TextEncoder().encode(next));
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(await problem(streamed)).toMatchObject({ status: 413, code: 'BODY_TOO_LARGE' });
    expect(await engine.list()).toEqual([]);

    // The server still answers on a fresh request afterwards.
    expect((await fetch(`${base}/batches`)).status).toBe(200);
  });

  it('stops reading a body past the limit (the adapter does not buffer it)', async () => {
    const { base } = await serve(await engineFor(), { maxBodyBytes: 1024 });
    const url = new URL(`${base}/batches`);
    // 64 MiB announced as chunked: the answer comes long before that could have been sent.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          req.destroy();
        },
      );
      req.on('error', (err) => {
        if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err);
      });
      const chunk = Buffer.alloc(64 * 1024, 32);
      let sent = 0;
      const pump = () => {
        while (sent < 1024 && req.write(chunk)) sent++;
        if (sent < 1024) req.once('drain', pump);
      };
      pump();
    });
    expect(status).toBe(413);
  });

  it('answers 405 with Allow for a wrong method', async () => {
    const { base } = await serve(await engineFor());
    const res = await fetch(`${base}/batches`, { method: 'PUT', body: '{}' });
    expect(await problem(res)).toMatchObject({ status: 405, code: 'METHOD_NOT_ALLOWED' });
    expect(res.headers.get('allow')).toBe('GET, POST, DELETE, HEAD');
    const del = await fetch(`${base}/batches/x`, { method: 'DELETE' });
    expect(del.status).toBe(405);
    expect(del.headers.get('allow')).toBe('GET, HEAD');
    const getCancel = await fetch(`${base}/batches/x/cancel`);
    expect(getCancel.status).toBe(405);
    expect(getCancel.headers.get('allow')).toBe('POST');
  });

  it('asks authorize first: a refusal is 403 and creates nothing, reading no body', async () => {
    const asked: string[] = [];
    const { base, engine } = await serve(await engineFor(), {
      authorize: async (req, action) => {
        asked.push(action);
        return req.headers.get('authorization') === 'Bearer right';
      },
    });
    const refused = await postJson(
      `${base}/batches`,
      { job: 'echo', input: ['a'], id: 'nope' },
      { authorization: 'Bearer wrong' },
    );
    expect(await problem(refused)).toMatchObject({ status: 403, code: 'FORBIDDEN' });
    // Even a malformed body: refused before it is read.
    expect((await postJson(`${base}/batches`, '{{{', { authorization: 'Bearer wrong' })).status).toBe(403);
    expect(await engine.list()).toEqual([]);
    const allowed = await postJson(
      `${base}/batches`,
      { job: 'echo', input: ['a'], id: 'yes' },
      { authorization: 'Bearer right' },
    );
    expect(allowed.status).toBe(201);
    expect(asked).toEqual(['submit', 'submit', 'submit']);
  });
});
