import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatchJournal } from '../src/runtime/journal.js';
import { memoryStore } from '../src/store/memory.js';
import type { BatchState, Fence, OutcomeRecord, Store } from '../src/store/store.js';
import { batchRecord } from './store/contract.js';

// The journal writes a running batch's state with a group of outcomes at most every
// `stateIntervalMs`; the groups between carry their outcomes only (src/runtime/journal.ts). A status
// change and a flush write the state at once, and what a stored state does not cover is in the
// journal for recovery to replay. Timers and the clock are faked: the test says when time passes.

const FLUSH_MS = 5;
const STATE_MS = 100;
const N = 20;

/** The store's writes in order: `o<n>` a group of n outcomes, `s<seq> <status>` a state. */
type Calls = string[];

/** The real memory store (it has no `commit`: outcomes, then the state), its writes recorded. */
function recorded(store: Store, calls: Calls): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'appendOutcomes')
        return (id: string, outcomes: readonly OutcomeRecord[], fence: Fence) => {
          calls.push(`o${outcomes.length}`);
          return target.appendOutcomes(id, outcomes, fence);
        };
      if (prop === 'saveState')
        return (id: string, state: BatchState, fence: Fence) => {
          calls.push(`s${state.journalSeq} ${state.status}`);
          return target.saveState(id, state, fence);
        };
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('journal: the state at most every stateIntervalMs', () => {
  let store: Store;
  let calls: Calls;
  let journal: BatchJournal;
  let settled: number;
  let status: BatchState['status'];

  const outcome = (index: number): OutcomeRecord => ({
    index,
    key: `p${index}`,
    status: 'succeeded',
    attempts: 1,
    result: index,
    durationMs: 1,
    seq: index + 1,
    finishedAt: '',
  });
  const state = (): BatchState => ({
    schemaVersion: 1,
    machineVersion: 4,
    status,
    journalSeq: settled,
    snapshot: { settled },
    summary: { status },
  });
  /** Settle partition `index` and let the microtasks run (a write's promise chain). */
  const settle = async (index: number) => {
    settled++;
    journal.append(outcome(index));
    await vi.advanceTimersByTimeAsync(0);
  };

  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance', 'Date'] });
    calls = [];
    const real = memoryStore();
    await real.open();
    await real.createBatch(
      batchRecord('b', { job: 'j', total: N }),
      Array.from({ length: N }, (_, i) => ({ key: `p${i}`, payload: i })),
    );
    const lease = await real.acquireLease('b', 'engine', 60_000);
    store = recorded(real, calls);
    settled = 0;
    status = 'PROCESSING';
    journal = new BatchJournal(store, 'b', { owner: lease!.owner, epoch: lease!.epoch }, state, {
      flushDelayMs: FLUSH_MS,
      maxGroup: 1000,
      stateIntervalMs: STATE_MS,
      onError: (err) => {
        throw err;
      },
      onLeaseLost: () => {},
    });
  });

  afterEach(async () => {
    journal.close();
    await store.close();
    vi.useRealTimers();
  });

  it('writes groups paced by the work without the state in between, and the state once it is due', async () => {
    // The first group carries the state (the batch's first write).
    await settle(0);
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(calls).toEqual(['o1', 's1 PROCESSING']);
    // One outcome every 10 ms: each its own group, outcomes only, until 100 ms have passed.
    for (let i = 1; i < 9; i++) {
      await vi.advanceTimersByTimeAsync(10 - FLUSH_MS);
      await settle(i);
      await vi.advanceTimersByTimeAsync(FLUSH_MS);
    }
    expect(calls).toEqual(['o1', 's1 PROCESSING', 'o1', 'o1', 'o1', 'o1', 'o1', 'o1', 'o1', 'o1']);
    // Nothing comes in any more: the state that covers the last outcomes is written when it is due.
    await vi.advanceTimersByTimeAsync(STATE_MS);
    expect(calls.slice(10)).toEqual(['s9 PROCESSING']);
    expect((await store.loadBatch('b'))?.state).toMatchObject({ journalSeq: 9 });
    // Nothing is left to write: no more timers.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps in the journal what the stored state does not cover, for recovery to replay', async () => {
    await settle(0);
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    for (let i = 1; i < 5; i++) {
      await settle(i);
      await vi.advanceTimersByTimeAsync(FLUSH_MS);
    }
    // The engine dies here: the stored state counts 1 outcome, the journal holds 5.
    const stored = (await store.loadBatch('b'))?.state as BatchState;
    expect(stored.journalSeq).toBe(1);
    const replay: number[] = [];
    for await (const o of store.outcomesSince('b', stored.journalSeq)) replay.push(o.index);
    expect(replay).toEqual([1, 2, 3, 4]);
  });

  it('writes the state with the next group after a status change, and on flush', async () => {
    await settle(0);
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    await settle(1);
    status = 'PAUSED';
    journal.touch();
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(calls).toEqual(['o1', 's1 PROCESSING', 'o1', 's2 PAUSED']);
    status = 'PROCESSING';
    await settle(2);
    await vi.advanceTimersByTimeAsync(FLUSH_MS);
    expect(calls.slice(4)).toEqual(['o1']);
    // A flush (finalization, stop) writes the state whatever the time, with what is queued.
    await settle(3);
    await journal.flush();
    expect(calls.slice(5)).toEqual(['o1', 's4 PROCESSING']);
  });
});

