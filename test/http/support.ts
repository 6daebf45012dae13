import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';
import { z } from 'zod';
import { createHandler, type HandlerOptions, toNodeListener } from '../../src/http/index.js';
import {
  type BatchSummary,
  createEngine,
  defineJob,
  type Engine,
  type EngineOptions,
  memoryStore,
} from '../../src/index.js';

/**
 * Partitions that wait until the test lets them through: `release(n)` lets n waiting (or future)
 * partitions finish, `open()` lets every one through. `arrived(n)` resolves once n are waiting.
 */
export class Latch {
  private credits = 0;
  private opened = false;
  private readonly waiting: Array<() => void> = [];
  private readonly watchers: Array<{ n: number; resolve: () => void }> = [];

  enter(signal?: AbortSignal): Promise<void> {
    if (this.opened) return Promise.resolve();
    if (this.credits > 0) {
      this.credits--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const go = () => resolve();
      this.waiting.push(go);
      signal?.addEventListener('abort', () => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason);
      });
      this.notify();
    });
  }

  release(n = 1): void {
    for (let i = 0; i < n; i++) {
      const next = this.waiting.shift();
      if (next) next();
      else this.credits++;
    }
  }

  open(): void {
    this.opened = true;
    for (const go of this.waiting.splice(0)) go();
  }

  arrived(n: number): Promise<void> {
    return new Promise((resolve) => {
      this.watchers.push({ n, resolve });
      this.notify();
    });
  }

  private notify(): void {
    for (const w of [...this.watchers])
      if (this.waiting.length >= w.n) {
        this.watchers.splice(this.watchers.indexOf(w), 1);
        w.resolve();
      }
  }
}

/** `echo`: each item is a partition; the item 'fail' fails with a stack, others return `{ x }`. */
export const echo = defineJob({
  name: 'echo',
  input: z.array(z.union([z.string(), z.number()])),
  partition: (items) => items.map((x, i) => ({ key: `k${i}`, payload: x })),
  handler: async (x) => {
    if (x === 'fail') throw new Error('boom');
    return { x };
  },
  finalize: async (s) => ({ done: s.succeeded }),
});

/** `broken`: its finalize throws, so the batch ends FAILED with `summary.error` (with a stack). */
export const broken = defineJob({
  name: 'broken',
  partition: (items: string[]) => items.map((x, i) => ({ key: `k${i}`, payload: x })),
  handler: async (x: string) => x,
  finalize: async () => {
    throw new Error('finalize broke');
  },
});

/** `gated`: n partitions, each waiting on a Latch given per test through `gates`. */
export const gates = new Map<string, Latch>();
export const gated = defineJob({
  name: 'gated',
  input: z.object({ n: z.number().int().min(0), gate: z.string() }),
  partition: ({ n, gate }) => Array.from({ length: n }, (_, i) => ({ key: `g${i}`, payload: { i, gate } })),
  handler: async ({ i, gate }: { i: number; gate: string }, ctx) => {
    await gates.get(gate)!.enter(ctx.signal);
    return i;
  },
  concurrency: 2,
});

let gateSeq = 0;
/** A fresh latch and the input of a gated batch of `n` partitions waiting on it. */
export function gatedInput(n: number): { latch: Latch; input: { n: number; gate: string } } {
  const gate = `gate-${++gateSeq}`;
  const l = new Latch();
  gates.set(gate, l);
  return { latch: l, input: { n, gate } };
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const gate of gates.values()) gate.open();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Run `fn` after the current test. */
export function later(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export interface Served {
  engine: Engine;
  base: string;
  server: Server;
}

/** A started engine (memory store unless given) stopped after the test. */
export async function engineFor(options: Partial<EngineOptions> = {}): Promise<Engine> {
  const engine = createEngine({
    jobs: [echo, gated, broken],
    store: memoryStore(),
    logger: false,
    ...options,
  });
  later(() => engine.stop());
  await engine.start();
  return engine;
}

/** Listen on an ephemeral port of 127.0.0.1; closed (connections included) after the test. */
export async function listen(
  listener: Parameters<typeof createServer>[1],
): Promise<{ server: Server; origin: string }> {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  later(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { server, origin: `http://127.0.0.1:${port}` };
}

/** The handler of `engine` over real HTTP: `base` is the origin plus the base path. */
export async function serve(engine: Engine, options: HandlerOptions = {}): Promise<Served> {
  const handler = createHandler(engine, options);
  const { server, origin } = await listen(toNodeListener(handler));
  return { engine, server, base: `${origin}${options.basePath ?? ''}` };
}

/** Resolves with the first summary of `id` for which `predicate` holds. */
export function until(
  engine: Engine,
  id: string,
  predicate: (s: BatchSummary) => boolean,
): Promise<BatchSummary> {
  return new Promise((resolve) => {
    let off: (() => void) | undefined;
    let done = false;
    off = engine.subscribe(id, (s) => {
      if (done || !predicate(s)) return;
      done = true;
      off?.();
      resolve(s);
    });
    if (done) off();
  });
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** A problem+json response's body, after checking its media type and status. */
export async function problem(
  res: Response,
): Promise<{ status: number; code: string; detail: string } & Record<string, unknown>> {
  if (!res.headers.get('content-type')?.startsWith('application/problem+json'))
    throw new Error(
      `expected a problem, got ${res.status} ${res.headers.get('content-type')}: ${await res.text()}`,
    );
  return (await res.json()) as { status: number; code: string; detail: string };
}
