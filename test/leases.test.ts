import { afterEach, describe, expect, it, vi } from 'vitest';
import { Leases } from '../src/runtime/leases.js';
import { memoryStore } from '../src/store/memory.js';
import type { Store } from '../src/store/store.js';
import { batchRecord } from './store/contract.js';

// A lease counts from when it was asked for (acquire) or its renewal sent, not from when the answer
// was read: an answer read after a stall (SIGSTOP, a long pause) made a lease the store may have let
// expire look fresh for another time to live, and a woken host started partitions another host had
// finished (an outside probe). Date is faked: the test says when time passes.

const TTL = 1000;

afterEach(() => {
  vi.useRealTimers();
});

/** The real memory store, each renewal held until the test lets it through. */
function heldRenewals(store: Store) {
  const waiting: Array<() => void> = [];
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'renewLease')
        return async (...args: Parameters<Store['renewLease']>) => {
          await new Promise<void>((go) => waiting.push(go));
          return target.renewLease(...args);
        };
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as Store;
  const next = async () => {
    while (waiting.length === 0) await new Promise((r) => setImmediate(r));
    return waiting.shift()!;
  };
  return { proxy, next };
}

describe('leases', () => {
  it('a renewal answered after a stall does not make the lease fresh; a renewal answered in time does', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.parse('2026-12-02T12:00:00Z') });
    const real = memoryStore();
    await real.open();
    await real.createBatch(batchRecord('b', { job: 'j', total: 0 }), []);
    const { proxy, next } = heldRenewals(real);
    const leases = new Leases(proxy, 'me', TTL, { lost: () => {}, error: () => {} });
    try {
      expect(await leases.acquire('b')).toBeDefined();
      const t0 = Date.now();
      expect(leases.freshUntil('b')).toBe(t0 + TTL);
      vi.setSystemTime(t0 + TTL + 100); // stalled past the time to live
      expect(leases.fresh('b')).toBe(false);
      let started = 0;
      leases.confirm('b', () => started++);
      const first = await next(); // the renewal is sent now...
      vi.setSystemTime(t0 + 5 * TTL); // ...and its answer read after another stall
      first();
      // Renewed by the store, but not known to be ours now: nothing starts, it asks again.
      const second = await next();
      expect(started).toBe(0);
      expect(leases.fresh('b')).toBe(false);
      second(); // answered at once
      await vi.waitFor(() => expect(started).toBe(1));
      expect(leases.fresh('b')).toBe(true);
      expect(leases.freshUntil('b')).toBe(t0 + 5 * TTL + TTL);
    } finally {
      await real.close();
    }
  });
});
