import { describe, expect, it } from 'vitest';
import { CronTimes } from '../src/runtime/cron.js';

// The fire times of a stored cron expression: the same on every host and at every wake, whenever
// the engine parsed it (croner alone read a `?` as "the time of parsing").

const at = (iso: string) => Date.parse(iso);
const fires = (cron: string, fromIso: string, toIso: string) => {
  const out: string[] = [];
  const times = new CronTimes(cron, 'UTC');
  for (let t = times.next(at(fromIso)); t !== undefined && t <= at(toIso); t = times.next(t))
    out.push(new Date(t).toISOString());
  return out;
};

describe('cron expressions', () => {
  it("'?' in the day fields is Quartz's \"no specific value\": seed 004's daily and quarterly schedules", () => {
    const daily = fires('0 30 5 * * ?', '2026-12-01T00:00:00Z', '2026-12-08T00:00:00Z');
    expect(daily).toEqual(Array.from({ length: 7 }, (_, i) => `2026-12-0${i + 1}T05:30:00.000Z`));
    expect(fires('0 30 5 1 1,4,7,10 ?', '2027-01-01T00:00:00Z', '2027-12-31T23:59:59Z')).toEqual([
      '2027-01-01T05:30:00.000Z',
      '2027-04-01T05:30:00.000Z',
      '2027-07-01T05:30:00.000Z',
      '2027-10-01T05:30:00.000Z',
    ]);
    // Five fields: the day fields are the third and the fifth. Mondays at 09:00.
    expect(fires('0 9 ? * 1', '2026-12-01T00:00:00Z', '2026-12-15T00:00:00Z')).toEqual([
      '2026-12-07T09:00:00.000Z',
      '2026-12-14T09:00:00.000Z',
    ]);
  });

  it("'?' anywhere else is refused (croner would put the current second, minute or hour there)", () => {
    for (const cron of ['? * * * * *', '0 ? * * *', '0 0 5 1? * *', '0 0 ? 1 ?/2'])
      expect(() => new CronTimes(cron, 'UTC'), cron).toThrow(/'\?' stands alone/);
  });

  it('an expression whose dates never come has no next fire (not a stack overflow)', () => {
    expect(new CronTimes('0 0 31 4,6,9,11 *', 'UTC').next(at('2026-12-01T00:00:00Z'))).toBeUndefined();
  });
});
