import { describe, expect, it } from 'vitest';
import { createEngine, sqliteStore } from '../../src/index.js';
import { sqlitePath } from '../support/stores.js';
import { SseClient } from './sse-client.js';
import { broken, echo, gated, gatedInput, later, postJson, serve, until } from './support.js';

// Two engines on one SQLite file: `runner` runs the batch, the API is served by `other`, which is
// told nothing about the batch's changes and reads them from the store.
async function twoEngines() {
  const path = sqlitePath();
  const start = async () => {
    const engine = createEngine({ jobs: [echo, gated, broken], store: sqliteStore({ path }), logger: false });
    later(() => engine.stop());
    await engine.start();
    return engine;
  };
  return { runner: await start(), other: await start() };
}

describe('a batch run by another engine', () => {
  it('its event stream still moves on and ends: each ping reads the store (a backstop, seed 002)', async () => {
    const { runner, other } = await twoEngines();
    const { base } = await serve(other, { heartbeatMs: 25 });
    const { latch, input } = gatedInput(3);
    await runner.submit('gated', input, { id: 'remote' });
    await latch.arrived(2);
    await until(runner, 'remote', (s) => s.status === 'PROCESSING');

    const read = await fetch(`${base}/batches/remote`);
    expect(read.status).toBe(202);
    const client = await SseClient.open(`${base}/batches/remote/events`);
    const first = await client.nextSummary();
    expect(first?.summary.status).not.toMatch(/COMPLETED/);
    latch.open();
    let last = first;
    for (let e = await client.nextSummary(); e; e = await client.nextSummary()) last = e;
    expect(last?.summary).toMatchObject({ status: 'COMPLETED', succeeded: 3 });
    expect((await fetch(`${base}/batches/remote`)).status).toBe(200);
  });

  it('cancelling it here cancels it there: the request reaches the engine that runs it (docs/scaling.md)', async () => {
    const { runner, other } = await twoEngines();
    const { base } = await serve(other);
    const { latch, input } = gatedInput(1);
    await runner.submit('gated', input, { id: 'theirs' });
    await latch.arrived(1);
    await until(runner, 'theirs', (s) => s.status === 'PROCESSING');
    const res = await postJson(`${base}/batches/theirs/cancel`, { reason: 'from the other engine' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: 'theirs', status: 'CANCELLED' });
    expect(await runner.wait('theirs')).toMatchObject({ status: 'CANCELLED', error: { code: 'CANCELLED' } });
    latch.open();
  });
});
