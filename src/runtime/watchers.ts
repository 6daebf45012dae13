import type { Logger } from 'pino';
import { TimeoutError } from '../errors.js';
import type { BatchSummary } from '../summary.js';
import { guarded } from './callbacks.js';
import { changeKey, detached } from './summary-of.js';

type Listener = (summary: BatchSummary) => void;

interface Waiter {
  resolve: (summary: BatchSummary) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Who waits for which batch (`engine.wait`) and who listens to it (`engine.subscribe`). Every
 * waiter is settled exactly once: by the batch's durable final state, by an error (a lost lease),
 * or by its own timeout, which also removes it. Listeners are called guarded and dropped after the
 * last summary they can get.
 */
export class Watchers {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(private readonly log: Logger) {}

  /** Resolves at `settle(id)`, rejects at `fail(id)` or after `timeoutMs` (then it is gone). */
  wait(id: string, timeoutMs: number | undefined): Promise<BatchSummary> {
    return new Promise((resolve, reject) => {
      let set = this.waiters.get(id);
      if (!set) {
        set = new Set();
        this.waiters.set(id, set);
      }
      const waiter: Waiter = { resolve, reject, timer: undefined };
      set.add(waiter);
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          this.remove(this.waiters, id, waiter);
          reject(new TimeoutError(timeoutMs, `wait("${id}")`));
        }, timeoutMs);
      }
    });
  }

  /**
   * Add a listener; `current` is delivered first, so no change is ever missed (a promise: when it
   * resolves, if the listener is still subscribed).
   */
  subscribe(id: string, listener: Listener, current: BatchSummary | Promise<BatchSummary>): () => void {
    const guardedListener = guarded(this.log.child({ batchId: id }), 'subscribe listener', listener);
    let heard = false;
    let last = '';
    const safe = (summary: BatchSummary) => {
      heard = true;
      // The same summary twice in a row (heard live and read from the store) is one change.
      const key = changeKey(summary);
      if (key === last) return;
      last = key;
      guardedListener(detached(summary));
    };
    let set = this.listeners.get(id);
    if (!set) {
      set = new Set();
      this.listeners.set(id, set);
    }
    set.add(safe);
    if (current instanceof Promise)
      current.then(
        // A store read that lands after a live summary reached the listener is older news: dropped.
        (summary) => !heard && this.listeners.get(id)?.has(safe) && safe(summary),
        () => {}, // an unknown id: nothing to deliver
      );
    else safe(current);
    return () => this.remove(this.listeners, id, safe);
  }

  /** True when someone listens to `id` (a summary is only worth building then). */
  listening(id: string): boolean {
    return this.listeners.has(id);
  }

  /** Tell every listener of `id` about a change. */
  deliver(id: string, summary: BatchSummary): void {
    const set = this.listeners.get(id);
    if (!set) return;
    for (const listener of [...set]) listener(summary);
  }

  /** The batch's final state is durable: resolve every waiter, tell every listener, drop them. */
  settle(id: string, summary: BatchSummary): void {
    this.deliver(id, summary);
    this.listeners.delete(id);
    for (const w of this.take(id)) w.resolve(detached(summary));
  }

  /**
   * This engine no longer runs the batch, another does (a lost lease): waiters get `err`, as
   * documented; listeners get `last` and stay, to be told through the store until it is final.
   */
  failWaiters(id: string, err: Error, last?: BatchSummary): void {
    if (last) this.deliver(id, last);
    for (const w of this.take(id)) w.reject(err);
  }

  /** The engine stops: every waiter left rejects with `errorFor(id)`; listeners are dropped. */
  failAll(errorFor: (id: string) => Error): void {
    this.listeners.clear();
    for (const id of [...this.waiters.keys()]) {
      const err = errorFor(id);
      for (const w of this.take(id)) w.reject(err);
    }
  }

  /** Every batch someone waits for or listens to. */
  watched(): Set<string> {
    return new Set([...this.waiters.keys(), ...this.listeners.keys()]);
  }

  /** Number of pending waiters (tests and metrics: a timed-out wait leaves none). */
  get pendingWaits(): number {
    let n = 0;
    for (const set of this.waiters.values()) n += set.size;
    return n;
  }

  private take(id: string): Waiter[] {
    const set = this.waiters.get(id);
    this.waiters.delete(id);
    const list = set ? [...set] : [];
    for (const w of list) clearTimeout(w.timer);
    return list;
  }

  private remove<T>(map: Map<string, Set<T>>, id: string, item: T): void {
    const set = map.get(id);
    if (!set) return;
    set.delete(item);
    if (set.size === 0) map.delete(id);
  }
}
