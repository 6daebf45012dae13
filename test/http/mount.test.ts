import { serve as honoServe } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { createHandler, toNodeListener } from '../../src/http/index.js';
import type { Engine } from '../../src/index.js';
import { SseClient } from './sse-client.js';
import { engineFor, gatedInput, later, listen, postJson } from './support.js';

/** The same round trip through each framework: submit, read 202 then 200, follow the events. */
async function roundTrip(engine: Engine, base: string): Promise<void> {
  const { latch, input } = gatedInput(2);
  const created = await postJson(`${base}/batches`, { job: 'gated', input, id: 'mounted' });
  expect(created.status).toBe(201);
  expect(created.headers.get('location')).toBe('/partita/batches/mounted');
  await latch.arrived(2);
  expect((await fetch(`${base}/batches/mounted`)).status).toBe(202);
  const events = await SseClient.open(`${base}/batches/mounted/events`);
  expect((await events.nextSummary())?.summary.status).toBe('PROCESSING');
  latch.open();
  let last: Awaited<ReturnType<SseClient['nextSummary']>>;
  for (let e = await events.nextSummary(); e; e = await events.nextSummary()) last = e;
  expect(last?.summary.status).toBe('COMPLETED');
  expect((await fetch(`${base}/batches/mounted`)).status).toBe(200);
  const tooBig = await postJson(`${base}/batches`, { job: 'echo', input: ['x'.repeat(4096)] });
  expect(tooBig.status).toBe(413);
  expect((await fetch(`${base}/batches`, { method: 'PUT' })).status).toBe(405);
  await engine.wait('mounted');
}

describe('mounting the handler', () => {
  it('in Hono, unchanged (served by @hono/node-server)', async () => {
    const engine = await engineFor();
    const handler = createHandler(engine, { basePath: '/partita', maxBodyBytes: 1024 });
    const app = new Hono();
    app.get('/health', (c) => c.text('ok'));
    app.all('/partita/*', (c) => handler(c.req.raw));
    const server = await new Promise<ReturnType<typeof honoServe>>((resolve) => {
      const s = honoServe({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    later(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as { port: number };
    await roundTrip(engine, `http://127.0.0.1:${port}/partita`);
  });

  it('in Express, through toNodeListener', async () => {
    const engine = await engineFor();
    const app = express();
    // Express 5 path syntax; no body parser may run before it (the handler reads the body itself).
    app.all(
      '/partita/{*rest}',
      toNodeListener(createHandler(engine, { basePath: '/partita', maxBodyBytes: 1024 })),
    );
    const { origin } = await listen(app);
    await roundTrip(engine, `${origin}/partita`);
  });

  it('in Fastify, through toNodeListener on the raw request', async () => {
    const engine = await engineFor();
    const listener = toNodeListener(createHandler(engine, { basePath: '/partita', maxBodyBytes: 1024 }));
    const app = Fastify();
    await app.register(async (scope) => {
      // Leave bodies unread: the handler reads (and limits) them itself.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
      scope.all('/partita/*', (req, reply) => {
        reply.hijack();
        listener(req.raw, reply.raw);
      });
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    later(() => app.close());
    const { port } = app.server.address() as { port: number };
    await roundTrip(engine, `http://127.0.0.1:${port}/partita`);
  });
});
