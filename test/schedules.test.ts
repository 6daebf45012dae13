import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type AnyJobDefinition,
  type BatchStatus,
  createEngine,
  defineJob,
  type Engine,
  isFinalStatus,
  MAX_ID_LENGTH,
  memoryStore,
  postgresStore,
  type Store,
  StoreError,
  sqliteStore,
} from '../src/index.js';
import { latch } from './helpers.js';
import { until } from './store/contract.js';
import { FakeClock } from './support/fake-clock.js';
import { faultyStore } from './support/faulty-store.js';
import { PG_URL, pgSchema, pgUnreachable, sqlitePath } from './support/stores.js';

// Cron schedules (engine.schedule): every fire once, by its batch id `${name}@${fireTime ISO}`,
// with the scheduler's clock injected (no real waiting: the fake clock runs each timer at its time
// and waits for the pass it started).

const T0 = Date.parse('2026-03-02T00:00:00.000Z');
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const fire = (name: string, ms: number) => `${name}@${iso(ms)}`;

/** Runs of the report job, by batch id, with the input each got; optional gates hold a batch's run. */
function reportJob() {
  const runs = new Map<string, unknown[]>();
  const gates = new Map<string, Promise<void>>();
  const job = defineJob({
    name: 'report',
    partition: (input: unknown) => [{ key: 'only', payload: input ?? null }],
    handler: async (payload: unknown, ctx) => {
      runs.set(ctx.batchId, [...(runs.get(ctx.batchId) ?? []), payload]);
      await gates.get(ctx.batchId);
      return 1;
    },
  });
  /** Hold the run of batch `id` until the returned function is called. */
  const gate = (id: string) => {
    let open = () => {};
    gates.set(
      id,
      new Promise<void>((resolve) => {
        open = resolve;
      }),
    );
    return open;
  };
  const count = (id: string) => runs.get(id)?.length ?? 0;
  return { job, runs, gate, count };
}

const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});

async function start(
  store: Store,
  clock: FakeClock,
  jobs: AnyJobDefinition[] = [reportJob().job],
): Promise<Engine> {
  const engine = createEngine({ jobs, store, clock, logger: false });
  engines.push(engine);
  await engine.start();
  return engine;
}

/** Waits until batch `id` is final, read through any engine (it may run on another one). */
async function final(engine: Engine, id: string): Promise<BatchStatus> {
  let status: BatchStatus = 'QUEUED';
  await until(async () => {
    status = (await engine.get(id).catch(() => undefined))?.status ?? 'QUEUED';
    return isFinalStatus(status);
  }, 10_000);
  return status;
}

const ids = async (engine: Engine) => (await engine.list()).map((s) => s.id).sort();

