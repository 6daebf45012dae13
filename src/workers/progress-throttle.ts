/** How often one attempt's `ctx.progress` reaches the engine at most; its last report (`done === total`) always does. */
export const PROGRESS_INTERVAL_MS = 100;

/**
 * `ctx.progress` for one attempt, inline or on a worker thread alike: numbers only (anything else
 * is ignored: from a worker thread it would throw DataCloneError into the handler), at most one
 * report per `intervalMs` but always the final one. A handler that reports at every row would
 * otherwise send the engine an event per row (an outside probe: 200,000 inline reports held the
 * event loop for 1.5 s).
 */
export function throttledProgress(
  send: (done: number, total: number | undefined) => void,
  intervalMs = PROGRESS_INTERVAL_MS,
): (done: number, total?: number) => void {
  let last = Number.NEGATIVE_INFINITY;
  return (done, total) => {
    if (typeof done !== 'number' || (total !== undefined && typeof total !== 'number')) return;
    const now = Date.now();
    if (now - last < intervalMs && done !== total) return;
    last = now;
    send(done, total);
  };
}
