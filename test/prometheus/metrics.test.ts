import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type BatchSummary, createEngine, memoryStore } from '../../src/index.js';
import { METRIC_NAMES, registerMetrics } from '../../src/prometheus/index.js';
import { broken, echo, engineFor, gated, gatedInput, later, serve } from '../http/support.js';
import { parseMetrics, sampleValue } from './parse.js';

describe('registerMetrics', () => {
  it('counts partitions and batches as the summaries do, with job and status labels and no ids', async () => {
    const engine = createEngine({ jobs: [echo, gated, broken], store: memoryStore(), logger: false });
    later(() => engine.stop());
    const registry = new Registry();
    const unregister = registerMetrics(engine, registry);
    later(unregister);
    await engine.start();

    const inputs = [['a', 'b', 'fail'], ['a'], ['fail', 'fail'], ['x', 'y', 'z', 'fail']];
    const summaries: BatchSummary[] = [];
    for (const [i, input] of inputs.entries())
      summaries.push(await engine.wait((await engine.submit('echo', input, { id: `echo-${i}` })).id));
    summaries.push(await engine.wait((await engine.submit('broken', ['a'], { id: 'broken-0' })).id));

    const { latch, input } = gatedInput(3);
    await engine.submit('gated', input, { id: 'gated-0' });
    await latch.arrived(2);

    let samples = parseMetrics(await registry.metrics());
    const echoes = summaries.filter((s) => s.job === 'echo');
    const sum = (f: (s: (typeof summaries)[number]) => number) => echoes.reduce((n, s) => n + f(s), 0);
    expect(sampleValue(samples, 'partita_partitions_total', { job: 'echo', status: 'succeeded' })).toBe(
      sum((s) => s.succeeded),
    );
    expect(sampleValue(samples, 'partita_partitions_total', { job: 'echo', status: 'failed' })).toBe(
      sum((s) => s.failed),
    );
    expect(sampleValue(samples, 'partita_partition_duration_seconds_count', { job: 'echo' })).toBe(
      sum((s) => s.total),
    );
    for (const status of ['COMPLETED', 'PARTIAL', 'FAILED'])
      expect(sampleValue(samples, 'partita_batch_duration_seconds_count', { job: 'echo', status })).toBe(
        echoes.filter((s) => s.status === status).length,
      );
    expect(
      sampleValue(samples, 'partita_batch_duration_seconds_count', { job: 'broken', status: 'FAILED' }),
    ).toBe(1);
    // Held now: the gated batch only; finished batches are not "held".
    expect(sampleValue(samples, 'partita_batches', { job: 'gated', status: 'PROCESSING' })).toBe(1);
    expect(samples.filter((s) => s.name === 'partita_batches' && s.value > 0)).toHaveLength(1);
    expect(sampleValue(samples, 'partita_queue_length')).toBe(0);
    expect(sampleValue(samples, 'partita_store_errors_total')).toBe(0);
    expect(sampleValue(samples, 'partita_pool_utilization')).toBe(0);
    const labelValues = samples.flatMap((s) => Object.values(s.labels));
    for (const id of [...summaries.map((s) => s.id), 'gated-0']) expect(labelValues).not.toContain(id);

    latch.open();
    await engine.wait('gated-0');
    samples = parseMetrics(await registry.metrics());
    expect(sampleValue(samples, 'partita_batches', { job: 'gated', status: 'PROCESSING' })).toBe(0);
    expect(sampleValue(samples, 'partita_partitions_total', { job: 'gated', status: 'succeeded' })).toBe(3);
    expect(
      sampleValue(samples, 'partita_batch_duration_seconds_count', { job: 'gated', status: 'COMPLETED' }),
    ).toBe(1);
  });

  it('counts QUEUED batches in partita_batches and partita_queue_length', async () => {
    const engine = createEngine({
      jobs: [echo, gated],
      store: memoryStore(),
      logger: false,
      maxConcurrentBatches: 1,
    });
    later(() => engine.stop());
    const registry = new Registry();
    later(registerMetrics(engine, registry));
    await engine.start();
    const { latch, input } = gatedInput(1);
    await engine.submit('gated', input, { id: 'first' });
    await engine.submit('echo', ['a'], { id: 'second' });
    await engine.submit('echo', ['b'], { id: 'third' });
    const samples = parseMetrics(await registry.metrics());
    expect(sampleValue(samples, 'partita_batches', { job: 'echo', status: 'QUEUED' })).toBe(2);
    expect(sampleValue(samples, 'partita_batches', { job: 'gated', status: 'PROCESSING' })).toBe(1);
    expect(sampleValue(samples, 'partita_queue_length')).toBe(2);
    latch.open();
    await engine.wait('third');
  });

  it('refuses a second registration in one registry, and its unregister removes every metric and listener', async () => {
    const engine = await engineFor();
    const registry = new Registry();
    const unregister = registerMetrics(engine, registry);
    expect(() => registerMetrics(engine, registry)).toThrow(expect.objectContaining({ code: 'VALIDATION' }));
    // Arguments of the wrong kind: VALIDATION naming the argument (a TypeError from inside before).
    for (const [args, path] of [
      [[{}, registry], 'engine'],
      [[undefined, registry], 'engine'],
      [[engine, {}], 'registry'],
      [[engine, null], 'registry'],
    ] as const)
      expect(() => registerMetrics(...(args as unknown as [typeof engine, Registry]))).toThrow(
        expect.objectContaining({ code: 'VALIDATION', issues: [expect.objectContaining({ path })] }),
      );
    const names = new Set(
      parseMetrics(await registry.metrics()).map((s) => s.name.replace(/_(bucket|sum|count)$/, '')),
    );
    for (const name of METRIC_NAMES) expect(registry.getSingleMetric(name)).toBeDefined();
    expect(names.has('partita_queue_length')).toBe(true);
    unregister();
    expect(await registry.metrics()).not.toMatch(/partita_/);
    // Registered again, it starts from zero and hears only what follows.
    const again = registerMetrics(engine, registry);
    later(again);
    await engine.wait((await engine.submit('echo', ['a'])).id);
    const samples = parseMetrics(await registry.metrics());
    expect(sampleValue(samples, 'partita_partitions_total', { job: 'echo', status: 'succeeded' })).toBe(1);
  });
});

describe('GET /metrics', () => {
  it('serves the Prometheus text of the handler’s own registry, matching the summaries', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine);
    const a = await engine.wait((await engine.submit('echo', ['a', 'b', 'fail'])).id);
    const b = await engine.wait((await engine.submit('echo', ['c'])).id);
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parseMetrics(await res.text());
    expect(sampleValue(samples, 'partita_partitions_total', { job: 'echo', status: 'succeeded' })).toBe(
      a.succeeded + b.succeeded,
    );
    expect(sampleValue(samples, 'partita_partitions_total', { job: 'echo', status: 'failed' })).toBe(
      a.failed + b.failed,
    );
    expect(
      sampleValue(samples, 'partita_batch_duration_seconds_count', { job: 'echo', status: 'PARTIAL' }),
    ).toBe(1);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('asks authorize for "metrics"', async () => {
    const engine = await engineFor();
    const { base } = await serve(engine, { authorize: (_r, action) => action !== 'metrics' });
    expect((await fetch(`${base}/metrics`)).status).toBe(403);
    expect((await fetch(`${base}/batches`)).status).toBe(200);
  });
});
