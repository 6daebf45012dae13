import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEngine, defineJob, memoryStore } from '../src/index.js';
import { faultyStore } from './support/faulty-store.js';

// User callbacks can never crash the host or the engine: their throws are logged and ignored.

const job = defineJob({
  name: 'quick',
  partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
  handler: (i: number) => i,
});

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeEach(() => {
  unhandled.length = 0;
  process.on('unhandledRejection', onUnhandled);
});
afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
});

describe('user callbacks that throw', () => {
  it('a throwing onError during a failed page read neither crashes nor stops the batch', async () => {
    const faulty = faultyStore(memoryStore());
    const engine = createEngine({
      jobs: [job],
      store: faulty.store,
      logger: false,
      onError: () => {
        throw new Error('onError is broken');
      },
    });
    await engine.start();
    try {
      faulty.failNext('readPartitions', 1);
      const batch = await engine.submit('quick', 5);
      expect((await engine.wait(batch.id)).status).toBe('COMPLETED');
      expect(engine.metrics().storeErrors).toBe(1);
    } finally {
      await engine.stop();
    }
    // Let any stray rejection surface before checking.
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  });

  it('an async onError that rejects is not an unhandled rejection', async () => {
    const faulty = faultyStore(memoryStore());
    const engine = createEngine({
      jobs: [job],
      store: faulty.store,
      logger: false,
      onError: async () => {
        throw new Error('async onError is broken');
      },
    });
    await engine.start();
    try {
      faulty.failNext('readPartitions', 1);
      const batch = await engine.submit('quick', 3);
      expect((await engine.wait(batch.id)).status).toBe('COMPLETED');
    } finally {
      await engine.stop();
    }
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  });

  it('a throwing subscribe listener (also on its first call) and a throwing inspect change nothing', async () => {
    const engine = createEngine({
      jobs: [job],
      store: memoryStore(),
      logger: false,
      inspect: () => {
        throw new Error('inspect is broken');
      },
    });
    await engine.start();
    try {
      const batch = await engine.submit('quick', 20);
      const seen: string[] = [];
      expect(() =>
        engine.subscribe(batch.id, (s) => {
          seen.push(s.status);
          throw new Error('listener is broken');
        }),
      ).not.toThrow();
      const summary = await engine.wait(batch.id);
      expect(summary).toMatchObject({ status: 'COMPLETED', succeeded: 20 });
      expect(seen.at(-1)).toBe('COMPLETED');
    } finally {
      await engine.stop();
    }
  });

  it('an inspect observer whose next throws is tolerated too', async () => {
    const engine = createEngine({
      jobs: [job],
      store: memoryStore(),
      logger: false,
      inspect: {
        next: () => {
          throw new Error('observer is broken');
        },
      },
    });
    await engine.start();
    try {
      const batch = await engine.submit('quick', 4);
      expect((await engine.wait(batch.id)).status).toBe('COMPLETED');
    } finally {
      await engine.stop();
    }
  });
});