describe('journal: a store behind the work', () => {
  it('says so once MAX_BACKLOG outcomes wait behind the write in flight, and when they went into a write', async () => {
    const real = memoryStore();
    await real.open();
    const total = 100;
    await real.createBatch(
      batchRecord('slow', { job: 'j', total: total }),
      Array.from({ length: total }, (_, i) => ({ key: `p${i}`, payload: i })),
    );
    const lease = await real.acquireLease('slow', 'engine', 60_000);
    // The real memory store, its writes of outcomes held until the test lets each one through.
    const writes: Array<{ n: number; go: () => void }> = [];
    const slow = new Proxy(real, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (prop === 'appendOutcomes')
          return async (id: string, outcomes: readonly OutcomeRecord[], fence: Fence) => {
            await new Promise<void>((go) => writes.push({ n: outcomes.length, go }));
            return target.appendOutcomes(id, outcomes, fence);
          };
        return typeof value === 'function' ? value.bind(target) : value;
      },
    }) as Store;
    const said: string[] = [];
    let settled = 0;
    const journal = new BatchJournal(
      slow,
      'slow',
      { owner: lease!.owner, epoch: lease!.epoch },
      () => ({
        schemaVersion: 1,
        machineVersion: 4,
        status: 'PROCESSING',
        journalSeq: settled,
        snapshot: { settled },
        summary: { status: 'PROCESSING' },
      }),
      {
        flushDelayMs: 60_000,
        maxGroup: 10,
        maxBacklog: 30,
        stateIntervalMs: 0,
        onError: (err) => {
          throw err;
        },
        onLeaseLost: () => {},
        onBehind: () => said.push(`behind at ${settled}`),
        onCaughtUp: () => said.push(`caught up at ${settled}`),
      },
    );
    const settle = (n: number) => {
      for (let i = 0; i < n; i++) {
        settled++;
        journal.append({
          index: settled - 1,
          key: `p${settled - 1}`,
          status: 'succeeded',
          attempts: 1,
          result: settled,
          durationMs: 1,
          seq: settled,
          finishedAt: '',
        });
      }
    };
    const nextWrite = async () => {
      while (writes.length === 0) await new Promise((r) => setImmediate(r));
      return writes.shift()!;
    };
    try {
      // A full group goes at once; while it is written, 29 more wait: not yet behind.
      settle(10);
      const first = await nextWrite();
      expect(first.n).toBe(10);
      settle(29);
      expect(said).toEqual([]);
      // The 30th waiting outcome: behind, said once however many more come.
      settle(1);
      settle(15);
      expect(said).toEqual(['behind at 40']);
      // The write in flight ends: what waited (45, a full group and more) is written at once, not
      // after the timer, and the store is no longer behind.
      first.go();
      const second = await nextWrite();
      expect(second.n).toBe(45);
      expect(said).toEqual(['behind at 40', 'caught up at 55']);
      // The second write takes long too: behind once more, then caught up once more.
      settle(30);
      expect(said.slice(2)).toEqual(['behind at 85']);
      second.go();
      const third = await nextWrite();
      expect(third.n).toBe(30);
      expect(said.slice(2)).toEqual(['behind at 85', 'caught up at 85']);
      third.go();
      await journal.flush();
      expect((await real.loadBatch('slow'))?.state).toMatchObject({ journalSeq: 85 });
    } finally {
      journal.close();
      await real.close();
    }
  });
});
