import { afterEach } from 'vitest';
import { z } from 'zod';
import { createEngine, defineJob, type Engine, type EngineOptions, memoryStore } from '../src/index.js';

export const fixture = (name: string) => new URL(`./fixtures/workers/${name}`, import.meta.url);

/** A scripted partition: what the worker (test/fixtures/workers/scripted.mjs) does with it. */
export interface Script {
  key: string;
  mode:
    | 'ok'
    | 'fail'
    | 'flaky'
    | 'busy'
    | 'hang'
    | 'hang-first'
    | 'mark-then-hang'
    | 'exit'
    | 'throw-outside'
    | 'oom'
    | 'bad-result'
    | 'progress'
    | 'ctx'
    | 'sleep'
    | 'leak-rejection'
    | 'progress-odd'
    | 'reject-while-running'
    | 'bigint'
    | 'function';
  succeedOn?: number;
  ms?: number;
  rows?: number;
  /** 'mark-then-hang': the file it writes once it runs. */
  file?: string;
}

export const scriptedJob = (overrides: Partial<Parameters<typeof defineJob>[0]> = {}) =>
  defineJob({
    name: 'scripted',
    input: z.object({ items: z.array(z.object({ key: z.string(), mode: z.string() }).loose()) }),
    partition: ({ items }: { items: Script[] }) => items.map((item) => ({ key: item.key, payload: item })),
    worker: fixture('scripted.mjs'),
    result: z.object({ rows: z.number() }).loose(),
    concurrency: 8,
    ...overrides,
  } as Parameters<typeof defineJob>[0]);

export const noopJob = (concurrency = 256) =>
  defineJob({
    name: 'noop',
    input: z.object({ n: z.number().int().min(0) }),
    partition: ({ n }) => Array.from({ length: n }, (_, i) => ({ key: `p${i}`, payload: i })),
    worker: fixture('noop.mjs'),
    concurrency,
  });

/** An inline handler that waits a turn of the event loop (for I/O, as it were): every lane is its own. */
export const inlineNoopJob = (concurrency: number, name = 'inline-noop') =>
  defineJob({
    name,
    input: z.object({ n: z.number().int().min(0) }),
    partition: ({ n }) => Array.from({ length: n }, (_, i) => ({ key: `p${i}`, payload: i })),
    handler: async () => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      return null;
    },
    concurrency,
    batching: false,
  });

const engines: Engine[] = [];

/** An engine on the memory store with logs silenced, stopped after each test. */
export async function startEngine(
  options: Partial<EngineOptions> & Pick<EngineOptions, 'jobs'>,
): Promise<Engine> {
  const engine = createEngine({
    store: memoryStore(),
    logger: false,
    workers: { maxThreads: 2 },
    ...options,
  });
  engines.push(engine);
  await engine.start();
  return engine;
}

afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});

export const items = (mode: Script['mode'], n: number, prefix: string = mode): Script[] =>
  Array.from({ length: n }, (_, i) => ({ key: `${prefix}-${i}`, mode }));

/** Array.fromAsync (Node 22+) for Node 20. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of iterable) out.push(x);
  return out;
}

/**
 * A promise the test settles when it says (`open()`): a gate a handler waits at, or the sign that
 * something reached a point.
 */
export function latch(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