describe('schedules', () => {
  it('fires every fire exactly once as the clock passes several of them, and reports them', async () => {
    const clock = new FakeClock(T0 + 10 * 60_000);
    const r = reportJob();
    const engine = await start(sqliteStore({ path: sqlitePath() }), clock, [r.job]);
    // 'allow': the fires come faster than the batches end (no real time passes between them).
    const info = await engine.schedule({
      name: 'hourly',
      cron: '0 * * * *',
      job: 'report',
      input: { n: 1 },
      overlap: 'allow',
    });
    expect(info).toEqual({
      name: 'hourly',
      cron: '0 * * * *',
      timezone: 'UTC',
      job: 'report',
      overlap: 'allow',
      catchUp: 'latest',
      input: 'json',
      dormant: false,
      createdAt: iso(T0 + 10 * 60_000),
      nextFire: iso(T0 + HOUR),
    });
    // One timer to the next fire, never a polling loop.
    expect(clock.pending).toBe(1);
    expect(clock.delays).toEqual([50 * 60_000]);

    await clock.advanceTo(T0 + 5 * HOUR + 30 * 60_000);
    const expected = [1, 2, 3, 4, 5].map((h) => fire('hourly', T0 + h * HOUR));
    for (const id of expected) expect(await final(engine, id)).toBe('COMPLETED');
    expect(await ids(engine)).toEqual(expected);
    for (const id of expected) expect(r.runs.get(id)).toEqual([{ n: 1 }]);
    expect(clock.pending).toBe(1);

    const [listed] = await engine.schedules();
    expect(listed).toMatchObject({
      name: 'hourly',
      nextFire: iso(T0 + 6 * HOUR),
      lastFire: { at: iso(T0 + 5 * HOUR), batchId: fire('hourly', T0 + 5 * HOUR), status: 'COMPLETED' },
    });
    expect((await engine.get(expected[0]!)).meta).toEqual({ schedule: 'hourly' });

    await engine.stop();
    expect(clock.pending).toBe(0); // stop() clears the timer
  });

  it('a daily 02:30 in Europe/Berlin fires once a day across both DST changes (croner: a missing 02:30 runs at 03:30, a doubled one once, the second)', async () => {
    const clock = new FakeClock(Date.parse('2026-03-27T00:00:00Z'));
    const engine = await start(memoryStore(), clock);
    const berlin = { name: 'berlin', cron: '30 2 * * *', timezone: 'Europe/Berlin', job: 'report' };
    await engine.schedule({ ...berlin, overlap: 'allow' });
    await clock.advanceTo('2026-03-31T00:00:00Z');
    // 29 March: clocks go 02:00 → 03:00 CEST; 02:30 does not exist and croner fires at 03:30 CEST (01:30Z).
    const spring = [
      '2026-03-27T01:30:00.000Z',
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:30:00.000Z',
      '2026-03-30T00:30:00.000Z',
    ];
    expect(await ids(engine)).toEqual(spring.map((t) => `berlin@${t}`));

    clock.jumpTo('2026-10-23T00:00:00Z');
    await engine.schedule({ ...berlin, overlap: 'allow', catchUp: 'none' });
    await clock.advanceTo('2026-10-27T00:00:00Z');
    // 25 October: 03:00 CEST → 02:00 CET, so 02:30 happens twice; croner fires once, at the second (01:30Z).
    const autumn = [
      '2026-10-23T00:30:00.000Z',
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T01:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ];
    expect(await ids(engine)).toEqual([...spring, ...autumn].map((t) => `berlin@${t}`).sort());
  });

  it('a daily 01:30 in America/New_York fires once on the fall-back day, at its first occurrence (as the guide says)', async () => {
    const clock = new FakeClock(Date.parse('2026-10-31T00:00:00Z'));
    const engine = await start(memoryStore(), clock);
    await engine.schedule({
      name: 'ny',
      cron: '30 1 * * *',
      timezone: 'America/New_York',
      job: 'report',
      overlap: 'allow',
    });
    await clock.advanceTo('2026-11-03T00:00:00Z');
    // 1 November: 02:00 EDT → 01:00 EST, so 01:30 happens twice; croner fires once, at 01:30 EDT (05:30Z).
    expect(await ids(engine)).toEqual(
      ['2026-10-31T05:30:00.000Z', '2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z'].map(
        (t) => `ny@${t}`,
      ),
    );
  });

  it('a next fire further away than a timer can wait (2^31-1 ms) is reached through chained timers, on time', async () => {
    const clock = new FakeClock(Date.parse('2026-01-02T00:00:00Z'));
    const engine = await start(memoryStore(), clock);
    await engine.schedule({ name: 'yearly', cron: '0 0 1 1 *', job: 'report' });
    await clock.advanceTo('2027-01-01T00:00:01Z');
    expect(await ids(engine)).toEqual(['yearly@2027-01-01T00:00:00.000Z']);
    expect(Math.max(...clock.delays)).toBe(2 ** 31 - 1);
    expect(clock.delays.length).toBeGreaterThan(10);
  });

  describe('catch-up after downtime (engine stopped, clock moved, a new engine on the same SQLite file)', () => {
    const cases = [
      ['none', [1], [1, 6]],
      ['latest', [1, 5], [1, 5, 6]],
      ['all', [1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]],
    ] as const;
    it.each(cases)('catchUp %s', async (catchUp, afterStart, afterNext) => {
      const path = sqlitePath();
      const clock = new FakeClock(T0 + 10 * 60_000);
      const a = await start(sqliteStore({ path }), clock);
      await a.schedule({ name: 'h', cron: '0 * * * *', job: 'report', catchUp, overlap: 'allow', input: 7 });
      await clock.advanceTo(T0 + HOUR + 60_000);
      expect(await final(a, fire('h', T0 + HOUR))).toBe('COMPLETED');
      await a.stop();

      // Down from 01:01 to 05:30: the fires of 02:00, 03:00, 04:00 and 05:00 were missed.
      clock.jumpTo(T0 + 5 * HOUR + 30 * 60_000);
      const r = reportJob();
      const b = await start(sqliteStore({ path }), clock, [r.job]); // a JSON input fires from the store alone
      const at = (hours: readonly number[]) => hours.map((h) => fire('h', T0 + h * HOUR));
      expect(await ids(b)).toEqual(at(afterStart));
      for (const id of at(afterStart)) expect(await final(b, id)).toBe('COMPLETED');
      if (catchUp === 'all') {
        // Submitted in fire-time order.
        const created = await Promise.all(at(afterStart).map(async (id) => (await b.get(id)).createdAt));
        expect([...created].sort()).toEqual(created);
      }
      await clock.advanceTo(T0 + 6 * HOUR + 60_000);
      expect(await ids(b)).toEqual(at(afterNext));
      for (const id of at(afterNext).slice(1)) {
        expect(await final(b, id)).toBe('COMPLETED');
        expect(r.count(id)).toBe(1);
      }
      expect(r.count(fire('h', T0 + HOUR))).toBe(0); // A's fire is not run again
    });
  });

  describe('overlap (a handler held open by a gate)', () => {
    /** Schedule `name` hourly with `overlap`; its first fire's batch is running (held) at 01:00. */
    async function firstFireHeld(name: string, overlap?: 'skip' | 'queue' | 'allow') {
      const clock = new FakeClock(T0 + 60_000);
      const r = reportJob();
      const engine = await start(memoryStore(), clock, [r.job]);
      const first = fire(name, T0 + HOUR);
      const second = fire(name, T0 + 2 * HOUR);
      const open = r.gate(first);
      await engine.schedule({ name, cron: '0 * * * *', job: 'report', ...(overlap ? { overlap } : {}) });
      await clock.advanceTo(T0 + HOUR);
      await until(() => r.count(first) === 1);
      return { clock, r, engine, first, second, open };
    }

    it("'skip': a fire while the previous batch runs submits nothing and is reported SKIPPED", async () => {
      const { clock, engine, first, second, open } = await firstFireHeld('s'); // 'skip' by default
      await clock.advanceTo(T0 + 2 * HOUR);
      await expect(engine.get(second)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      expect((await engine.schedules())[0]?.lastFire).toEqual({
        at: iso(T0 + 2 * HOUR),
        batchId: second,
        status: 'SKIPPED',
      });
      open();
      expect(await final(engine, first)).toBe('COMPLETED');
      await clock.advanceTo(T0 + 3 * HOUR);
      expect(await final(engine, fire('s', T0 + 3 * HOUR))).toBe('COMPLETED');
      expect(await ids(engine)).toEqual([first, fire('s', T0 + 3 * HOUR)]);
    });

    it("'queue': a fire while the previous batch runs waits for it (after, when settled), then runs", async () => {
      const { clock, r, engine, first, second, open } = await firstFireHeld('q', 'queue');
      await clock.advanceTo(T0 + 2 * HOUR);
      expect(await engine.get(second)).toMatchObject({ status: 'QUEUED' });
      expect(r.count(second)).toBe(0);
      open();
      expect(await final(engine, second)).toBe('COMPLETED');
      expect([...r.runs.keys()]).toEqual([first, second]);
    });

    it("'allow': a fire while the previous batch runs runs beside it", async () => {
      const { clock, engine, first, second, open } = await firstFireHeld('a', 'allow');
      await clock.advanceTo(T0 + 2 * HOUR);
      expect(await final(engine, second)).toBe('COMPLETED');
      expect((await engine.get(first)).status).toBe('PROCESSING');
      open();
      expect(await final(engine, first)).toBe('COMPLETED');
    });
  });

  it('two engines on one SQLite file in sequence: A fires and stops, B starts: that fire does not run again', async () => {
    const path = sqlitePath();
    const clock = new FakeClock(T0 + 60_000);
    const r = reportJob();
    const a = await start(sqliteStore({ path }), clock, [r.job]);
    await a.schedule({ name: 'n', cron: '0 * * * *', job: 'report' });
    await clock.advanceTo(T0 + HOUR);
    expect(await final(a, fire('n', T0 + HOUR))).toBe('COMPLETED');
    await a.stop();
    clock.jumpTo(T0 + HOUR + 1000);
    const b = await start(sqliteStore({ path }), clock, [r.job]);
    await clock.advanceTo(T0 + HOUR + 30 * 60_000);
    expect(await ids(b)).toEqual([fire('n', T0 + HOUR)]);
    expect(r.count(fire('n', T0 + HOUR))).toBe(1);
  });

  it('a schedule another engine stored is fired by an engine that was running already, once that engine stops (real clock)', async () => {
    // B knows of no schedule when A stores one: its timer has nothing to wait for. It used to fire
    // nothing until it was restarted (an outside probe); it reads the stored schedules every
    // SCHEDULE_RESCAN_SWEEPS claim sweeps (here 5 × 100 ms) as well.
    const path = sqlitePath();
    const r = reportJob();
    const make = () =>
      createEngine({ jobs: [r.job], store: sqliteStore({ path }), logger: false, claimIntervalMs: 100 });
    const a = make();
    const b = make();
    engines.push(a, b);
    await b.start();
    await a.start();
    await a.schedule({ name: 'every', cron: '* * * * * *', job: 'report', input: 1 });
    await a.stop();
    const stoppedAt = Date.now();
    // A fire after A stopped can only be B's.
    const later = await new Promise<string>((resolve) => {
      const off = b.observe((e) => {
        if (e.type !== 'batch' || !e.batchId.startsWith('every@')) return;
        if (Date.parse(e.batchId.slice('every@'.length)) > stoppedAt) {
          queueMicrotask(() => off());
          resolve(e.batchId);
        }
      });
    });
    expect(await final(b, later)).toBe('COMPLETED');
    expect(r.count(later)).toBe(1);
  });

  it('a crash between a fire’s submit and its record: the next engine submits the same id again, and the batch runs once', async () => {
    const path = sqlitePath();
    const clock = new FakeClock(T0 + 60_000);
    const r = reportJob();
    const faulty = faultyStore(sqliteStore({ path }));
    const a = await start(faulty.store, clock, [r.job]);
    await a.schedule({ name: 'c', cron: '0 * * * *', job: 'report' });
    faulty.failNext('recordFire', 1, () => new StoreError('injected: the host died here'));
    await clock.advanceTo(T0 + HOUR);
    expect(await final(a, fire('c', T0 + HOUR))).toBe('COMPLETED');
    expect((await a.schedules())[0]?.lastFire).toBeUndefined(); // the fire was never recorded
    await a.stop();

    clock.jumpTo(T0 + HOUR + 5 * 60_000);
    const b = await start(sqliteStore({ path }), clock, [r.job]);
    expect((await b.schedules())[0]?.lastFire).toEqual({
      at: iso(T0 + HOUR),
      batchId: fire('c', T0 + HOUR),
      status: 'COMPLETED',
    });
    expect(await ids(b)).toEqual([fire('c', T0 + HOUR)]);
    expect(r.count(fire('c', T0 + HOUR))).toBe(1);
  });

  it('refuses bad input with a coded error at the call, and stores nothing', async () => {
    const clock = new FakeClock(T0);
    const strict = defineJob({
      name: 'strict',
      input: z.object({ day: z.string() }),
      partition: () => [],
      handler: () => 1,
    });
    const notStarted = createEngine({ jobs: [strict], store: memoryStore(), clock, logger: false });
    await expect(
      notStarted.schedule({ name: 'x', cron: '* * * * *', job: 'strict', input: { day: 'd' } }),
    ).rejects.toMatchObject({ code: 'ENGINE_STATE' });
    const store = memoryStore();
    const engine = await start(store, clock, [strict]);
    const ok = { name: 'ok', cron: '0 5 * * *', job: 'strict', input: { day: 'd' } };
    const bad: Array<[Record<string, unknown>, string, string]> = [
      [{ cron: 'every day' }, 'VALIDATION', 'cron'],
      [{ cron: '0 0 30 2 *' }, 'VALIDATION', 'never fires'],
      [{ cron: '0 0 31 4,6,9,11 *' }, 'VALIDATION', 'never fires'],
      [{ cron: '? * * * * *' }, 'VALIDATION', "'?' stands alone"],
      [{ timezone: 'Mars/Olympus' }, 'VALIDATION', 'timezone'],
      [{ job: 'nope' }, 'UNKNOWN_JOB', 'nope'],
      [{ overlap: 'sometimes' }, 'VALIDATION', 'overlap'],
      [{ catchUp: 'most' }, 'VALIDATION', 'catchUp'],
      [{ name: 'has space' }, 'VALIDATION', 'name'],
      [{ name: 'a@b' }, 'VALIDATION', 'name'],
      [{ name: 'x'.repeat(151) }, 'VALIDATION', 'name'],
      [{ input: { day: 3 } }, 'VALIDATION', 'day'],
      [{ input: { day: 'd', when: new Date() } }, 'VALIDATION', 'input'],
      [{ extra: 1 }, 'VALIDATION', 'extra'],
    ];
    for (const [over, code, words] of bad) {
      await expect(engine.schedule({ ...ok, ...over } as never), JSON.stringify(over)).rejects.toMatchObject({
        code,
        message: expect.stringContaining(words),
      });
    }
    expect(await engine.schedules()).toEqual([]);
    expect(await store.listSchedules()).toEqual([]);
    expect(clock.pending).toBe(0);
    // The longest name still makes batch ids that fit.
    const longest = await engine.schedule({ ...ok, name: 'x'.repeat(150) });
    expect(fire(longest.name, T0).length).toBeLessThanOrEqual(MAX_ID_LENGTH);
  });

  it('unschedule removes it: no more fires, no timer; false for a name that is not there', async () => {
    const clock = new FakeClock(T0 + 60_000);
    const engine = await start(memoryStore(), clock);
    await engine.schedule({ name: 'u', cron: '0 * * * *', job: 'report' });
    await clock.advanceTo(T0 + HOUR);
    expect(await engine.unschedule('u')).toBe(true);
    expect(await engine.unschedule('u')).toBe(false);
    expect(await engine.schedules()).toEqual([]);
    expect(clock.pending).toBe(0);
    await clock.advanceTo(T0 + 5 * HOUR);
    expect(await ids(engine)).toEqual([fire('u', T0 + HOUR)]); // the batch it made stays
  });

  it('schedule() of an existing name updates it and keeps its creation and last fire', async () => {
    const clock = new FakeClock(T0 + 60_000);
    const r = reportJob();
    const engine = await start(memoryStore(), clock, [r.job]);
    await engine.schedule({ name: 'up', cron: '0 * * * *', job: 'report', input: 'v1' });
    await clock.advanceTo(T0 + HOUR);
    const updated = await engine.schedule({
      name: 'up',
      cron: '30 * * * *',
      job: 'report',
      input: 'v2',
      overlap: 'allow',
    });
    expect(updated).toMatchObject({
      cron: '30 * * * *',
      overlap: 'allow',
      createdAt: iso(T0 + 60_000),
      nextFire: iso(T0 + HOUR + 30 * 60_000),
      lastFire: { at: iso(T0 + HOUR), batchId: fire('up', T0 + HOUR) },
    });
    await clock.advanceTo(T0 + 2 * HOUR + 45 * 60_000);
    const later = [fire('up', T0 + HOUR + 30 * 60_000), fire('up', T0 + 2 * HOUR + 30 * 60_000)];
    expect(await ids(engine)).toEqual([fire('up', T0 + HOUR), ...later]);
    for (const id of later) {
      await final(engine, id);
      expect(r.runs.get(id)).toEqual(['v2']);
    }
    expect(await engine.schedules()).toHaveLength(1);
  });

  it('an input function that takes its time holds up only its own schedule (real clock, every second)', async () => {
    const r = reportJob();
    const engine = createEngine({
      jobs: [r.job],
      store: memoryStore(),
      logger: false,
      maxConcurrentBatches: 8,
    });
    engines.push(engine);
    await engine.start();
    const { promise: gate, open } = latch();
    let slowCalls = 0;
    await engine.schedule({
      name: 'slow',
      cron: '* * * * * *',
      job: 'report',
      catchUp: 'none',
      input: async () => {
        slowCalls++;
        await gate; // a remote call that has not answered yet
        return 'slow';
      },
    });
    await engine.schedule({
      name: 'fast',
      cron: '* * * * * *',
      job: 'report',
      input: 'fast',
      overlap: 'allow',
    });
    const fastFires = async () => (await engine.list()).filter((b) => b.id.startsWith('fast@')).length;
    // Before: the pass waited for slow's input, and fast fired nothing more until it answered.
    await until(async () => slowCalls === 1 && (await fastFires()) >= 3, 60_000);
    expect(slowCalls).toBe(1); // a wake skips a schedule still firing
    expect((await engine.schedules()).map((s) => s.name).sort()).toEqual(['fast', 'slow']);
    open();
    await until(async () => (await engine.list()).some((b) => b.id.startsWith('slow@')), 60_000);
  });

  it('removed and given again while its input function runs: the new definition fires (review: it never fired again)', async () => {
    const clock = new FakeClock(T0 + 60_000);
    const r = reportJob();
    const engine = await start(memoryStore(), clock, [r.job]);
    const { promise: inputCalled, open: called } = latch();
    const { promise: gate, open } = latch();
    await engine.schedule({
      name: 'r',
      cron: '0 * * * *',
      job: 'report',
      input: async () => {
        called();
        await gate;
        return 'v1';
      },
    });
    const passing = clock.advanceTo(T0 + HOUR);
    await inputCalled;
    expect(await engine.unschedule('r')).toBe(true);
    await engine.schedule({ name: 'r', cron: '0 * * * *', job: 'report', input: () => 'v2' });
    open();
    await passing;
    expect(await ids(engine)).toEqual([]); // the fire in flight belonged to the removed schedule
    await until(() => clock.pending > 0, 5_000); // the new one armed the timer once that fire ended
    await clock.advanceTo(T0 + 2 * HOUR);
    expect(await final(engine, fire('r', T0 + 2 * HOUR))).toBe('COMPLETED');
    expect(r.runs.get(fire('r', T0 + 2 * HOUR))).toEqual(['v2']);
  });

  it('stop() does not wait for an input function that never resolves; the next start makes the fire up', async () => {
    const path = sqlitePath();
    const clock = new FakeClock(T0 + 60_000);
    const r = reportJob();
    const { promise: inputCalled, open: called } = latch();
    const a = await start(sqliteStore({ path }), clock, [r.job]);
    await a.schedule({
      name: 'hangs',
      cron: '0 * * * *',
      job: 'report',
      input: () => {
        called();
        return new Promise(() => {}); // a query that never answers
      },
    });
    const passing = clock.advanceTo(T0 + HOUR);
    await inputCalled;
    await a.stop(); // before the fix: never resolved
    await passing;
    const b = await start(sqliteStore({ path }), clock, [r.job]);
    await b.schedule({ name: 'hangs', cron: '0 * * * *', job: 'report', input: () => 'ok' });
    expect(await final(b, fire('hangs', T0 + HOUR))).toBe('COMPLETED');
  });

  it('a function input is not stored: the schedule stays dormant after a restart until schedule() gives it again', async () => {
    const path = sqlitePath();
    const clock = new FakeClock(T0 + 60_000);
    const r = reportJob();
    const schedule = {
      name: 'fn',
      cron: '0 * * * *',
      job: 'report',
      input: (at: Date) => ({ day: at.toISOString() }),
    };
    const a = await start(sqliteStore({ path }), clock, [r.job]);
    expect(await a.schedule(schedule)).toMatchObject({ input: 'function', dormant: false });
    await clock.advanceTo(T0 + HOUR);
    expect(await final(a, fire('fn', T0 + HOUR))).toBe('COMPLETED');
    await a.stop();

    clock.jumpTo(T0 + 3 * HOUR + 60_000);
    const b = await start(sqliteStore({ path }), clock, [r.job]);
    expect(await b.schedules()).toEqual([
      expect.objectContaining({ name: 'fn', input: 'function', dormant: true }),
    ]);
    expect(clock.pending).toBe(0); // nothing to fire: no timer
    await clock.advanceTo(T0 + 3 * HOUR + 30 * 60_000);
    expect(await ids(b)).toEqual([fire('fn', T0 + HOUR)]);

    // Given again at startup: it wakes up, and catches up (latest) on what it missed meanwhile.
    expect(await b.schedule(schedule)).toMatchObject({ dormant: false });
    const caughtUp = fire('fn', T0 + 3 * HOUR);
    expect(await final(b, caughtUp)).toBe('COMPLETED');
    expect(r.runs.get(caughtUp)).toEqual([{ day: iso(T0 + 3 * HOUR) }]);
    expect(await ids(b)).toEqual([fire('fn', T0 + HOUR), caughtUp]);
  });
});

const pgDown = await pgUnreachable('two engines firing one schedule');

describe.skipIf(pgDown)('schedules on one PostgreSQL shared by two engines', () => {
  it('each engine runs the schedule; every fire runs once', async () => {
    const schema = pgSchema();
    const r = reportJob();
    const clocks = [new FakeClock(T0 + 60_000), new FakeClock(T0 + 60_000)];
    const [a, b] = await Promise.all(
      clocks.map((clock) => start(postgresStore({ connectionString: PG_URL, schema }), clock, [r.job])),
    );
    for (const engine of [a!, b!])
      await engine.schedule({ name: 'pg', cron: '0 * * * *', job: 'report', overlap: 'allow', input: 1 });
    // Both wake at each fire time and race to submit the same batch id.
    await Promise.all(clocks.map((clock) => clock.advanceTo(T0 + 3 * HOUR + 60_000)));
    const expected = [1, 2, 3].map((h) => fire('pg', T0 + h * HOUR));
    for (const id of expected) expect(await final(a!, id)).toBe('COMPLETED');
    expect(await ids(a!)).toEqual(expected);
    for (const id of expected) expect(r.count(id)).toBe(1);
    for (const engine of [a!, b!])
      expect((await engine.schedules())[0]?.lastFire).toEqual({
        at: iso(T0 + 3 * HOUR),
        batchId: expected[2],
        status: 'COMPLETED',
      });
  });
  it('a schedule whose last batch belongs to a job not here neither blocks the other schedules nor makes schedule() or schedules() reject', async () => {
    // Outside probe: the batch of a job no longer deployed cannot be read by get() (UNKNOWN_JOB);
    // the scheduler asked get() for the previous batch's status, and every pass, schedules() and
    // schedule() (after it had stored the schedule) failed with it.
    const path = sqlitePath();
    const clock = new FakeClock(T0 + 60_000);
    const hanging = defineJob({
      name: 'report-v1',
      partition: () => [{ key: 'only', payload: 1 }],
      handler: () => new Promise<number>(() => {}),
    });
    const r = reportJob();
    const a = await start(sqliteStore({ path }), clock, [hanging, r.job]);
    await a.schedule({ name: 'nightly', cron: '0 * * * *', job: 'report-v1', input: null });
    await clock.advanceTo(T0 + HOUR);
    const v1 = fire('nightly', T0 + HOUR);
    await until(async () => (await a.get(v1)).status === 'PROCESSING', 10_000);
    await a.stop();

    // Redeployed without report-v1: the schedule moves to another job, and another one is added.
    const b = await start(sqliteStore({ path }), clock, [r.job]);
    expect(
      await b.schedule({ name: 'nightly', cron: '0 0 * * *', job: 'report', input: 'v2', overlap: 'skip' }),
    ).toMatchObject({ job: 'report', lastFire: { batchId: v1, status: 'PROCESSING' } });
    await b.schedule({ name: 'ping', cron: '30 * * * *', job: 'report', input: 'ping' });
    expect((await b.schedules()).map((i) => i.name)).toEqual(['nightly', 'ping']);
    await clock.advanceTo(T0 + HOUR + 30 * 60_000);
    expect(await final(b, fire('ping', T0 + HOUR + 30 * 60_000))).toBe('COMPLETED');
  });
});
