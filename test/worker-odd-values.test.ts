import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../src/index.js';
import type { PartitionFailure } from '../src/summary.js';
import { oddResult, oddThrown } from './fixtures/workers/odd-values.mjs';
import { collect, fixture, startEngine } from './helpers.js';

type Item = { key: string; returns?: string; throws?: string };

const input = z.object({ items: z.array(z.object({ key: z.string() }).loose()) });
const partition = ({ items }: { items: Item[] }) => items.map((item) => ({ key: item.key, payload: item }));

/** The same odd values, returned or thrown by a worker module and by an inline handler. */
const jobs = {
  worker: defineJob({
    name: 'odd',
    input,
    partition,
    worker: fixture('odd-values.mjs'),
    retry: { attempts: 3, backoffMs: 1 },
  }),
  inline: defineJob({
    name: 'odd',
    input,
    partition,
    handler: (payload: Item) => {
      if (payload.throws !== undefined) throw oddThrown(payload.throws);
      return oddResult(payload.returns!);
    },
    retry: { attempts: 3, backoffMs: 1 },
  }),
};

/** Results JSON cannot keep, and the reason each is refused for. */
const RESULTS: Record<string, RegExp> = {
  map: /\(root\) is a Map, not a plain object/,
  error: /\(root\) is an Error, not a plain object/,
  nan: /\(root\) is NaN/,
  infinity: /\(root\)\.rows is Infinity/,
  date: /\(root\) is a Date, not a plain object/,
  bigint: /\(root\)\.big is a BigInt/,
  function: /\(root\) is a function/,
  cycle: /\(root\)\.self is a circular reference/,
  'undefined-in-array': /\(root\)\.rows\[1\] is undefined inside an array/,
  symbol: /\(root\) is a symbol/,
};

/** Odd things to throw, and what the partition's error message must say about each. */
const THROWN: Record<string, RegExp> = {
  bigint: /^10n$/,
  cycle: /a loop of its own.*Circular/,
  getter: /could not be read.*the message getter exploded/,
  'retryable-getter': /^an error whose retryable getter throws$/,
  proxy: /could not be read/,
  undefined: /^undefined$/,
  symbol: /^Symbol\(thrown symbol\)$/,
};

async function run(where: keyof typeof jobs, items: Item[]) {
  const engine = await startEngine({ jobs: [jobs[where]] });
  const batch = await engine.submit('odd', { items });
  const summary = await engine.wait(batch.id, { timeoutMs: 20_000 });
  const failures = new Map<string, PartitionFailure>(summary.failures.map((f) => [f.key, f]));
  return { engine, batch, summary, failures };
}

describe.each(['worker', 'inline'] as const)('%s handlers', (where) => {
  it('results JSON cannot keep fail RESULT_INVALID, without retry; storable ones succeed', async () => {
    const kinds = Object.keys(RESULTS);
    const { engine, batch, summary, failures } = await run(where, [
      ...kinds.map((kind) => ({ key: kind, returns: kind })),
      { key: 'plain', returns: 'plain' },
    ]);
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 1, failed: kinds.length });
    for (const kind of kinds) {
      const f = failures.get(kind);
      expect(f, kind).toMatchObject({
        attempts: 1,
        error: { name: 'ResultValidationError', code: 'RESULT_INVALID' },
      });
      expect(f!.error.message, kind).toMatch(/^Result cannot be stored as JSON: /);
      expect(f!.error.message, kind).toMatch(RESULTS[kind]!);
    }
    const [plain] = await collect(engine.partitions(batch.id, { status: 'succeeded' }));
    expect(plain).toMatchObject({ key: 'plain', result: { rows: 1, nested: { a: [1, 'x', null, true] } } });
  });

  it('a Proxy result: on a worker thread RESULT_INVALID (it cannot cross to the main thread), inline stored as JSON', async () => {
    const { summary, failures } = await run(where, [
      { key: 'proxy', returns: 'proxy' },
      { key: 'plain', returns: 'plain' },
    ]);
    if (where === 'inline') {
      expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: 2 });
      return;
    }
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 1, failed: 1 });
    expect(failures.get('proxy')).toMatchObject({ attempts: 1, error: { code: 'RESULT_INVALID' } });
    expect(failures.get('proxy')!.error.message).toMatch(/\(root\) is a Proxy/);
  });

  it('odd thrown values fail their partition described, never WORKER_CRASHED', async () => {
    const kinds = Object.keys(THROWN);
    const { engine, batch, summary, failures } = await run(
      where,
      kinds.map((kind) => ({ key: kind, throws: kind })),
    );
    expect(summary).toMatchObject({ status: 'FAILED', failed: kinds.length });
    const stacks = new Map(
      (await collect(engine.partitions(batch.id, { status: 'failed' }))).map((p) => [p.key, p.error?.stack]),
    );
    for (const kind of kinds) {
      const f = failures.get(kind)!;
      expect(f, kind).toBeDefined();
      expect(f.error.code, kind).not.toBe('WORKER_CRASHED');
      expect(f.error.message, kind).toMatch(THROWN[kind]!);
      // A stack only where the thrown value had one: not partita's own (`at toError`), where it
      // was turned into an Error (an outside probe found that stored for a thrown string).
      const stored = stacks.get(kind);
      if (kind === 'retryable-getter') expect(stored, kind).toMatch(/odd-values/);
      else expect(stored, kind).toBeUndefined();
      // Thrown values are retried like any error (the job allows 3 attempts).
      expect(f.attempts, kind).toBe(3);
    }
  });
});

describe('a result schema with a refinement (JSON Schema cannot carry it)', () => {
  const result = z.object({ rows: z.number().refine((n) => n < 10, 'must be below 10') });
  const jobsOf = {
    worker: defineJob({
      name: 'refined',
      partition: (rows: number[]) => rows.map((r) => ({ key: `r${r}`, payload: { mode: 'ok', rows: r } })),
      worker: new URL('./fixtures/workers/scripted.mjs', import.meta.url),
      result,
    }),
    inline: defineJob({
      name: 'refined',
      partition: (rows: number[]) => rows.map((r) => ({ key: `r${r}`, payload: r })),
      handler: (r: number) => ({ rows: r }),
      result,
    }),
  };
  it.each(['worker', 'inline'] as const)('%s: is checked all the same, on the main thread', async (where) => {
    const engine = await startEngine({ jobs: [jobsOf[where]] });
    const summary = await engine.wait((await engine.submit('refined', [5, 50])).id);
    expect(summary).toMatchObject({ status: 'PARTIAL', succeeded: 1, failed: 1 });
    expect(summary.failures[0]).toMatchObject({ key: 'r50', error: { code: 'RESULT_INVALID' } });
    expect(summary.failures[0]!.error.message).toMatch(/must be below 10/);
  });
});
