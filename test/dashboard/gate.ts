/**
 * Lets partitions through one at a time, when the test says so: a partition's handler waits in
 * `pass()` until `release()` hands it a permit. With the job's concurrency at 1 the batch moves
 * exactly as far as the test releases, so the browser can be asked to show each step.
 */
export class Gate {
  private permits = 0;
  private readonly waiting: Array<() => void> = [];

  /** Let `n` more partitions through (now, or as soon as they arrive). */
  release(n = 1): void {
    this.permits += n;
    while (this.permits > 0 && this.waiting.length > 0) {
      this.permits--;
      this.waiting.shift()!();
    }
  }

  /** Wait for a permit; rejects when `signal` aborts (the batch was cancelled). */
  pass(signal: AbortSignal): Promise<void> {
    if (this.permits > 0) {
      this.permits--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const go = () => {
        signal.removeEventListener('abort', stop);
        resolve();
      };
      const stop = () => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason);
      };
      this.waiting.push(go);
      signal.addEventListener('abort', stop, { once: true });
    });
  }
}
