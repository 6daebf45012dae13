import { Cron } from 'croner';

/**
 * The fire times of one cron expression in one time zone, as epoch milliseconds (croner computes
 * them; no croner timer is ever started). Fire times are whole seconds.
 *
 * @example
 * ```ts
 * const times = new CronTimes('30 2 * * *', 'Europe/Berlin');
 * times.next(Date.now()); // the next 02:30 in Berlin
 * ```
 */
export class CronTimes {
  private readonly cron: Cron;

  /** Throws (croner's or Intl's message) when the expression or the time zone is invalid. */
  constructor(expression: string, timezone: string) {
    this.cron = new Cron(expression, { timezone, paused: true });
    // croner reads the time zone lazily: ask for one time now, so a bad zone fails here.
    this.cron.nextRun(new Date(0));
  }

  /** The first fire time strictly after `afterMs`, or undefined when there is none. */
  next(afterMs: number): number | undefined {
    return this.cron.nextRun(new Date(afterMs))?.getTime();
  }

  /**
   * The latest `max` fire times in (`afterMs`, `upToMs`], oldest first. Searches backwards from
   * `upToMs` in a window that doubles until it holds `max` of them or reaches `afterMs`: after a long
   * downtime of an every-second schedule this enumerates a few thousand times, not every second of
   * the downtime.
   */
  latest(afterMs: number, upToMs: number, max: number): number[] {
    if (max <= 0 || upToMs <= afterMs) return [];
    for (let window = 1000; ; window *= 2) {
      const from = Math.max(afterMs, upToMs - window);
      const found = this.between(from, upToMs, max);
      if (found.length >= max || from === afterMs) return found;
    }
  }

  /** The last `max` fire times in (`from`, `upTo`], oldest first. */
  private between(from: number, upTo: number, max: number): number[] {
    const out: number[] = [];
    for (let t = this.next(from); t !== undefined && t <= upTo; t = this.next(t)) {
      out.push(t);
      if (out.length > max) out.shift();
    }
    return out;
  }
}

/** Why `timezone` is not an IANA time zone this host knows, or undefined when it is one. */
export function badTimezone(timezone: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
