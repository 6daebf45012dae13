import type { Clock } from '../../src/index.js';

/**
 * A clock for the scheduler that moves only when told: `advance` runs each timer due on the way at
 * its own time and waits for the work it started (the scheduler's timer returns its pass), so a
 * test steps through cron fires with no real waiting.
 */
export class FakeClock implements Clock {
  private readonly timers = new Map<number, { at: number; fn: () => unknown }>();
  private seq = 0;
  /** Every delay asked of setTimeout, in order. */
  readonly delays: number[] = [];

  constructor(private time: number) {}

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => unknown, ms: number): unknown {
    const id = ++this.seq;
    this.delays.push(ms);
    this.timers.set(id, { at: this.time + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Timers set and neither run nor cleared. */
  get pending(): number {
    return this.timers.size;
  }

  /** Move to `target` (epoch ms or ISO), running every timer due by then in time order. */
  async advanceTo(target: number | string): Promise<void> {
    const end = typeof target === 'string' ? Date.parse(target) : target;
    for (;;) {
      let next: [number, { at: number; fn: () => unknown }] | undefined;
      for (const entry of this.timers)
        if (entry[1].at <= end && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.time = Math.max(this.time, next[1].at);
      await next[1].fn();
    }
    this.time = Math.max(this.time, end);
  }

  advance(ms: number): Promise<void> {
    return this.advanceTo(this.time + ms);
  }

  /** Jump to `target` without running any timer: the time that passed while no engine ran. */
  jumpTo(target: number | string): void {
    this.time = typeof target === 'string' ? Date.parse(target) : target;
  }
}
