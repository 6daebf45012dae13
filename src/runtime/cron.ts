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
    this.cron = new Cron(quartzQuestionMarks(expression), { timezone, paused: true });
    // croner reads the time zone lazily: ask for one time now, so a bad zone fails here.
    this.next(0);
  }

  /** The first fire time strictly after `afterMs`, or undefined when there is none. */
  next(afterMs: number): number | undefined {
    try {
      return this.cron.nextRun(new Date(afterMs))?.getTime();
    } catch (err) {
      // croner searches a date that never comes (`0 0 31 4,6,9,11 *`) by recursion until the stack
      // runs out: that expression never fires.
      if (err instanceof RangeError && /call stack/i.test(err.message)) return undefined;
      throw err;
    }
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

/**
 * `?` as Quartz (and seed 004's schedules) mean it: "no specific value" in the day-of-month or
 * day-of-week field, that is `*` there. croner instead replaces `?` with the current time's value
 * whenever it parses, so `0 30 5 * * ?` meant "weekly, on the weekday the engine started", and a
 * stored schedule changed meaning at every wake and restart. Elsewhere `?` has no meaning: refused.
 */
export function quartzQuestionMarks(expression: string): string {
  if (!expression.includes('?')) return expression;
  const fields = expression.trim().split(/\s+/);
  const days = fields.length === 6 ? [3, 5] : fields.length === 5 ? [2, 4] : [];
  for (let i = 0; i < fields.length; i++) {
    if (!fields[i]!.includes('?')) continue;
    if (!days.includes(i) || fields[i] !== '?')
      throw new TypeError(
        `'?' stands alone in the day-of-month or day-of-week field ("no specific value"), not in '${fields[i]}' (field ${i + 1} of ${fields.length})`,
      );
    fields[i] = '*';
  }
  return fields.join(' ');
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
