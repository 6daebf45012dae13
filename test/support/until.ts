import type { BatchSummary, Engine } from '../../src/index.js';

/** Resolves with the first summary of batch `id` on `engine` for which `check` holds (it subscribes, then unsubscribes). */
export function untilSummary(
  engine: Engine,
  id: string,
  check: (s: BatchSummary) => boolean,
): Promise<BatchSummary> {
  return new Promise((resolve) => {
    const off = engine.subscribe(id, (s) => {
      if (!check(s)) return;
      // Not synchronously: the listener may run before subscribe() has returned `off`.
      queueMicrotask(() => off());
      resolve(s);
    });
  });
}

export interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

/** A promise with its resolve function outside. */
export function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
