import { performance } from 'node:perf_hooks';
import type { RateLimit } from '../job.js';

/**
 * A job's rate limit (docs/guide.md, "Rate limits"): at most `max` starts in any window of `perMs`
 * milliseconds, a sliding window over the last `max` start times (not a bucket, which would let
 * twice the rate through across a refill). Starts wait in order; a waiting start whose partition was
 * aborted meanwhile is dropped by its caller. One limiter per job and engine.
 */
export class RateLimiter {
  /** The last `max` start times, a ring: `starts[next]` is the oldest once full. */
  private readonly starts: Float64Array;
  private next = 0;
  private count = 0;
  private readonly waiting: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly limit: RateLimit) {
    this.starts = new Float64Array(limit.max);
  }

  /** Run `start` now if the window allows it, else as soon as it does (in the order asked). */
  acquire(start: () => void): void {
    if (this.waiting.length === 0 && this.wait() === 0) {
      this.record();
      start();
      return;
    }
    this.waiting.push(start);
    this.schedule();
  }

  /** Forget every waiting start (the engine stops). */
  clear(): void {
    this.waiting.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Milliseconds until one more start fits in the window (0: now). */
  private wait(): number {
    if (this.count < this.limit.max) return 0;
    const oldest = this.starts[this.next]!;
    return Math.max(0, oldest + this.limit.perMs - performance.now());
  }

  private record(): void {
    this.starts[this.next] = performance.now();
    this.next = (this.next + 1) % this.limit.max;
    if (this.count < this.limit.max) this.count++;
  }

  private schedule(): void {
    if (this.timer || this.waiting.length === 0) return;
    // +1: timers may fire a fraction of a millisecond early against performance.now().
    this.timer = setTimeout(() => {
      this.timer = undefined;
      while (this.waiting.length > 0 && this.wait() === 0) {
        this.record();
        this.waiting.shift()!();
      }
      this.schedule();
    }, Math.ceil(this.wait()) + 1);
  }
}
