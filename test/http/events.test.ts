import { describe, expect, it } from 'vitest';
import type { Engine } from '../../src/index.js';
import { SseClient } from './sse-client.js';
import { engineFor, gatedInput, problem, serve, until } from './support.js';

/** Collapse runs of the same status: the order of status changes. */
const statusesOf = (list: Array<{ status: string }>) =>
  list.map((s) => s.status).filter((s, i, all) => i === 0 || all[i - 1] !== s);

/** An engine whose subscriptions are counted, to see that streams unsubscribe. */
function counting(engine: Engine): { engine: Engine; active: () => number; idle: () => Promise<void> } {
  let active = 0;
  let wake: (() => void) | undefined;
  const wrapped = Object.assign(Object.create(engine) as Engine, {
    subscribe: (id: string, listener: Parameters<Engine['subscribe']>[1]) => {
      active++;
      const off = engine.subscribe(id, listener);
      let done = false;
      return () => {
        if (!done) active--;
        done = true;
        off();
        if (active === 0) wake?.();
      };
    },
  });
  const idle = () =>
    new Promise<void>((resolve) => {
      if (active === 0) resolve();
      else wake = resolve;
    });
  return { engine: wrapped, active: () => active, idle };
}

describe('GET /batches/:id/events', () => {
  it('sends a client connecting mid-batch the current summary first, then every status change in order, ending with the final one', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine, { eventIntervalMs: 0 });
    const { latch, input } = gatedInput(5);
    await engine.submit('gated', input, { id: 'live' });
    latch.release(2);
    await until(engine, 'live', (s) => s.succeeded === 2);

    const client = await SseClient.open(`${base}/batches/live/events`);
    expect(client.response.status).toBe(200);
    expect(client.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const first = await client.nextSummary();
    expect(first?.summary).toMatchObject({ id: 'live', status: 'PROCESSING', succeeded: 2 });

    const seen = [first!];
    latch.open();
    for (let e = await client.nextSummary(); e; e = await client.nextSummary()) seen.push(e);
    const summaries = seen.map((e) => e.summary);
    expect(statusesOf(summaries)).toEqual(['PROCESSING', 'FINALIZING', 'COMPLETED']);
    expect(summaries.at(-1)).toMatchObject({ status: 'COMPLETED', succeeded: 5 });
    // Counts never go back, and ids grow with them.
    const settled = summaries.map((s) => s.succeeded + s.failed);
    expect(settled).toEqual([...settled].sort((a, b) => a - b));
    const ids = seen.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(await client.next()).toBeUndefined(); // the server ended the stream
  });

  it('sends a final batch as one event and ends; a client that has seen it is told 204', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine);
    await engine.wait((await engine.submit('echo', ['a'], { id: 'done' })).id);
    const client = await SseClient.open(`${base}/batches/done/events`);
    const only = await client.nextSummary();
    expect(only?.summary.status).toBe('COMPLETED');
    expect(await client.nextSummary()).toBeUndefined();

    const again = await fetch(`${base}/batches/done/events`, { headers: { 'last-event-id': only!.id! } });
    expect(again.status).toBe(204);
  });

  it('resumes from Last-Event-ID: what the client has seen is skipped, anything newer is sent', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine, { eventIntervalMs: 0 });
    const { latch, input } = gatedInput(4);
    await engine.submit('gated', input, { id: 'resume' });
    await latch.arrived(2);

    const before = await SseClient.open(`${base}/batches/resume/events`);
    const seen = await before.nextSummary();
    expect(seen?.summary).toMatchObject({ status: 'PROCESSING', succeeded: 0 });
    before.close();

    // Nothing changed: the current summary is the one seen, so the first event is the next change.
    const same = await SseClient.open(`${base}/batches/resume/events`, { 'last-event-id': seen!.id! });
    latch.release(1);
    const next = await same.nextSummary();
    expect(next?.summary.succeeded).toBe(1);
    expect(next?.id).not.toBe(seen?.id);
    same.close();

    // A change was missed: it comes first.
    latch.release(1);
    await until(engine, 'resume', (s) => s.succeeded === 2);
    const behind = await SseClient.open(`${base}/batches/resume/events`, { 'last-event-id': next!.id! });
    expect((await behind.nextSummary())?.summary.succeeded).toBe(2);
    latch.open();
    let last: Awaited<ReturnType<SseClient['nextSummary']>>;
    for (let e = await behind.nextSummary(); e; e = await behind.nextSummary()) last = e;
    expect(last!.summary.status).toBe('COMPLETED');
  });

  it('unsubscribes when the client goes away, pings an idle stream, and is 404 for an unknown batch', async () => {
    const base0 = await engineFor();
    const { engine, active, idle } = counting(base0);
    const { base } = await serve(engine, { heartbeatMs: 20 });
    expect(await problem(await fetch(`${base}/batches/nope/events`))).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
    });
    expect(active()).toBe(0);

    const { latch, input } = gatedInput(1);
    await base0.submit('gated', input, { id: 'idle' });
    await latch.arrived(1);
    const client = await SseClient.open(`${base}/batches/idle/events`);
    expect((await client.nextSummary())?.summary.status).toBe('PROCESSING');
    let e = await client.next();
    while (e && e.comment !== 'ping') e = await client.next();
    expect(e?.comment).toBe('ping');
    expect(active()).toBe(1);
    client.close();
    await idle(); // the server saw the client go and unsubscribed (the test times out otherwise)
    expect(active()).toBe(0);
    expect((await base0.get('idle')).status).toBe('PROCESSING');
  });

  it('ends every stream once the engine stops (a server closing after it is not held open)', async () => {
    // Outside probe: a stream on a batch left unfinished by stop() sent `: ping` for good.
    const engine = await engineFor();
    const { base } = await serve(engine, { heartbeatMs: 20 });
    const { latch, input } = gatedInput(1);
    await engine.submit('gated', input, { id: 'left' });
    await latch.arrived(1);
    const client = await SseClient.open(`${base}/batches/left/events`);
    expect((await client.nextSummary())?.summary.status).toBe('PROCESSING');
    await engine.stop();
    let e = await client.next();
    while (e) e = await client.next(); // until the stream ends (the test times out otherwise)
    expect(e).toBeUndefined();
  });

  it('coalesces progress-only changes but never a status change', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine, { eventIntervalMs: 60_000 });
    const { latch, input } = gatedInput(6);
    await engine.submit('gated', input, { id: 'coalesced' });
    await latch.arrived(2);
    const client = await SseClient.open(`${base}/batches/coalesced/events`);
    expect((await client.nextSummary())?.summary.succeeded).toBe(0);
    latch.open();
    const rest = [];
    for (let e = await client.nextSummary(); e; e = await client.nextSummary()) rest.push(e.summary);
    // With a minute between progress events, only the status changes (with their counts) arrive.
    expect(statusesOf(rest)).toEqual(['FINALIZING', 'COMPLETED']);
    expect(rest.at(-1)).toMatchObject({ succeeded: 6 });
  });
});
