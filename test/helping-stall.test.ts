import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { defineJob, sqliteStore } from '../src/index.js';
import { Helping } from '../src/runtime/helping.js';
import { WorkRunner } from '../src/runtime/work.js';
import type { RangeStore } from '../src/store/store.js';
import { sqlitePath } from './support/stores.js';
import { deferred } from './support/until.js';

// A holder of a distributed batch's range that stalls past its hold (a SIGSTOP, a swap, a long GC)
// starts no member of it before a renewal says the hold is still its own. An outside probe stopped
// a helper process past `leaseTtlMs`, let the batch end and be retried, and continued it: it went on
// starting the members of its old range, partitions that had succeeded, until its next renewal.

const stores: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

describe('a range holder that stalled past its hold', () => {
  it('renews before it starts another member, and starts none once the range is gone', async () => {
    const store = sqliteStore({ path: sqlitePath() });
    stores.push(store);
    await store.open();
    const total = 10;
    await store.createBatch(
      {
        schemaVersion: 1,
        id: 'b',
        job: 'j',
        total,
        priority: 0,
        after: [],
        when: 'succeeded',
        createdAt: new Date().toISOString(),
      },
      Array.from({ length: total }, (_, i) => ({ key: `k${i}`, payload: i })),
    );
    const lease = (await store.acquireLease('b', 'owner', 60_000))!;
    const ranges = store.ranges!;
    const range = (await ranges.offer(
      'b',
      { job: 'j', attempt: 1, redelivered: false, members: [...Array(total).keys()], offeredBy: 'owner' },
      lease,
    ))!;

    let clock = 0;
    const ran: string[] = [];
    const allRan = deferred();
    const job = defineJob({
      name: 'j',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      distribute: true,
      handler: async (_: number, ctx) => {
        ran.push(ctx.key);
        if (ran.length === 1) {
          // The host stalls for twice the hold's time; meanwhile the owner gave the range up.
          clock += 120_000;
          await ranges.withdraw('b', { ids: [range] });
        }
        if (ran.length === total) allRan.resolve();
        return null;
      },
    });
    let renewedWith!: (still: number[]) => void;
    const renewed = new Promise<number[]>((r) => {
      renewedWith = r;
    });
    const watched: RangeStore = Object.create(ranges);
    watched.renew = async (held, ttlMs) => {
      const still = await ranges.renew(held, ttlMs);
      renewedWith(still);
      return still;
    };
    const errors: Error[] = [];
    const helping = new Helping({
      store,
      ranges: watched,
      log: pino({ level: 'silent' }),
      owner: 'helper',
      jobs: new Map([['j', job]]),
      runners: new Map([['j', new WorkRunner(job as never, undefined, false)]]),
      helpOthers: true,
      concurrency: 1,
      ttlMs: 60_000,
      now: () => clock,
      storeError: (err) => errors.push(err),
    });
    helping.start();
    try {
      // Before the fix the other nine members ran at once (the renewal was 20 s away).
      const first = await Promise.race([renewed, allRan.promise.then(() => 'all ran')]);
      expect(first).toEqual([]); // the renewal found the range gone
      await new Promise((r) => setImmediate(r));
      expect(ran).toEqual(['k0']);
      expect(errors).toEqual([]);
    } finally {
      await helping.stop();
    }
  });
});
