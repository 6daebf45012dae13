import { describe, expect, it } from 'vitest';
import type { BatchSummary } from '../../src/index.js';
import { engineFor, gatedInput, serve } from '../http/support.js';
import { partita, requireBuiltCli } from './run.js';

requireBuiltCli();

const json = <T>(text: string): T => JSON.parse(text) as T;

describe('the CLI through a running service (--url)', () => {
  it('submits, shows, lists, cancels, pauses and resumes; pausing a final batch is a conflict', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine, { basePath: '/partita' });
    const submitted = await partita([
      'submit',
      'echo',
      '--input',
      '["a","fail"]',
      '--id',
      's1',
      '--meta',
      'by=cli',
      '--url',
      base,
      '--json',
    ]);
    expect(submitted.code).toBe(0);
    expect(json<BatchSummary>(submitted.stdout)).toMatchObject({
      id: 's1',
      job: 'echo',
      total: 2,
      meta: { by: 'cli' },
    });
    await engine.wait('s1');
    const shown = json<BatchSummary>((await partita(['show', 's1', '--url', base, '--json'])).stdout);
    expect(shown).toEqual(JSON.parse(JSON.stringify(await engine.get('s1'))));
    expect(
      json<BatchSummary[]>((await partita(['list', '--url', base, '--json'])).stdout).map((s) => s.id),
    ).toEqual(['s1']);
    const failed = json<Array<{ key: string }>>(
      (await partita(['partitions', 's1', '--status', 'failed', '--url', `${base}/`, '--json'])).stdout,
    );
    expect(failed.map((p) => p.key)).toEqual(['k1']);

    const { latch, input } = gatedInput(2);
    await engine.submit('gated', input, { id: 'g1' });
    await latch.arrived(2);
    const cancelled = await partita(['cancel', 'g1', '--reason', 'from the CLI', '--url', base]);
    expect(cancelled).toMatchObject({ code: 0, stdout: 'g1 CANCELLED\n' });
    expect((await engine.get('g1')).error?.message).toBe('from the CLI');

    const pause = await partita(['pause', 'g1', '--url', base, '--json']);
    expect(pause.code).toBe(1);
    expect(json(pause.stderr)).toMatchObject({ error: { code: 'CONFLICT' } });
    const second = gatedInput(2);
    await engine.submit('gated', second.input, { id: 'g2' });
    await second.latch.arrived(2);
    expect(await partita(['pause', 'g2', '--url', base])).toMatchObject({ code: 0, stdout: 'g2 PAUSED\n' });
    expect(await partita(['resume', 'g2', '--url', base])).toMatchObject({
      code: 0,
      stdout: 'g2 PROCESSING\n',
    });
    second.latch.open();
    expect((await engine.wait('g2')).status).toBe('COMPLETED');
    const unknownJob = await partita(['submit', 'nope', '--input', '{}', '--url', base]);
    expect(unknownJob.code).toBe(1);
    expect(unknownJob.stderr).toMatch(/Unknown job "nope"/);
    expect((await partita(['recount', 's1', '--url', base])).code).toBe(2);
  });

  it('prunes ended batches (--older-than, --before, --status, --job, --limit); usage errors exit 2', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine);
    for (const id of ['p1', 'p2', 'p3']) await engine.wait((await engine.submit('echo', ['a'], { id })).id);
    await engine.wait((await engine.submit('echo', ['fail'], { id: 'pf' })).id);
    const later = new Date(Date.now() + 60_000).toISOString();

    expect(await partita(['prune', '--older-than', '1d', '--url', base])).toMatchObject({
      code: 0,
      stdout: '0 batches deleted\n',
    });
    expect(await partita(['prune', '--before', later, '--status', 'failed', '--url', base])).toMatchObject({
      code: 0,
      stdout: '1 batch deleted\n',
    });
    const limited = await partita([
      'prune',
      '--before',
      later,
      '--job',
      'echo',
      '--limit',
      '2',
      '--url',
      base,
      '--json',
    ]);
    expect(json(limited.stdout)).toEqual({ deleted: 2 });
    expect((await engine.list()).map((s) => s.id)).toEqual(['p3']);

    for (const args of [
      ['prune', '--url', base],
      ['prune', '--older-than', '1d', '--before', later, '--url', base],
      ['prune', '--older-than', '3 days', '--url', base],
      ['prune', '--older-than', '1d', '--status', 'QUEUED', '--url', base],
      ['prune', '--older-than', '1d'],
    ])
      expect((await partita(args)).code).toBe(2);
    const bad = await partita(['prune', '--before', 'yesterday', '--url', base, '--json']);
    expect(bad.code).toBe(1);
    expect(json(bad.stderr)).toMatchObject({ error: { code: 'VALIDATION' } });
    expect((await engine.list()).map((s) => s.id)).toEqual(['p3']);
  });

  it('sends PARTITA_TOKEN as a bearer token, and reports an unreachable service', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine, {
      authorize: (req) => req.headers.get('authorization') === 'Bearer s3cret',
    });
    const refused = await partita(['list', '--url', base]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/Not allowed to list/);
    const allowed = await partita(['list', '--url', base], { PARTITA_TOKEN: 's3cret' });
    expect(allowed).toMatchObject({ code: 0, stdout: 'no batches\n' });
    const down = await partita(['show', 'x', '--url', 'http://127.0.0.1:9/partita', '--json']);
    expect(down.code).toBe(1);
    expect(json(down.stderr)).toMatchObject({ error: { code: 'UNREACHABLE' } });
  });
});
