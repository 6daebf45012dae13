/**
 * The one retry delay of partita: partitions, finalizers, store writes and store reads all wait
 * `baseMs`, doubling with each retry, at most `maxMs`. Pure, so the machines use it too.
 */

/** Delay before retry number `retry` (1 for the first retry). */
export function backoffDelay(retry: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1));
}

/** A pause that keeps the process alive (the engine still has work to finish). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
